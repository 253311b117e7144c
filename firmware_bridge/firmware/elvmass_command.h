/*
 * elvmass host -> device command parser, protocol version 1 (see ../PROTOCOL.md).
 *
 * Portable C99 like elvmass_frame.c: no heap, no OS, no floating point. Feed it the bytes the UART
 * receives, one at a time, then pop the checked commands. It resynchronizes the way the host's
 * decoder does: on a bad header or CRC it drops one byte and searches for the next sync.
 */
#ifndef ELVMASS_COMMAND_H
#define ELVMASS_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include "elvmass_frame.h"

#define ELVM_TEST_SIGNAL 0x15u          /* optional command: payload u8, 1 = internal test signal, 0 = inputs */
#define ELVM_MAX_COMMAND_FRAME (ELVM_HEADER_SIZE + ELVM_MAX_PING_PAYLOAD + ELVM_CRC_SIZE)

enum elvm_nak_reason { ELVM_NAK_UNKNOWN_COMMAND = 1, ELVM_NAK_BAD_PAYLOAD = 2, ELVM_NAK_UNSUPPORTED_RATE = 3 };

typedef struct {
    uint8_t type;
    uint16_t seq;
    uint8_t payload_len;
    uint8_t payload[ELVM_MAX_PING_PAYLOAD];
} elvm_command_t;

typedef struct {
    uint8_t buf[ELVM_MAX_COMMAND_FRAME];
    size_t len;
    uint32_t crc_errors;                 /* frames dropped for a CRC mismatch */
    uint32_t bytes_dropped;              /* bytes skipped while searching for a sync */
} elvm_cmd_parser_t;

void elvm_cmd_parser_init(elvm_cmd_parser_t *parser);

/* Append one received byte (never fails: a full buffer always holds a decidable candidate). */
void elvm_cmd_parser_push(elvm_cmd_parser_t *parser, uint8_t byte);

/* Pop the next checked frame into *command: 1 when one was found, 0 when more bytes are needed.
   Call it until it returns 0 after every push. Frames of any known type are returned (a device
   answers the ones that are not commands with NAK reason 1). */
int elvm_cmd_parser_next(elvm_cmd_parser_t *parser, elvm_command_t *command);

#endif /* ELVMASS_COMMAND_H */
