/*
 * elvmass serial frame encoder, protocol version 1 (see ../PROTOCOL.md).
 *
 * Portable C99: no heap, no OS, no floating-point arithmetic (the INFO frame only copies the bits
 * of a float). Every function writes into a caller-supplied buffer and returns the number of bytes
 * written, or 0 when the buffer is too small or an argument is out of range.
 * This is the part a device maker ports to their MCU, next to the ADS129x driver.
 */
#ifndef ELVMASS_FRAME_H
#define ELVMASS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define ELVM_SYNC0 0xA5u
#define ELVM_SYNC1 0x5Au
#define ELVM_PROTOCOL_VERSION 1u
#define ELVM_HEADER_SIZE 8u
#define ELVM_CRC_SIZE 4u
#define ELVM_BLOCK_SIZE 27u            /* ADS129x block: 3 status bytes + 8 x 3 channel bytes */
#define ELVM_CHANNELS 8u
#define ELVM_MAX_SAMPLES_PER_FRAME 20u
#define ELVM_DATA_PREFIX_SIZE 5u       /* first_sample u32 + count u8 */
#define ELVM_INFO_PAYLOAD_SIZE 36u
#define ELVM_MAX_PING_PAYLOAD 32u
#define ELVM_DATA_FRAME_SIZE(count) (ELVM_HEADER_SIZE + ELVM_DATA_PREFIX_SIZE + (count) * ELVM_BLOCK_SIZE + ELVM_CRC_SIZE)
#define ELVM_MAX_FRAME_SIZE ELVM_DATA_FRAME_SIZE(ELVM_MAX_SAMPLES_PER_FRAME)

enum elvm_frame_type {
    ELVM_DATA = 0x01, ELVM_INFO = 0x02, ELVM_PONG = 0x03, ELVM_ACK = 0x04, ELVM_NAK = 0x05,
    ELVM_START = 0x10, ELVM_STOP = 0x11, ELVM_PING = 0x12, ELVM_SET_RATE = 0x13, ELVM_GET_INFO = 0x14
};

/* Lead codes of the INFO channel map. */
enum elvm_lead {
    ELVM_LEAD_I = 0, ELVM_LEAD_II, ELVM_LEAD_III, ELVM_LEAD_AVR, ELVM_LEAD_AVL, ELVM_LEAD_AVF,
    ELVM_LEAD_V1, ELVM_LEAD_V2, ELVM_LEAD_V3, ELVM_LEAD_V4, ELVM_LEAD_V5, ELVM_LEAD_V6
};

typedef struct {
    char device_id[16];                /* ASCII, NUL-padded (need not be NUL-terminated) */
    uint8_t fw_major, fw_minor, fw_patch;
    uint16_t sample_rate_hz;
    uint8_t samples_per_frame;
    uint8_t channel_map[ELVM_CHANNELS]; /* enum elvm_lead per channel */
    float lsb_nv;                      /* one ADC code in nanovolts */
} elvm_info_t;

/* CRC-32/ISO-HDLC (zlib): elvm_crc32_update(0xFFFFFFFF, ...) then XOR the result with 0xFFFFFFFF. */
uint32_t elvm_crc32_update(uint32_t crc, const uint8_t *data, size_t len);

/* Any frame from a ready payload (commands, PONG, ACK, NAK). */
size_t elvm_encode_frame(uint8_t *out, size_t out_size, uint8_t type, uint16_t seq,
                         const uint8_t *payload, uint16_t payload_len);

/* DATA frame from ADS129x read-data blocks exactly as the ADC shifted them out (count * 27 bytes). */
size_t elvm_encode_data_blocks(uint8_t *out, size_t out_size, uint16_t seq, uint32_t first_sample,
                               uint8_t count, const uint8_t *blocks);

/* DATA frame from status words and signed codes (count * 8, channel-map order). */
size_t elvm_encode_data(uint8_t *out, size_t out_size, uint16_t seq, uint32_t first_sample,
                        uint8_t count, const uint32_t *status, const int32_t *codes);

size_t elvm_encode_info(uint8_t *out, size_t out_size, uint16_t seq, const elvm_info_t *info);

#endif /* ELVMASS_FRAME_H */
