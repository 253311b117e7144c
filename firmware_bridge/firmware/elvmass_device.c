/*
 * elvmass C reference device: the reference encoder and command parser driving a pseudo-terminal
 * or a real UART, replaying a sample file (or the internal test signal) like an ADS1298 front-end.
 *
 *   make device   (cc -std=c99 -O2 -Wall -Wextra -Wpedantic -Werror -o elvmass_device elvmass_device.c elvmass_frame.c elvmass_command.c)
 *   ./elvmass_device --record rec.elvmrec [--speed S] [--loop] [--link PATH]     (pty: prints its path)
 *   ./elvmass_device --record rec.elvmrec --uart /dev/ttyUSB0 --baud 230400      (real UART)
 *
 * The sample file ("ELVMREC1") is written by firmware_bridge/device_record.py (elvmass emulate
 * --write-device-record). Without --record the inputs carry the internal test signal.
 * Fault switches mirror firmware_bridge/faults.py: --drop-frames P, --slip-bytes P, --clock-hz F,
 * --stuck-lead-off E[,E], --announce-map L,L,..., --silent-after S. This program is POSIX (it is
 * the host-side stand-in for a board); the encoder and parser it links are the portable part.
 */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 600

#include "elvmass_command.h"
#include "elvmass_frame.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_PATH_CHARS 4096

