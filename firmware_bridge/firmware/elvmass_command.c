/* elvmass host -> device command parser, protocol version 1. Portable C99, no heap, no OS. */
#include "elvmass_command.h"

#include <string.h>

/* Largest payload per frame type (as frames.MAX_PAYLOAD); -1 = unknown type (header rejected). */
static int max_payload(uint8_t type)
{
    switch (type) {
    case ELVM_DATA: return (int)(ELVM_DATA_PREFIX_SIZE + ELVM_MAX_SAMPLES_PER_FRAME * ELVM_BLOCK_SIZE);
    case ELVM_INFO: return (int)ELVM_INFO_PAYLOAD_SIZE;
    case ELVM_PONG: case ELVM_PING: return (int)ELVM_MAX_PING_PAYLOAD;
    case ELVM_ACK: return 1;
    case ELVM_NAK: return 2;
    case ELVM_START: case ELVM_STOP: case ELVM_GET_INFO: return 0;
    case ELVM_SET_RATE: return 2;
    case ELVM_TEST_SIGNAL: return 1;
    default: return -1;
    }
}

void elvm_cmd_parser_init(elvm_cmd_parser_t *parser)
{
    memset(parser, 0, sizeof *parser);
}

static void drop_bytes(elvm_cmd_parser_t *parser, size_t n)
{
    memmove(parser->buf, parser->buf + n, parser->len - n);
    parser->len -= n;
}

void elvm_cmd_parser_push(elvm_cmd_parser_t *parser, uint8_t byte)
{
    if (parser->len == sizeof parser->buf) {  /* cannot happen when next() is drained; stay safe */
        drop_bytes(parser, 1);
        ++parser->bytes_dropped;
    }
    parser->buf[parser->len++] = byte;
}

int elvm_cmd_parser_next(elvm_cmd_parser_t *parser, elvm_command_t *command)
{
    while (parser->len > 0u) {
        const uint8_t *b = parser->buf;
        uint16_t length;
        int limit;
        size_t total;
        uint32_t crc, sent;
        if (b[0] != ELVM_SYNC0 || (parser->len > 1u && b[1] != ELVM_SYNC1)) {
            drop_bytes(parser, 1);
            ++parser->bytes_dropped;
            continue;
        }
        if (parser->len < ELVM_HEADER_SIZE) return 0;
        length = (uint16_t)(b[6] | (b[7] << 8));
        limit = max_payload(b[3]);
        /* Only frames that fit the buffer can be commands; a longer claim is a false sync here. */
        if (b[2] != ELVM_PROTOCOL_VERSION || limit < 0 || length > (uint16_t)limit || length > ELVM_MAX_PING_PAYLOAD) {
            drop_bytes(parser, 1);
            ++parser->bytes_dropped;
            continue;
        }
        total = ELVM_HEADER_SIZE + length + ELVM_CRC_SIZE;
        if (parser->len < total) return 0;
        crc = elvm_crc32_update(0xFFFFFFFFu, b + 2, (size_t)(ELVM_HEADER_SIZE - 2u) + length) ^ 0xFFFFFFFFu;
        sent = (uint32_t)b[ELVM_HEADER_SIZE + length] | ((uint32_t)b[ELVM_HEADER_SIZE + length + 1u] << 8)
             | ((uint32_t)b[ELVM_HEADER_SIZE + length + 2u] << 16) | ((uint32_t)b[ELVM_HEADER_SIZE + length + 3u] << 24);
        if (crc != sent) {
            ++parser->crc_errors;
            drop_bytes(parser, 1);
            ++parser->bytes_dropped;
            continue;
        }
        command->type = b[3];
        command->seq = (uint16_t)(b[4] | (b[5] << 8));
        command->payload_len = (uint8_t)length;
        if (length > 0u) memcpy(command->payload, b + ELVM_HEADER_SIZE, length);
        drop_bytes(parser, total);
        return 1;
    }
    return 0;
}
