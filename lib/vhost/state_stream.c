/* SPDX-License-Identifier: MIT */
/*
 * The device-state stream's framing: the header a receiver checks before anything else, the
 * trailer that carries the payload's checksum, and the outcome names. No I/O here.
 */

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <guestabi/util.h>
#include "vhost/state_internal.h"

/* Incompatible flags this reader understands: none yet. */
#define KNOWN_INCOMPAT_FLAGS 0u

static const char *const outcome_names[GABI_VHOST_STATE_OUTCOME_COUNT] = {
    [GABI_VHOST_STATE_PENDING] = "pending",
    [GABI_VHOST_STATE_SUCCEEDED] = "succeeded",
    [GABI_VHOST_STATE_BAD_MAGIC] = "bad-magic",
    [GABI_VHOST_STATE_BAD_HEADER_CHECKSUM] = "bad-header-checksum",
    [GABI_VHOST_STATE_BAD_HEADER] = "bad-header",
    [GABI_VHOST_STATE_UNSUPPORTED_FORMAT] = "unsupported-format",
    [GABI_VHOST_STATE_WRONG_TYPE] = "wrong-type",
    [GABI_VHOST_STATE_REFUSED] = "refused",
    [GABI_VHOST_STATE_TOO_LARGE] = "too-large",
    [GABI_VHOST_STATE_TRUNCATED] = "truncated",
    [GABI_VHOST_STATE_OVERSIZE] = "oversize",
    [GABI_VHOST_STATE_BAD_TRAILER] = "bad-trailer",
    [GABI_VHOST_STATE_BAD_CHECKSUM] = "bad-checksum",
    [GABI_VHOST_STATE_SINK] = "sink",
    [GABI_VHOST_STATE_SOURCE] = "source",
    [GABI_VHOST_STATE_IO] = "io",
    [GABI_VHOST_STATE_CANCELLED] = "cancelled",
    [GABI_VHOST_STATE_NO_TRANSFER] = "no-transfer",
    [GABI_VHOST_STATE_NOT_SUSPENDED] = "not-suspended",
};

const char *gabi_vhost_state_outcome_name(enum gabi_vhost_state_outcome o)
{
    if ((unsigned)o >= GABI_VHOST_STATE_OUTCOME_COUNT)
        return NULL;
    return outcome_names[o];
}

static void set_outcome(enum gabi_vhost_state_outcome *ret, enum gabi_vhost_state_outcome o)
{
    if (ret)
        *ret = o;
}

/* Record which check failed and why; evaluates to code. */
#define FAIL(o, code, ...)                                                                         \
    (set_outcome(ret_outcome, (o)), gabi_error_set(reterr, (code), NULL, __VA_ARGS__))

/* A valid name, and nothing but NULs after it in its field. */
static bool field_valid(const char *field, size_t field_size)
{
    if (!state_name_valid(field, field_size))
        return false;
    for (size_t i = strnlen(field, field_size); i < field_size; i++)
        if (field[i])
            return false;
    return true;
}