static const char *const LEAD_NAMES[12] = {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"};
static const char *const ELECTRODE_NAMES[9] = {"RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6"};

typedef struct {
    uint32_t rate_hz, n_samples, status;
    float lsb_nv;
    uint8_t channel_map[ELVM_CHANNELS];
    int32_t *codes;                      /* n_samples x 8, channel-map order; NULL = test signal only */
} record_t;

typedef struct {
    double drop_prob, slip_prob, clock_hz, silent_after_s, speed;
    uint32_t stuck_status;               /* lead-off bits forced on (STATP << 12 | STATN << 4) */
    int announce_map;                    /* 1: INFO announces announced_map */
    uint8_t announced_map[ELVM_CHANNELS];
    int loop;
    size_t backlog_max;
    uint64_t seed;
} options_t;

typedef struct {
    int streaming, test_signal, hung;
    uint32_t sample_index;               /* samples since START */
    uint16_t seq;
    elvm_info_t info;
    elvm_cmd_parser_t parser;
    uint8_t *backlog;
    size_t backlog_len;
    unsigned long frames_sent, frames_dropped, byte_slips, overruns, commands;
} device_t;

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

/* xorshift64*: reproducible from --seed; the faults are random, not the same draws as numpy's. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double rng_uniform(void)
{
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "elvmass_device: %s\n", what);
    exit(2);
}

static uint32_t get_u32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* "ELVMREC1" | rate u32 | n u32 | status u32 | lsb f32 | map 8 | n x 8 x i32, all little-endian. */
static void load_record(const char *path, record_t *rec)
{
    uint8_t header[32];
    size_t total, i;
    uint32_t lsb_bits;
    FILE *file = fopen(path, "rb");
    if (file == NULL) die("cannot open the record file");
    if (fread(header, 1, sizeof header, file) != sizeof header || memcmp(header, "ELVMREC1", 8) != 0)
        die("not an ELVMREC1 sample file (write one with: elvmass emulate RECORD --write-device-record OUT)");
    rec->rate_hz = get_u32(header + 8);
    rec->n_samples = get_u32(header + 12);
    rec->status = get_u32(header + 16);
    lsb_bits = get_u32(header + 20);
    memcpy(&rec->lsb_nv, &lsb_bits, 4);
    memcpy(rec->channel_map, header + 24, ELVM_CHANNELS);
    if (rec->n_samples == 0u || rec->rate_hz == 0u || rec->rate_hz > 32000u || !(rec->lsb_nv > 0.0f))
        die("record header is implausible (no samples, rate or LSB)");
    total = (size_t)rec->n_samples * ELVM_CHANNELS;
    rec->codes = malloc(total * sizeof *rec->codes);
    if (rec->codes == NULL) die("out of memory");
    for (i = 0; i < total; ++i) {
        uint8_t b[4];
        if (fread(b, 1, 4, file) != 4) die("record file is truncated");
        rec->codes[i] = (int32_t)get_u32(b);
    }
    fclose(file);
}

static int lead_code(const char *name)
{
    int i;
    for (i = 0; i < 12; ++i) if (strcmp(name, LEAD_NAMES[i]) == 0) return i;
    return -1;
}

/* Status bits of an electrode (standard wiring, PROTOCOL.md section 2). */
static uint32_t electrode_bits(const char *name)
{
    int i;
    for (i = 0; i < 9; ++i) {
        if (strcmp(name, ELECTRODE_NAMES[i]) != 0) continue;
        if (i == 0) return (0x03u << 4);                 /* RA: LOFF_STATN bits 0 and 1 */
        return (1u << (i - 1)) << 12;                    /* LA, LL, V1..V6: LOFF_STATP bits 0..7 */
    }
    return 0;
}

static void parse_names(char *list, void (*each)(const char *, void *), void *context)
{
    char *name = strtok(list, ",");
    while (name != NULL) { each(name, context); name = strtok(NULL, ","); }
}

static void add_stuck(const char *name, void *context)
{
    uint32_t bits = electrode_bits(name);
    if (!bits) die("--stuck-lead-off: unknown electrode (RA LA LL V1..V6)");
    *(uint32_t *)context |= bits;
}

static void add_map(const char *name, void *context)
{
    options_t *opt = context;
    int code = lead_code(name);
    if (code < 0 || opt->announce_map >= (int)ELVM_CHANNELS + 1) die("--announce-map: 8 lead names (I II III aVR aVL aVF V1..V6)");
    opt->announced_map[opt->announce_map - 1] = (uint8_t)code;
    ++opt->announce_map;
}

/* Square wave of PROTOCOL.md section 8: +-1 mV, f_CLK / 2^20 (integers as internal_signal.py). */
static int32_t test_signal_code(uint32_t k, uint32_t rate_hz, float lsb_nv)
{
    uint64_t half_periods = ((uint64_t)k * 125u) / (32u * (uint64_t)rate_hz);
    int32_t amplitude = (int32_t)(1e6 / (double)lsb_nv + 0.5);  /* positive: truncation rounds */
    return (half_periods % 2u == 0u) ? amplitude : -amplitude;
}

static void queue(device_t *dev, const options_t *opt, const uint8_t *bytes, size_t n)
{
    if (dev->backlog_len + n > opt->backlog_max) { ++dev->overruns; return; }  /* device FIFO full */
    memcpy(dev->backlog + dev->backlog_len, bytes, n);
    dev->backlog_len += n;
}

static void reply(device_t *dev, const options_t *opt, uint8_t type, const uint8_t *payload, uint16_t len)
{
    uint8_t frame[ELVM_MAX_FRAME_SIZE];
    size_t n = elvm_encode_frame(frame, sizeof frame, type, dev->seq++, payload, len);
    queue(dev, opt, frame, n);
}

static void send_info(device_t *dev, const options_t *opt)
{
    uint8_t frame[ELVM_MAX_FRAME_SIZE];
    elvm_info_t announced = dev->info;
    size_t n;
    if (opt->announce_map) memcpy(announced.channel_map, opt->announced_map, ELVM_CHANNELS);
    n = elvm_encode_info(frame, sizeof frame, dev->seq++, &announced);
    queue(dev, opt, frame, n);
}

static void nak(device_t *dev, const options_t *opt, uint8_t type, uint8_t reason)
{
    uint8_t payload[2];
    payload[0] = type;
    payload[1] = reason;
    reply(dev, opt, ELVM_NAK, payload, 2);
}

static void handle_command(device_t *dev, const options_t *opt, const elvm_command_t *cmd, double *start_time)
{
    uint8_t type = cmd->type;
    ++dev->commands;
    switch (type) {
    case ELVM_START:
        if (cmd->payload_len) { nak(dev, opt, type, ELVM_NAK_BAD_PAYLOAD); break; }
        dev->streaming = 1;
        dev->sample_index = 0;
        *start_time = now_s();
        reply(dev, opt, ELVM_ACK, &type, 1);
        break;
    case ELVM_STOP:
        if (cmd->payload_len) { nak(dev, opt, type, ELVM_NAK_BAD_PAYLOAD); break; }
        dev->streaming = 0;
        reply(dev, opt, ELVM_ACK, &type, 1);
        break;
    case ELVM_PING:
        reply(dev, opt, ELVM_PONG, cmd->payload, cmd->payload_len);
        break;
    case ELVM_GET_INFO:
        if (cmd->payload_len) { nak(dev, opt, type, ELVM_NAK_BAD_PAYLOAD); break; }
        send_info(dev, opt);
        break;
    case ELVM_SET_RATE:
        if (cmd->payload_len != 2u) { nak(dev, opt, type, ELVM_NAK_BAD_PAYLOAD); break; }
        /* One replayed record has one rate (resampling is the host's job), as in the Python emulator. */
        if ((uint16_t)(cmd->payload[0] | (cmd->payload[1] << 8)) == dev->info.sample_rate_hz) send_info(dev, opt);
        else nak(dev, opt, type, ELVM_NAK_UNSUPPORTED_RATE);
        break;
    case ELVM_TEST_SIGNAL:
        if (cmd->payload_len != 1u || cmd->payload[0] > 1u) { nak(dev, opt, type, ELVM_NAK_BAD_PAYLOAD); break; }
        dev->test_signal = cmd->payload[0];
        reply(dev, opt, ELVM_ACK, &type, 1);
        break;
    default:
        nak(dev, opt, type, ELVM_NAK_UNKNOWN_COMMAND);
    }
}

/* Build, fault and queue the next DATA frame; returns 0 at the end of a record that does not loop. */
static int next_frame(device_t *dev, const options_t *opt, const record_t *rec)
{
    static uint32_t status[ELVM_MAX_SAMPLES_PER_FRAME];
    static int32_t codes[ELVM_MAX_SAMPLES_PER_FRAME * ELVM_CHANNELS];
    static uint8_t frame[ELVM_MAX_FRAME_SIZE + 1];
    unsigned count = dev->info.samples_per_frame, s, c;
    size_t n;
    int from_record = rec->codes != NULL && !dev->test_signal;
    if (from_record && !opt->loop) {
        if (dev->sample_index >= rec->n_samples) return 0;
        if (rec->n_samples - dev->sample_index < count) count = rec->n_samples - dev->sample_index;
    }
    for (s = 0; s < count; ++s) {
        uint32_t k = dev->sample_index + s;
        status[s] = 0xC00000u | rec->status | opt->stuck_status;
        for (c = 0; c < ELVM_CHANNELS; ++c) {
            codes[s * ELVM_CHANNELS + c] = from_record ? rec->codes[(size_t)(k % rec->n_samples) * ELVM_CHANNELS + c]
                                                       : test_signal_code(k, rec->rate_hz, rec->lsb_nv);
        }
    }
    n = elvm_encode_data(frame, sizeof frame, dev->seq++, dev->sample_index, (uint8_t)count, status, codes);
    dev->sample_index += count;
    if (opt->drop_prob > 0.0 && rng_uniform() < opt->drop_prob) { ++dev->frames_dropped; return 1; }
    if (opt->slip_prob > 0.0 && rng_uniform() < opt->slip_prob) {
        size_t at = 2u + (size_t)(rng_uniform() * (double)(n - 2u));  /* after the sync: seen, then lost */
        ++dev->byte_slips;
        if (rng_uniform() < 0.5) {
            memmove(frame + at, frame + at + 1, n - at - 1u);
            --n;
        } else {
            memmove(frame + at + 1, frame + at, n - at);
            frame[at] = (uint8_t)(rng_uniform() * 256.0);
            ++n;
        }
    }
    queue(dev, opt, frame, n);
    ++dev->frames_sent;
    return 1;
}

static void raw_mode(int fd, speed_t baud)
{
    struct termios t;
    if (tcgetattr(fd, &t) != 0) die("tcgetattr failed (not a terminal?)");
    cfmakeraw(&t);
    t.c_cflag |= CLOCAL | CREAD;
    if (baud) { cfsetispeed(&t, baud); cfsetospeed(&t, baud); }
    if (tcsetattr(fd, TCSANOW, &t) != 0) die("tcsetattr failed");
}

static speed_t baud_constant(long baud)
{
    switch (baud) {
    case 115200: return B115200;
    case 230400: return B230400;
    case 460800: return B460800;
    case 921600: return B921600;
    default: die("--baud: one of 115200 230400 460800 921600 (230400 carries 500 Hz, PROTOCOL.md section 5)");
    }
    return B0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: elvmass_device [--record FILE] [--uart DEV --baud N | --link PATH] [--speed S] [--loop]\n"
            "       [--samples-per-frame N] [--device-id ID] [--seed N] [--backlog-bytes N]\n"
            "       [--drop-frames P] [--slip-bytes P] [--clock-hz F] [--stuck-lead-off E,...]\n"
            "       [--announce-map L,L,L,L,L,L,L,L] [--silent-after S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static record_t rec;
    static options_t opt;
    static device_t dev;
    const char *record_path = NULL, *uart = NULL, *link_path = NULL, *device_id = "elvmass-cdev";
    long baud = 230400, samples_per_frame = 5;
    int fd, slave = -1, i, finished_reported = 0;
    double start_time = 0.0, rate;
    char link_staging[MAX_PATH_CHARS];

    opt.speed = 1.0;
    opt.backlog_max = 1u << 16;
    opt.silent_after_s = -1.0;
    for (i = 1; i < argc; ++i) {
        const char *a = argv[i];
        const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
        if (strcmp(a, "--loop") == 0) { opt.loop = 1; continue; }
        if (v == NULL) usage();
        ++i;
        if (strcmp(a, "--record") == 0) record_path = v;
        else if (strcmp(a, "--uart") == 0) uart = v;
        else if (strcmp(a, "--baud") == 0) baud = strtol(v, NULL, 10);
        else if (strcmp(a, "--link") == 0) link_path = v;
        else if (strcmp(a, "--speed") == 0) opt.speed = strtod(v, NULL);
        else if (strcmp(a, "--samples-per-frame") == 0) samples_per_frame = strtol(v, NULL, 10);
        else if (strcmp(a, "--device-id") == 0) device_id = v;
        else if (strcmp(a, "--seed") == 0) opt.seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--backlog-bytes") == 0) opt.backlog_max = (size_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--drop-frames") == 0) opt.drop_prob = strtod(v, NULL);
        else if (strcmp(a, "--slip-bytes") == 0) opt.slip_prob = strtod(v, NULL);
        else if (strcmp(a, "--clock-hz") == 0) opt.clock_hz = strtod(v, NULL);
        else if (strcmp(a, "--silent-after") == 0) opt.silent_after_s = strtod(v, NULL);
        else if (strcmp(a, "--stuck-lead-off") == 0) parse_names(argv[i], add_stuck, &opt.stuck_status);
        else if (strcmp(a, "--announce-map") == 0) {
            opt.announce_map = 1;
            parse_names(argv[i], add_map, &opt);
            if (opt.announce_map != (int)ELVM_CHANNELS + 1) die("--announce-map: 8 lead names");
        } else usage();
    }
    if (!(opt.speed > 0.0) || samples_per_frame < 1 || samples_per_frame > (long)ELVM_MAX_SAMPLES_PER_FRAME
        || opt.drop_prob < 0.0 || opt.drop_prob > 1.0 || opt.slip_prob < 0.0 || opt.slip_prob > 1.0 || opt.backlog_max < 1024u)
        die("invalid option value (speed > 0, 1..20 samples per frame, probabilities in 0..1, backlog >= 1024)");
    rng_state ^= opt.seed * 0xD1B54A32D192ED03ull;
    if (record_path) {
        load_record(record_path, &rec);
    } else {  /* no record: the inputs carry the test signal, standard map, ADS1298 gain 6 */
        static const uint8_t standard_map[ELVM_CHANNELS] = {0, 1, 6, 7, 8, 9, 10, 11};
        rec.rate_hz = 500u;
        rec.lsb_nv = (float)(2.4e9 / 6.0 / 8388608.0);
        memcpy(rec.channel_map, standard_map, ELVM_CHANNELS);
    }
    memset(&dev.info, 0, sizeof dev.info);
    strncpy(dev.info.device_id, device_id, sizeof dev.info.device_id);  /* NUL-padded, need not end in NUL */
    dev.info.fw_major = 1;
    dev.info.sample_rate_hz = (uint16_t)rec.rate_hz;
    dev.info.samples_per_frame = (uint8_t)samples_per_frame;
    memcpy(dev.info.channel_map, rec.channel_map, ELVM_CHANNELS);
    dev.info.lsb_nv = rec.lsb_nv;
    dev.test_signal = 0;
    dev.backlog = malloc(opt.backlog_max + ELVM_MAX_FRAME_SIZE);
    if (dev.backlog == NULL) die("out of memory");
    elvm_cmd_parser_init(&dev.parser);
    rate = (opt.clock_hz > 0.0 ? opt.clock_hz : (double)rec.rate_hz) * opt.speed;

    if (uart) {
        fd = open(uart, O_RDWR | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) die("cannot open the UART");
        raw_mode(fd, baud_constant(baud));
        printf("%s\n", uart);
    } else {
        const char *name;
        fd = posix_openpt(O_RDWR | O_NOCTTY);
        if (fd < 0 || grantpt(fd) != 0 || unlockpt(fd) != 0 || (name = ptsname(fd)) == NULL) die("cannot create a pty");
        slave = open(name, O_RDWR | O_NOCTTY);  /* held open: a host reopening the port is not an unplug */
        if (slave < 0) die("cannot open the pty slave");
        raw_mode(slave, 0);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        if (link_path) {
            if (strlen(link_path) + 5u >= sizeof link_staging) die("--link path too long");
            sprintf(link_staging, "%s.new", link_path);
            unlink(link_staging);
            if (symlink(name, link_staging) != 0 || rename(link_staging, link_path) != 0) die("cannot create the --link symlink");
            printf("%s\n", link_path);
        } else {
            printf("%s\n", name);
        }
    }
    fflush(stdout);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    while (!stop_requested) {
        struct pollfd pfd;
        int timeout_ms = 50, ready;
        double now = now_s();
        if (!dev.hung && opt.silent_after_s >= 0.0 && dev.streaming
            && (double)dev.sample_index / (double)rec.rate_hz >= opt.silent_after_s) {
            dev.hung = 1;  /* firmware hangs: nothing more is sent, commands are ignored */
            dev.backlog_len = 0;
            fprintf(stderr, "elvmass_device: stopped answering at sample %lu\n", (unsigned long)dev.sample_index);
        }
        if (dev.streaming && !dev.hung) {
            double due = (now - start_time) * rate;
            while (dev.streaming && (double)dev.sample_index < due) {
                if (!next_frame(&dev, &opt, &rec)) {
                    dev.streaming = 0;
                    if (!finished_reported) fprintf(stderr, "elvmass_device: end of recording\n");
                    finished_reported = 1;
                    break;
                }
                if (opt.silent_after_s >= 0.0 && (double)dev.sample_index / (double)rec.rate_hz >= opt.silent_after_s) break;
            }
            if (dev.streaming) {
                double next_due = start_time + ((double)dev.sample_index + (double)dev.info.samples_per_frame) / rate;
                double wait = next_due - now_s();
                timeout_ms = wait <= 0.0 ? 0 : (int)(wait * 1000.0) + 1;
                if (timeout_ms > 50) timeout_ms = 50;
            }
        }
        pfd.fd = fd;
        pfd.events = POLLIN | (dev.backlog_len ? POLLOUT : 0);
        pfd.revents = 0;
        ready = poll(&pfd, 1, timeout_ms);
        if (ready < 0) {
            if (errno == EINTR) continue;
            die("poll failed");
        }
        if (pfd.revents & POLLIN) {
            uint8_t in[4096];
            ssize_t got = read(fd, in, sizeof in);
            ssize_t k;
            for (k = 0; k < got && !dev.hung; ++k) {
                elvm_command_t cmd;
                elvm_cmd_parser_push(&dev.parser, in[k]);
                while (elvm_cmd_parser_next(&dev.parser, &cmd)) {
                    handle_command(&dev, &opt, &cmd, &start_time);
                    if (cmd.type == ELVM_START) finished_reported = 0;
                }
            }
        }
        if ((pfd.revents & POLLOUT) && dev.backlog_len) {
            ssize_t put = write(fd, dev.backlog, dev.backlog_len);
            if (put > 0) {
                memmove(dev.backlog, dev.backlog + put, dev.backlog_len - (size_t)put);
                dev.backlog_len -= (size_t)put;
            }
        }
    }
    fprintf(stderr, "elvmass_device: {\"frames_sent\": %lu, \"frames_dropped\": %lu, \"byte_slips\": %lu, "
            "\"overruns\": %lu, \"commands\": %lu}\n", dev.frames_sent, dev.frames_dropped, dev.byte_slips,
            dev.overruns, dev.commands);
    if (link_path) unlink(link_path);
    if (slave >= 0) close(slave);
    close(fd);
    free(dev.backlog);
    free(rec.codes);
    return 0;
}
