/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The device-state stream and its transfer (docs/state-stream.md).
 *
 * A vhost-user back-end's state crosses SET_DEVICE_STATE_FD as one stream: a fixed 128-byte
 * header (magic, format version, device type, state version, payload size, header checksum),
 * the device's payload, a fixed 16-byte trailer (the payload's CRC32C), then EOF. The receiver
 * parses and checks the header, and asks the device whether it loads that (type, version),
 * before it hands the device a single payload byte; the version is never inside the blob.
 *
 * The writer and the reader are driven from the caller's event loop: poll get_fd() for
 * get_events(), call process() whenever the fd reports anything (level-triggered), until
 * process() returns GABI_VHOST_STATE_DONE or a negative errno. Neither ever blocks on the fd
 * (it is switched to O_NONBLOCK); regular-file sources and sinks are read and written as
 * regular files always are. They own no thread and no timer.
 *
 * Writing into a pipe whose reader has gone raises SIGPIPE: programs using the writer ignore
 * SIGPIPE (vhost-user back-ends do). Sockets are written with MSG_NOSIGNAL.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <guestabi/cleanup.h>
#include <guestabi/error.h>

#define GABI_VHOST_STATE_MAGIC          "GABISTAT" /* 8 bytes, no NUL on the wire */
#define GABI_VHOST_STATE_TRAILER_MAGIC  "GABI-END"
#define GABI_VHOST_STATE_FORMAT_VERSION 1
#define GABI_VHOST_STATE_HEADER_SIZE    128  /* what this version writes */
#define GABI_VHOST_STATE_HEADER_MAX     4096 /* the largest header a reader takes */
#define GABI_VHOST_STATE_TRAILER_SIZE   16
/* Field sizes on the wire, NUL padding included: at most 31 and 15 characters. */
#define GABI_VHOST_STATE_TYPE_SIZE    32
#define GABI_VHOST_STATE_VERSION_SIZE 16

/* What a header says. device_type and state_version: 1..31 / 1..15 printable ASCII characters
 * (0x21..0x7e), NUL-terminated. */
struct gabi_vhost_state_info {
    char device_type[GABI_VHOST_STATE_TYPE_SIZE];
    char state_version[GABI_VHOST_STATE_VERSION_SIZE];
    uint64_t payload_size;
    uint32_t compat_flags; /* informational bits a reader may ignore (none defined yet) */
};

/* How a transfer ended (or that it has not). The numbers are what a guestabi back-end answers
 * CHECK_DEVICE_STATE with (0 for success instead of 1): they never change. */
enum gabi_vhost_state_outcome {
    GABI_VHOST_STATE_PENDING = 0,
    GABI_VHOST_STATE_SUCCEEDED = 1,
    GABI_VHOST_STATE_BAD_MAGIC = 2,           /* not a guestabi device-state stream */
    GABI_VHOST_STATE_BAD_HEADER_CHECKSUM = 3, /* the header's CRC32C does not match */
    GABI_VHOST_STATE_BAD_HEADER = 4,          /* a header field is malformed */
    GABI_VHOST_STATE_UNSUPPORTED_FORMAT = 5,  /* format version or incompatible flag unknown here */
    GABI_VHOST_STATE_WRONG_TYPE = 6,          /* another device type's state */
    GABI_VHOST_STATE_REFUSED = 7,             /* the device does not load this state version */
    GABI_VHOST_STATE_TOO_LARGE = 8,           /* payload size above the reader's limit */
    GABI_VHOST_STATE_TRUNCATED = 9,           /* EOF before the declared end */
    GABI_VHOST_STATE_OVERSIZE = 10,           /* bytes after the declared end */
    GABI_VHOST_STATE_BAD_TRAILER = 11,        /* the trailer is damaged */
    GABI_VHOST_STATE_BAD_CHECKSUM = 12,       /* the payload's CRC32C does not match */
    GABI_VHOST_STATE_SINK = 13,               /* the device failed to take the payload */
    GABI_VHOST_STATE_SOURCE = 14,             /* the device failed to supply the payload */
    GABI_VHOST_STATE_IO = 15,                 /* the channel failed (EPIPE: the reader went away) */
    /* the back-end stopped it: a vring started, a new transfer, a reset, or the connection
     * ended before it was over */
    GABI_VHOST_STATE_CANCELLED = 16,
    GABI_VHOST_STATE_NO_TRANSFER = 17,   /* CHECK_DEVICE_STATE without a transfer before it */
    GABI_VHOST_STATE_NOT_SUSPENDED = 18, /* CHECK_DEVICE_STATE while a vring runs */
    GABI_VHOST_STATE_OUTCOME_COUNT,
};

/* "succeeded", "bad-magic", "truncated", ...; NULL when out of range. */
const char *gabi_vhost_state_outcome_name(enum gabi_vhost_state_outcome o);

