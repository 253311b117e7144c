/*
 * Host-side check of the C encoder against the shared test vectors.
 *   cc -std=c99 -Wall -Wextra -pedantic -o vector_check vector_check.c elvmass_frame.c
 *   ./vector_check test_vectors.txt
 * For each vector line it prints "ok <hex>" or "FAIL <line> <hex>" (the bytes the C encoder
 * produced) and exits 1 if any vector differs. Uses stdio; the encoder itself does not.
 */
#include "elvmass_frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_CHARS 16384

static int hex_to_bytes(const char *hex, uint8_t *out, size_t max)
{
    size_t n = strlen(hex), i;
    if (n % 2u != 0u || n / 2u > max) return -1;
    for (i = 0; i < n / 2u; ++i) {
        unsigned value;
        if (sscanf(hex + 2u * i, "%2x", &value) != 1) return -1;
        out[i] = (uint8_t)value;
    }
    return (int)(n / 2u);
}

static unsigned long next_number(int base)
{
    const char *token = strtok(NULL, " \t\r\n");
    return token ? strtoul(token, NULL, base) : 0ul;
}

int main(int argc, char **argv)
{
    static char line[LINE_MAX_CHARS];
    static uint8_t produced[ELVM_MAX_FRAME_SIZE + 64];
    FILE *file;
    int failures = 0, line_no = 0, vectors = 0;
    if (argc != 2 || (file = fopen(argv[1], "r")) == NULL) {
        fprintf(stderr, "usage: vector_check test_vectors.txt\n");
        return 2;
    }
    while (fgets(line, sizeof line, file)) {
        char *expected_hex = strchr(line, '=');
        char *kind;
        size_t n = 0, i;
        ++line_no;
        if (line[0] == '#' || expected_hex == NULL) continue;
        *expected_hex++ = '\0';
        while (*expected_hex == ' ') ++expected_hex;
        expected_hex[strcspn(expected_hex, " \t\r\n")] = '\0';
        kind = strtok(line, " \t");
        if (kind == NULL) continue;
        if (strcmp(kind, "data") == 0) {
            static uint32_t status[ELVM_MAX_SAMPLES_PER_FRAME];
            static int32_t codes[ELVM_MAX_SAMPLES_PER_FRAME * ELVM_CHANNELS];
            uint16_t seq = (uint16_t)next_number(10);
            uint32_t first = (uint32_t)next_number(10);
            uint8_t count = (uint8_t)next_number(10);
            unsigned s, c;
            for (s = 0; s < count && s < ELVM_MAX_SAMPLES_PER_FRAME; ++s) {
                status[s] = (uint32_t)next_number(16);
                for (c = 0; c < ELVM_CHANNELS; ++c) {
                    const char *token = strtok(NULL, " \t\r\n");
                    codes[s * ELVM_CHANNELS + c] = token ? (int32_t)strtol(token, NULL, 10) : 0;
                }
            }
            n = elvm_encode_data(produced, sizeof produced, seq, first, count, status, codes);
        } else if (strcmp(kind, "info") == 0) {
            elvm_info_t info;
            const char *device_id;
            uint32_t lsb_bits;
            memset(&info, 0, sizeof info);
            {
                uint16_t seq = (uint16_t)next_number(10);
                device_id = strtok(NULL, " \t");
                if (device_id != NULL) {
                    size_t id_len = strlen(device_id);
                    memcpy(info.device_id, device_id, id_len < sizeof info.device_id ? id_len : sizeof info.device_id);
                }
                info.fw_major = (uint8_t)next_number(10);
                info.fw_minor = (uint8_t)next_number(10);
                info.fw_patch = (uint8_t)next_number(10);
                info.sample_rate_hz = (uint16_t)next_number(10);
                info.samples_per_frame = (uint8_t)next_number(10);
                lsb_bits = (uint32_t)next_number(16);
                memcpy(&info.lsb_nv, &lsb_bits, 4);
                for (i = 0; i < ELVM_CHANNELS; ++i) info.channel_map[i] = (uint8_t)next_number(10);
                n = elvm_encode_info(produced, sizeof produced, seq, &info);
            }
        } else if (strcmp(kind, "frame") == 0) {
            static uint8_t payload[256];
            uint8_t type = (uint8_t)next_number(16);
            uint16_t seq = (uint16_t)next_number(10);
            const char *payload_hex = strtok(NULL, " \t\r\n");
            int payload_len = (payload_hex && strcmp(payload_hex, "-") != 0) ? hex_to_bytes(payload_hex, payload, sizeof payload) : 0;
            if (payload_len >= 0) n = elvm_encode_frame(produced, sizeof produced, type, seq, payload, (uint16_t)payload_len);
        } else {
            fprintf(stderr, "line %d: unknown vector kind %s\n", line_no, kind);
            return 2;
        }
        ++vectors;
        {
            static char produced_hex[2 * sizeof produced + 1];
            for (i = 0; i < n; ++i) sprintf(produced_hex + 2u * i, "%02x", produced[i]);
            produced_hex[2u * n] = '\0';
            if (n > 0u && strcmp(produced_hex, expected_hex) == 0) {
                printf("ok %s\n", produced_hex);
            } else {
                printf("FAIL %d %s\n", line_no, n ? produced_hex : "-");
                ++failures;
            }
        }
    }
    fclose(file);
    fprintf(stderr, "%d vectors, %d failures\n", vectors, failures);
    return failures ? 1 : 0;
}
