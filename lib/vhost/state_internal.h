/* SPDX-License-Identifier: MIT */
#pragma once

/* The device-state stream's wire layout and the helpers its writer and reader share. */

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include <guestabi/vhost_state.h>

/* All multi-byte fields little-endian (docs/state-stream.md). */
struct state_wire_header {
    uint8_t magic[8];         /* "GABISTAT" */
    uint16_t format_version;  /* 1 */
    uint16_t header_size;     /* 128 written; 128..4096, a multiple of 8, read */
    uint32_t incompat_flags;  /* a reader refuses a stream with a bit it does not know */
    uint32_t compat_flags;    /* a reader ignores bits it does not know */
    uint32_t reserved0;       /* 0 */
    uint64_t payload_size;    /* bytes between header and trailer */
    char device_type[32];     /* 1..31 printable ASCII, NUL-padded */
    char state_version[16];   /* 1..15 printable ASCII, NUL-padded */
    uint8_t reserved[44];     /* 0 */
    uint32_t header_checksum; /* CRC32C of the header_size - 4 bytes before it */
};
static_assert(sizeof(struct state_wire_header) == GABI_VHOST_STATE_HEADER_SIZE, "header size");
static_assert(offsetof(struct state_wire_header, payload_size) == 24, "payload_size offset");
static_assert(offsetof(struct state_wire_header, device_type) == 32, "device_type offset");
static_assert(offsetof(struct state_wire_header, state_version) == 64, "state_version offset");
static_assert(offsetof(struct state_wire_header, header_checksum) == 124, "checksum offset");

struct state_wire_trailer {
    uint8_t magic[8];          /* "GABI-END" */
    uint32_t payload_checksum; /* CRC32C of the payload */
    uint32_t trailer_checksum; /* CRC32C of the 12 bytes before it */
};
static_assert(sizeof(struct state_wire_trailer) == GABI_VHOST_STATE_TRAILER_SIZE, "trailer size");

/* The first bytes of a header that say how long it is. */
#define STATE_PROLOGUE_SIZE 16

/* Checks the magic bytes buf has (up to 8); with >= STATE_PROLOGUE_SIZE bytes, returns the
 * header size the prologue declares. 0 when more bytes are needed, -errno with *ret_outcome. */
int state_header_size(const uint8_t *buf, size_t size, enum gabi_vhost_state_outcome *ret_outcome,
                      struct gabi_error *reterr);

void state_trailer_encode(uint32_t payload_checksum,
                          uint8_t ret_buf[GABI_VHOST_STATE_TRAILER_SIZE]);
/* Check a received trailer against the payload checksum computed on arrival. */
int state_trailer_check(const uint8_t buf[GABI_VHOST_STATE_TRAILER_SIZE], uint32_t payload_checksum,
                        enum gabi_vhost_state_outcome *ret_outcome, struct gabi_error *reterr);

/* A name valid for device_type (size 32) or state_version (size 16)? */
bool state_name_valid(const char *s, size_t field_size);
/* n bytes for a message: printable ASCII kept, the rest (and '"', '\\') as \xNN. */
void state_bytes_quote(char *out, size_t out_size, const void *buf, size_t n);
/* s as a quoted C-like string for messages: printable ASCII kept, the rest \xNN; at most
 * field_size input bytes. */
void state_name_quote(char *out, size_t out_size, const char *s, size_t field_size);

/* The table-driven CRC32C, whatever the CPU (tests compare it with the hardware one). */
uint32_t state_crc32c_sw(uint32_t crc, const void *buf, size_t size);
/* Whether gabi_vhost_state_crc32c() uses the SSE4.2 instruction. */
bool state_crc32c_hw(void);
/* The crc32 instruction alone, even where folding is used (the tables without SSE4.2). */
uint32_t state_crc32c_sse42(uint32_t crc, const void *buf, size_t size);
/* Whether gabi_vhost_state_crc32c() folds long buffers with AVX-512 VPCLMULQDQ. */
bool state_crc32c_fold(void);