/* What process() returns when it did not fail. */
enum gabi_vhost_state_progress {
    GABI_VHOST_STATE_MORE = 0, /* wait for get_events() on get_fd(), then call process() again */
    GABI_VHOST_STATE_DONE = 1, /* finished successfully; the fd is closed */
};

/* CRC32C (Castagnoli, the iSCSI/ext4 one): crc32c(crc32c(0, a), b) == crc32c(0, a || b).
 * Uses the SSE4.2 crc32 instruction where the CPU has it. */
uint32_t gabi_vhost_state_crc32c(uint32_t crc, const void *buf, size_t size);

/* Encode info as a header (format version 1, GABI_VHOST_STATE_HEADER_SIZE bytes). 0, or
 * -EINVAL with *reterr naming the bad field. */
int gabi_vhost_state_header_encode(const struct gabi_vhost_state_info *info,
                                   uint8_t ret_buf[GABI_VHOST_STATE_HEADER_SIZE],
                                   struct gabi_error *reterr);

/* Parse and check the header at the start of buf: magic, size, checksum, format version,
 * flags, fields. Returns the header's size in bytes (the payload starts there) and fills
 * *ret_info; or -errno, *ret_outcome (if not NULL) saying which check failed and *reterr why
 * (a buf shorter than the header is GABI_VHOST_STATE_TRUNCATED). */
int gabi_vhost_state_header_parse(const void *buf, size_t size,
                                  struct gabi_vhost_state_info *ret_info,
                                  enum gabi_vhost_state_outcome *ret_outcome,
                                  struct gabi_error *reterr);

/* ---- payload segments ------------------------------------------------------------------ */

enum gabi_vhost_state_seg_type {
    /* Bytes at `mem`, valid only until the next callback: they are copied (write/read). */
    GABI_VHOST_STATE_SEG_COPY = 0,
    /* Device memory that stays allocated and unchanged until the transfer is over (writer: it
     * may be vmspliced, so the pipe refers to it until the reader has consumed it; reader: the
     * payload is read straight into it). */
    GABI_VHOST_STATE_SEG_MEMORY,
    /* `size` bytes of the regular file `fd` from `offset` (writer: spliced into a pipe, the
     * file at least offset + size long; reader: spliced from a pipe into the file where the
     * fd is readable too, else written). Either way the library reads the range with pread()
     * to checksum it (a writer on a socket sends it from a read-only mapping), so the file must
     * not shrink during the transfer (the transfer fails; through the mapping, SIGBUS). The fd
     * stays the device's. */
    GABI_VHOST_STATE_SEG_FILE,
};

struct gabi_vhost_state_seg {
    enum gabi_vhost_state_seg_type type;
    void *mem;       /* COPY, MEMORY */
    int fd;          /* FILE */
    uint64_t offset; /* FILE: position in fd */
    size_t size;     /* 1 .. the `max` the callback was given */
};

/* Counters, for tests and benchmarks. */
struct gabi_vhost_state_stats {
    uint64_t bytes;     /* stream bytes moved: header + payload + trailer */
    uint64_t spliced;   /* payload bytes moved by splice() */
    uint64_t vmspliced; /* payload bytes moved by vmsplice() */
    uint64_t copied;    /* payload bytes moved by read()/write()/send() */
    int pipe_size;      /* the pipe's capacity after growing it; 0 when fd is no pipe */
};

/* ---- writer (SAVE) ---------------------------------------------------------------------- */

struct gabi_vhost_state_source_ops {
    /* Supply payload bytes from `offset` (< payload size) on: fill *ret with one segment of
     * 1..max bytes. For GABI_VHOST_STATE_SEG_COPY the bytes may be put in `scratch`
     * (scratch_size bytes, owned by the writer). 0, or -errno with *reterr saying why. */
    int (*get)(void *userdata, uint64_t offset, size_t max, void *scratch, size_t scratch_size,
               struct gabi_vhost_state_seg *ret, struct gabi_error *reterr);
};

struct gabi_vhost_state_writer;

/* A writer of one stream into fd (a pipe or a stream socket: SET_DEVICE_STATE_FD's channel).
 * Takes fd in every case (closed on failure too); switches it to O_NONBLOCK and grows a pipe
 * to 1 MiB where allowed. The stream ends by closing fd, after the trailer; a failure closes
 * it early, so the reader sees a truncated stream. */
int gabi_vhost_state_writer_new(int fd, const char *device_type, const char *state_version,
                                uint64_t payload_size,
                                const struct gabi_vhost_state_source_ops *ops, void *userdata,
                                struct gabi_vhost_state_writer **ret, struct gabi_error *reterr);
/* Closes fd if still open (a stream not finished ends truncated). NULL-safe; returns NULL. */
struct gabi_vhost_state_writer *gabi_vhost_state_writer_free(struct gabi_vhost_state_writer *w);
GABI_DEFINE_FREEP(struct gabi_vhost_state_writer, gabi_vhost_state_writer_free)

/* The fd to poll, -1 once finished; the poll(2)/epoll(7) events to wait for (POLLOUT), 0 once
 * finished. */
