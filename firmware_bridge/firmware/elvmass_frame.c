/* elvmass serial frame encoder, protocol version 1. Portable C99, no heap, no OS. */
#include "elvmass_frame.h"

#include <string.h>

uint32_t elvm_crc32_update(uint32_t crc, const uint8_t *data, size_t len)
{
    size_t i;
    int bit;
    /* Bitwise, no table: small flash; swap in a 1 KiB table or the MCU's CRC unit for speed. */
    for (i = 0; i < len; ++i) {
        crc ^= data[i];
        for (bit = 0; bit < 8; ++bit) {
            crc = (crc & 1u) ? ((crc >> 1) ^ 0xEDB88320u) : (crc >> 1);
        }
    }
    return crc;
}

static void put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

static void put_u24_be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 16); p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)v;
}

/* Header at out[0..7]; payload already at out[8..]; appends the CRC. */
static size_t finish_frame(uint8_t *out, uint8_t type, uint16_t seq, uint16_t payload_len)
{
    out[0] = ELVM_SYNC0;
    out[1] = ELVM_SYNC1;
    out[2] = ELVM_PROTOCOL_VERSION;
    out[3] = type;
    put_u16(out + 4, seq);
    put_u16(out + 6, payload_len);
    put_u32(out + ELVM_HEADER_SIZE + payload_len,
            elvm_crc32_update(0xFFFFFFFFu, out + 2, (size_t)(ELVM_HEADER_SIZE - 2u) + payload_len) ^ 0xFFFFFFFFu);
    return (size_t)ELVM_HEADER_SIZE + payload_len + ELVM_CRC_SIZE;
}

size_t elvm_encode_frame(uint8_t *out, size_t out_size, uint8_t type, uint16_t seq,
                         const uint8_t *payload, uint16_t payload_len)
{
    if (out_size < (size_t)ELVM_HEADER_SIZE + payload_len + ELVM_CRC_SIZE) return 0;
    if (payload_len > 0u) memmove(out + ELVM_HEADER_SIZE, payload, payload_len);
    return finish_frame(out, type, seq, payload_len);
}

static size_t data_prefix(uint8_t *out, size_t out_size, uint32_t first_sample, uint8_t count)
{
    if (count < 1u || count > ELVM_MAX_SAMPLES_PER_FRAME) return 0;
    if (out_size < ELVM_DATA_FRAME_SIZE((size_t)count)) return 0;
    put_u32(out + ELVM_HEADER_SIZE, first_sample);
    out[ELVM_HEADER_SIZE + 4u] = count;
    return 1;
}

size_t elvm_encode_data_blocks(uint8_t *out, size_t out_size, uint16_t seq, uint32_t first_sample,
                               uint8_t count, const uint8_t *blocks)
{
    if (!data_prefix(out, out_size, first_sample, count)) return 0;
    memmove(out + ELVM_HEADER_SIZE + ELVM_DATA_PREFIX_SIZE, blocks, (size_t)count * ELVM_BLOCK_SIZE);
    return finish_frame(out, ELVM_DATA, seq, (uint16_t)(ELVM_DATA_PREFIX_SIZE + count * ELVM_BLOCK_SIZE));
}

size_t elvm_encode_data(uint8_t *out, size_t out_size, uint16_t seq, uint32_t first_sample,
                        uint8_t count, const uint32_t *status, const int32_t *codes)
{
    uint8_t *p;
    unsigned s, c;
    if (!data_prefix(out, out_size, first_sample, count)) return 0;
    p = out + ELVM_HEADER_SIZE + ELVM_DATA_PREFIX_SIZE;
    for (s = 0; s < count; ++s) {
        put_u24_be(p, status[s] & 0xFFFFFFu);
        p += 3;
        for (c = 0; c < ELVM_CHANNELS; ++c) {
            int32_t code = codes[s * ELVM_CHANNELS + c];
            if (code < -8388608L || code > 8388607L) return 0;
            put_u24_be(p, (uint32_t)code & 0xFFFFFFu);  /* two's complement, low 24 bits */
            p += 3;
        }
    }
    return finish_frame(out, ELVM_DATA, seq, (uint16_t)(ELVM_DATA_PREFIX_SIZE + count * ELVM_BLOCK_SIZE));
}

size_t elvm_encode_info(uint8_t *out, size_t out_size, uint16_t seq, const elvm_info_t *info)
{
    uint8_t *p = out + ELVM_HEADER_SIZE;
    uint32_t lsb_bits;
    if (out_size < ELVM_HEADER_SIZE + ELVM_INFO_PAYLOAD_SIZE + ELVM_CRC_SIZE) return 0;
    memcpy(p, info->device_id, 16);
    p[16] = info->fw_major;
    p[17] = info->fw_minor;
    p[18] = info->fw_patch;
    p[19] = 0;  /* reserved */
    put_u16(p + 20, info->sample_rate_hz);
    p[22] = info->samples_per_frame;
    p[23] = ELVM_CHANNELS;
    memcpy(p + 24, info->channel_map, ELVM_CHANNELS);
    memcpy(&lsb_bits, &info->lsb_nv, 4);  /* IEEE-754 binary32, sent little-endian */
    put_u32(p + 32, lsb_bits);
    return finish_frame(out, ELVM_INFO, seq, ELVM_INFO_PAYLOAD_SIZE);
}