bool state_name_valid(const char *s, size_t field_size)
{
    size_t n = strnlen(s, field_size);

    if (n == 0 || n >= field_size)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

void state_bytes_quote(char *out, size_t out_size, const void *buf, size_t n)
{
    const unsigned char *b = buf;
    size_t o = 0;

    if (out_size == 0)
        return;
    for (size_t i = 0; i < n && o + 5 < out_size; i++) {
        if (b[i] >= 0x20 && b[i] <= 0x7e && b[i] != '"' && b[i] != '\\')
            out[o++] = (char)b[i];
        else
            o += (size_t)snprintf(out + o, out_size - o, "\\x%02x", b[i]);
    }
    out[o] = '\0';
}

void state_name_quote(char *out, size_t out_size, const char *s, size_t field_size)
{
    state_bytes_quote(out, out_size, s, strnlen(s, field_size));
}

int gabi_vhost_state_header_encode(const struct gabi_vhost_state_info *info,
                                   uint8_t ret_buf[GABI_VHOST_STATE_HEADER_SIZE],
                                   struct gabi_error *reterr)
{
    struct state_wire_header h;

    if (!state_name_valid(info->device_type, sizeof(h.device_type)))
        return gabi_error_set(reterr, -EINVAL, NULL,
                              "device type must be 1..31 printable ASCII characters");
    if (!state_name_valid(info->state_version, sizeof(h.state_version)))
        return gabi_error_set(reterr, -EINVAL, NULL,
                              "state version must be 1..15 printable ASCII characters");
    memset(&h, 0, sizeof(h));
    memcpy(h.magic, GABI_VHOST_STATE_MAGIC, sizeof(h.magic));
    h.format_version = htole16(GABI_VHOST_STATE_FORMAT_VERSION);
    h.header_size = htole16(GABI_VHOST_STATE_HEADER_SIZE);
    h.compat_flags = htole32(info->compat_flags);
    h.payload_size = htole64(info->payload_size);
    /* strncpy NUL-pads the rest of the field, which the format requires */
    strncpy(h.device_type, info->device_type, sizeof(h.device_type));
    strncpy(h.state_version, info->state_version, sizeof(h.state_version));
    h.header_checksum = htole32(
        gabi_vhost_state_crc32c(0, &h, offsetof(struct state_wire_header, header_checksum)));
    memcpy(ret_buf, &h, sizeof(h));
    return 0;
}

int state_header_size(const uint8_t *buf, size_t size, enum gabi_vhost_state_outcome *ret_outcome,
                      struct gabi_error *reterr)
{
    size_t m = MIN(size, (size_t)8);
    uint16_t hsize;

    if (memcmp(buf, GABI_VHOST_STATE_MAGIC, m) != 0) {
        char q[64];

        state_bytes_quote(q, sizeof(q), buf, m);
        return FAIL(GABI_VHOST_STATE_BAD_MAGIC, -EPROTO,
                    "not a guestabi device-state stream: it starts with \"%s\", not \"GABISTAT\"",
                    q);
    }
    if (size < STATE_PROLOGUE_SIZE)
        return 0;
    memcpy(&hsize, buf + offsetof(struct state_wire_header, header_size), sizeof(hsize));
    hsize = le16toh(hsize);
    if (hsize < GABI_VHOST_STATE_HEADER_SIZE || hsize > GABI_VHOST_STATE_HEADER_MAX || hsize % 8)
        return FAIL(GABI_VHOST_STATE_BAD_HEADER, -EBADMSG,
                    "header size %u is not a multiple of 8 in 128..4096", hsize);
    return hsize;
}

int gabi_vhost_state_header_parse(const void *buf, size_t size,
                                  struct gabi_vhost_state_info *ret_info,
                                  enum gabi_vhost_state_outcome *ret_outcome,
                                  struct gabi_error *reterr)
{
    const uint8_t *b = buf;
    struct state_wire_header h;
    struct gabi_vhost_state_info info = {0};
    uint32_t want, got, incompat;
    uint16_t version;
    int hsize;

    hsize = state_header_size(b, size, ret_outcome, reterr);
    if (hsize < 0)
        return hsize;
    if (hsize == 0 || size < (size_t)hsize)
        return FAIL(GABI_VHOST_STATE_TRUNCATED, -EPIPE, "stream ended after %zu of %d header bytes",
                    size, hsize ? hsize : STATE_PROLOGUE_SIZE);
    memcpy(&want, b + hsize - 4, sizeof(want));
    want = le32toh(want);
    got = gabi_vhost_state_crc32c(0, b, (size_t)hsize - 4);
    if (want != got)
        return FAIL(GABI_VHOST_STATE_BAD_HEADER_CHECKSUM, -EBADMSG,
                    "header checksum mismatch: the header says CRC32C 0x%08" PRIx32
                    ", its bytes give 0x%08" PRIx32,
                    want, got);
    memcpy(&h, b, sizeof(h));
    version = le16toh(h.format_version);
    if (version != GABI_VHOST_STATE_FORMAT_VERSION)
        return FAIL(GABI_VHOST_STATE_UNSUPPORTED_FORMAT, -EPROTONOSUPPORT,
                    "stream format version %u is not supported (this reader knows %d)", version,
                    GABI_VHOST_STATE_FORMAT_VERSION);
    incompat = le32toh(h.incompat_flags);
    if (incompat & ~KNOWN_INCOMPAT_FLAGS)
        return FAIL(GABI_VHOST_STATE_UNSUPPORTED_FORMAT, -EPROTONOSUPPORT,
                    "stream uses incompatible flags 0x%" PRIx32 " this reader does not know",
                    incompat & ~KNOWN_INCOMPAT_FLAGS);
    if (!field_valid(h.device_type, sizeof(h.device_type))) {
        char q[4 * sizeof(h.device_type) + 1];

        state_name_quote(q, sizeof(q), h.device_type, sizeof(h.device_type));
        return FAIL(GABI_VHOST_STATE_BAD_HEADER, -EBADMSG,
                    "device type \"%s\" is not 1..31 printable characters padded with NULs", q);
    }
    if (!field_valid(h.state_version, sizeof(h.state_version))) {
        char q[4 * sizeof(h.state_version) + 1];

        state_name_quote(q, sizeof(q), h.state_version, sizeof(h.state_version));
        return FAIL(GABI_VHOST_STATE_BAD_HEADER, -EBADMSG,
                    "state version \"%s\" is not 1..15 printable characters padded with NULs", q);
    }
    memcpy(info.device_type, h.device_type, sizeof(h.device_type));
    memcpy(info.state_version, h.state_version, sizeof(h.state_version));
    info.payload_size = le64toh(h.payload_size);
    info.compat_flags = le32toh(h.compat_flags);
    *ret_info = info;
    return hsize;
}

void state_trailer_encode(uint32_t payload_checksum, uint8_t ret_buf[GABI_VHOST_STATE_TRAILER_SIZE])
{
    struct state_wire_trailer t;

    memcpy(t.magic, GABI_VHOST_STATE_TRAILER_MAGIC, sizeof(t.magic));
    t.payload_checksum = htole32(payload_checksum);
    t.trailer_checksum = htole32(
        gabi_vhost_state_crc32c(0, &t, offsetof(struct state_wire_trailer, trailer_checksum)));
    memcpy(ret_buf, &t, sizeof(t));
}

int state_trailer_check(const uint8_t buf[GABI_VHOST_STATE_TRAILER_SIZE], uint32_t payload_checksum,
                        enum gabi_vhost_state_outcome *ret_outcome, struct gabi_error *reterr)
{
    struct state_wire_trailer t;

    memcpy(&t, buf, sizeof(t));
    if (memcmp(t.magic, GABI_VHOST_STATE_TRAILER_MAGIC, sizeof(t.magic)) != 0 ||
        le32toh(t.trailer_checksum) !=
            gabi_vhost_state_crc32c(0, &t, offsetof(struct state_wire_trailer, trailer_checksum)))
        return FAIL(GABI_VHOST_STATE_BAD_TRAILER, -EBADMSG,
                    "the trailer after the payload is damaged (no \"GABI-END\" with a valid "
                    "trailer checksum)");
    if (le32toh(t.payload_checksum) != payload_checksum)
        return FAIL(GABI_VHOST_STATE_BAD_CHECKSUM, -EBADMSG,
                    "payload checksum mismatch: the trailer says CRC32C 0x%08" PRIx32
                    ", the payload received gives 0x%08" PRIx32,
                    le32toh(t.payload_checksum), payload_checksum);
    return 0;
}