int gabi_vhost_state_writer_get_fd(const struct gabi_vhost_state_writer *w);
uint32_t gabi_vhost_state_writer_get_events(const struct gabi_vhost_state_writer *w);
/* Move as much as the fd takes without blocking. GABI_VHOST_STATE_MORE, _DONE, or -errno with
 * *reterr (the same failure every later call and writer_result() report). */
int gabi_vhost_state_writer_process(struct gabi_vhost_state_writer *w, struct gabi_error *reterr);
/* 0 when the whole stream was written, -EINPROGRESS while running, or the failure. */
int gabi_vhost_state_writer_result(const struct gabi_vhost_state_writer *w,
                                   struct gabi_error *reterr);
enum gabi_vhost_state_outcome
gabi_vhost_state_writer_outcome(const struct gabi_vhost_state_writer *w);
void gabi_vhost_state_writer_get_stats(const struct gabi_vhost_state_writer *w,
                                       struct gabi_vhost_state_stats *ret);

/* ---- reader (LOAD) ---------------------------------------------------------------------- */

/*
 * The device's side of a load. Calls, in order: accept (once the header checked out), begin,
 * dest/write for the payload in order, then exactly one of commit (EOF reached, length and
 * checksum verified) or abort (anything failed after begin, or the reader was freed early).
 * A device loads into a scratch area and makes it live in commit, so a failed transfer leaves
 * it as it was. If commit fails, abort follows.
 */
struct gabi_vhost_state_sink_ops {
    /* Does the device load this state? 0, or -errno with *reterr saying why not (e.g. "loads
     * versions 1, 2"). Required. */
    int (*accept)(void *userdata, const struct gabi_vhost_state_info *info,
                  struct gabi_error *reterr);
    /* Prepare a scratch area for info->payload_size bytes. Optional. */
    int (*begin)(void *userdata, const struct gabi_vhost_state_info *info,
                 struct gabi_error *reterr);
    /* Where payload bytes from `offset` go: one segment of 1..max bytes, MEMORY or FILE, or
     * COPY to have them handed to write() (`mem` unused). Optional: without it, every byte
     * goes to write(). */
    int (*dest)(void *userdata, uint64_t offset, size_t max, struct gabi_vhost_state_seg *ret,
                struct gabi_error *reterr);
    /* Payload bytes [offset, offset + size), in order (COPY segments). */
    int (*write)(void *userdata, uint64_t offset, const void *buf, size_t size,
                 struct gabi_error *reterr);
    /* Everything arrived and verified: make it live. Required. */
    int (*commit)(void *userdata, struct gabi_error *reterr);
    /* Drop what begin and write prepared. Required. */
    void (*abort)(void *userdata);
};

struct gabi_vhost_state_reader;

/* A reader of one stream from fd (SET_DEVICE_STATE_FD's channel). Takes fd in every case.
 * device_type: the only type this device loads (NULL: leave it to accept); max_payload_size:
 * the largest payload it takes (0: no limit beyond what begin refuses). */
int gabi_vhost_state_reader_new(int fd, const char *device_type, uint64_t max_payload_size,
                                const struct gabi_vhost_state_sink_ops *ops, void *userdata,
                                struct gabi_vhost_state_reader **ret, struct gabi_error *reterr);
/* Closes fd; aborts the sink if it began and did not finish. NULL-safe; returns NULL. */
struct gabi_vhost_state_reader *gabi_vhost_state_reader_free(struct gabi_vhost_state_reader *r);
GABI_DEFINE_FREEP(struct gabi_vhost_state_reader, gabi_vhost_state_reader_free)

int gabi_vhost_state_reader_get_fd(const struct gabi_vhost_state_reader *r);
/* POLLIN; 0 once finished. */
uint32_t gabi_vhost_state_reader_get_events(const struct gabi_vhost_state_reader *r);
/* Take as much as the fd has without blocking: GABI_VHOST_STATE_MORE, _DONE (EOF reached,
 * verified, committed), or -errno with *reterr. */
int gabi_vhost_state_reader_process(struct gabi_vhost_state_reader *r, struct gabi_error *reterr);
/* 0 when the state was received, verified and committed; -EINPROGRESS while running; or the
 * failure. CHECK_DEVICE_STATE is answered with this once it is not -EINPROGRESS. */
int gabi_vhost_state_reader_result(const struct gabi_vhost_state_reader *r,
                                   struct gabi_error *reterr);
enum gabi_vhost_state_outcome
gabi_vhost_state_reader_outcome(const struct gabi_vhost_state_reader *r);
/* The header, once it was parsed and checked (before accept is asked); else NULL. */
const struct gabi_vhost_state_info *
gabi_vhost_state_reader_get_info(const struct gabi_vhost_state_reader *r);
void gabi_vhost_state_reader_get_stats(const struct gabi_vhost_state_reader *r,
                                       struct gabi_vhost_state_stats *ret);
