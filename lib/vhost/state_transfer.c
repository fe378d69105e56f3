/* SPDX-License-Identifier: MIT */
/*
 * Moving one device-state stream through SET_DEVICE_STATE_FD's channel, driven by the
 * caller's event loop: every step is a non-blocking read, write, splice or vmsplice on the
 * channel fd, and process() returns as soon as one would block.
 *
 * Where the channel is a pipe, payload bytes avoid user-space copies: device memory is
 * vmspliced (the pipe refers to the device's pages), a device file is spliced from its page
 * cache, and on the receiving side a pipe is spliced into the device's file. The checksum
 * still has to see every byte: it reads device memory in place, and a file's bytes through
 * pread() into a 256 KiB scratch buffer right after (receiver) or shortly before (sender) they
 * move, while they are in the cache. Not through a mapping of the file: a mapping costs a page
 * fault for every 4 KiB page each time it is made (populating it ahead costs the same), which
 * on the virtual machine it was measured on was slower than the transfer itself; the
 * buffer's pages stay mapped, and the copy into it runs from the cache.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <guestabi/util.h>
#include "vhost/state_internal.h"

#define PIPE_WANT    (1 << 20)   /* grow pipes to this (F_SETPIPE_SZ) where allowed */
#define SCRATCH_SIZE (256 << 10) /* buffer for COPY segments */
#define READ_CHUNK   (1 << 20)   /* reader: bytes read or spliced, then checksummed, per step */
#define SUM_STEP     (256 << 10) /* writer: bytes checksummed per step while the pipe is full */
#define SUM_AHEAD    (2 << 20)   /* writer: how far the checksum may run ahead of the pipe */
#define WINDOW_SIZE  (16 << 20)  /* file mappings, for checksumming file segments */
#define SEG_MAX      ((uint64_t)1 << 40)

enum phase {
    PHASE_HEADER,
    PHASE_PAYLOAD,
    PHASE_TRAILER,
    PHASE_EOF, /* reader: trailer read, waiting for EOF; writer: everything sent */
};

struct channel {
    int fd;
    bool is_pipe;
    bool is_socket;
    int pipe_size;
};

/* A read-only mapping of part of a file. */
struct window {
    int fd;
    uint64_t start; /* file offset of map[0], page-aligned */
    size_t len;
    uint8_t *map;
};

/* ---- helpers shared by both directions --------------------------------------------------- */

static int grow_pipe(int fd)
{
    int size = fcntl(fd, F_GETPIPE_SZ);

    if (size < 0)
        return 0;
    for (int want = PIPE_WANT; want > size; want /= 2) {
        int r = fcntl(fd, F_SETPIPE_SZ, want);

        if (r >= 0)
            return r;
    }
    return size;
}

/* Open the channel on fd, taken in every case: on failure ch->fd still holds it (or the
 * description put in its place) for the owner's free to close. */
static int channel_open(struct channel *ch, int fd, bool writing, struct gabi_error *reterr)
{
    struct stat st;
    int fl, mode, r;

    ch->fd = fd;
    if (fd < 0)
        return gabi_error_set(reterr, -EBADF, NULL, "no device-state fd");
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fstat(fd, &st) < 0)
        return gabi_error_set(reterr, -errno, NULL, "device-state fd %d: %m", fd);
    mode = fl & O_ACCMODE;
    if (writing ? mode == O_RDONLY : mode == O_WRONLY)
        return gabi_error_set(reterr, -EBADF, NULL, "device-state fd %d is not open for %s", fd,
                              writing ? "writing" : "reading");
    /* a description of our own where possible: the front-end may hold this one too */
    r = gabi_fd_nonblock_own(&ch->fd);
    if (r < 0)
        return gabi_error_set(reterr, r, NULL, "device-state fd %d: O_NONBLOCK: %s", fd,
                              strerror(-r));
    ch->is_pipe = S_ISFIFO(st.st_mode);
    ch->is_socket = S_ISSOCK(st.st_mode);
    ch->pipe_size = ch->is_pipe ? grow_pipe(ch->fd) : 0;
    return 0;
}

static ssize_t channel_send(const struct channel *ch, const void *buf, size_t size)
{
    ssize_t n;

    do {
        if (ch->is_socket)
            n = send(ch->fd, buf, size, MSG_NOSIGNAL | MSG_DONTWAIT);
        else
            n = write(ch->fd, buf, size);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static ssize_t channel_recv(const struct channel *ch, void *buf, size_t size)
{
    ssize_t n;

    do
        n = read(ch->fd, buf, size);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static size_t page_size(void)
{
    static size_t ps;

    if (!ps)
        ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

static void window_drop(struct window *w)
{
    if (w->map)
        munmap(w->map, w->len);
    w->map = NULL;
    w->fd = -1;
}

/* Point *ret at file bytes [off, off + *ret_avail), 1 <= *ret_avail <= want, mapping a new
 * window when off lies outside the current one. */
static int window_get(struct window *w, int fd, uint64_t off, size_t want, int flags,
                      const uint8_t **ret, size_t *ret_avail)
{
    if (!w->map || w->fd != fd || off < w->start || off >= w->start + w->len) {
        uint64_t start = off & ~(uint64_t)(page_size() - 1);
        size_t len = (size_t)MIN((uint64_t)want + (off - start), (uint64_t)WINDOW_SIZE);
        void *map;

        window_drop(w);
        map = mmap(NULL, len, PROT_READ, MAP_SHARED | flags, fd, (off_t)start);
        if (map == MAP_FAILED)
            return -errno;
        w->map = map;
        w->fd = fd;
        w->start = start;
        w->len = len;
    }
    *ret = w->map + (off - w->start);
    *ret_avail = (size_t)MIN((uint64_t)want, w->start + w->len - off);
    return 0;
}

static int finished(enum gabi_vhost_state_outcome outcome, const struct gabi_error *err,
                    struct gabi_error *reterr)
{
    if (outcome == GABI_VHOST_STATE_SUCCEEDED)
        return 0;
    if (outcome == GABI_VHOST_STATE_PENDING)
        return -EINPROGRESS;
    if (reterr)
        *reterr = *err;
    return err->code;
}

/* ---- writer ------------------------------------------------------------------------------ */

struct gabi_vhost_state_writer {
    struct channel ch;
    const struct gabi_vhost_state_source_ops *ops;
    void *userdata;
    enum phase phase;
    uint8_t header[GABI_VHOST_STATE_HEADER_SIZE];
    uint8_t trailer[GABI_VHOST_STATE_TRAILER_SIZE];
    size_t frame_done; /* bytes of the header or trailer sent */
    uint64_t payload_size;
    uint64_t offset; /* payload bytes sent */
    uint32_t crc;
    bool have_seg;
    struct gabi_vhost_state_seg seg;
    size_t seg_done;   /* bytes of seg sent */
    size_t seg_summed; /* bytes of seg checksummed (up to SUM_AHEAD beyond seg_done) */
    uint8_t *scratch;
    struct window win;
    enum gabi_vhost_state_outcome outcome;
    struct gabi_error err;
    struct gabi_vhost_state_stats stats;
};

static void writer_release(struct gabi_vhost_state_writer *w)
{
    close_and_clear(&w->ch.fd);
    window_drop(&w->win);
    free(w->scratch);
    w->scratch = NULL;
}

/* Fail for good: the fd is closed at once, so the reader sees the stream end early. */
__attribute__((format(printf, 4, 5))) static int writer_fail(struct gabi_vhost_state_writer *w,
                                                             enum gabi_vhost_state_outcome outcome,
                                                             int code, const char *fmt, ...)
{
    va_list ap;

    w->outcome = outcome;
    va_start(ap, fmt);
    gabi_error_setv(&w->err, code, NULL, fmt, ap);
    va_end(ap);
    writer_release(w);
    return code;
}

int gabi_vhost_state_writer_new(int fd, const char *device_type, const char *state_version,
                                uint64_t payload_size,
                                const struct gabi_vhost_state_source_ops *ops, void *userdata,
                                struct gabi_vhost_state_writer **ret, struct gabi_error *reterr)
{
    _cleanup_close_ int owned = fd;
    _cleanup_(gabi_vhost_state_writer_freep) struct gabi_vhost_state_writer *w = NULL;
    struct gabi_vhost_state_info info = {0};
    int r;

    if (!ops || !ops->get)
        return gabi_error_set(reterr, -EINVAL, NULL, "the source has no get callback");
    if (!device_type || !state_version ||
        gabi_strlcpy(info.device_type, device_type, sizeof(info.device_type)) >=
            sizeof(info.device_type) ||
        gabi_strlcpy(info.state_version, state_version, sizeof(info.state_version)) >=
            sizeof(info.state_version))
        return gabi_error_set(reterr, -EINVAL, NULL,
                              "device type and state version must be 1..31 and 1..15 printable "
                              "ASCII characters");
    info.payload_size = payload_size;
    w = calloc(1, sizeof(*w));
    if (!w)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    w->ch.fd = -1;
    w->win.fd = -1;
    r = gabi_vhost_state_header_encode(&info, w->header, reterr);
    if (r < 0)
        return r;
    w->scratch = malloc(SCRATCH_SIZE);
    if (!w->scratch)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    r = channel_open(&w->ch, TAKE_FD(owned), true, reterr);
    if (r < 0)
        return r;
    w->ops = ops;
    w->userdata = userdata;
    w->payload_size = payload_size;
    *ret = TAKE_PTR(w);
    return 0;
}

struct gabi_vhost_state_writer *gabi_vhost_state_writer_free(struct gabi_vhost_state_writer *w)
{
    if (w) {
        writer_release(w);
        free(w);
    }
    return NULL;
}

int gabi_vhost_state_writer_get_fd(const struct gabi_vhost_state_writer *w)
{
    return w->ch.fd;
}

uint32_t gabi_vhost_state_writer_get_events(const struct gabi_vhost_state_writer *w)
{
    return w->outcome == GABI_VHOST_STATE_PENDING ? POLLOUT : 0;
}

int gabi_vhost_state_writer_result(const struct gabi_vhost_state_writer *w,
                                   struct gabi_error *reterr)
{
    return finished(w->outcome, &w->err, reterr);
}

enum gabi_vhost_state_outcome
gabi_vhost_state_writer_outcome(const struct gabi_vhost_state_writer *w)
{
    return w->outcome;
}

void gabi_vhost_state_writer_get_stats(const struct gabi_vhost_state_writer *w,
                                       struct gabi_vhost_state_stats *ret)
{
    *ret = w->stats;
    ret->pipe_size = w->ch.pipe_size;
}

/* Ask the source for the next segment and check what it says. */
static int writer_next_seg(struct gabi_vhost_state_writer *w)
{
    struct gabi_vhost_state_seg seg = {.fd = -1};
    struct gabi_error e = {0};
    size_t max = (size_t)MIN(w->payload_size - w->offset, SEG_MAX);
    int r;

    r = w->ops->get(w->userdata, w->offset, max, w->scratch, SCRATCH_SIZE, &seg, &e);
    if (r < 0)
        return writer_fail(w, GABI_VHOST_STATE_SOURCE, r,
                           "the device could not supply state bytes at offset %" PRIu64 ": %s",
                           w->offset, e.message[0] ? e.message : strerror(-r));
    if (seg.size == 0 || seg.size > max)
        return writer_fail(w, GABI_VHOST_STATE_SOURCE, -EINVAL,
                           "the device supplied %zu bytes at offset %" PRIu64 ", outside 1..%zu",
                           seg.size, w->offset, max);
    switch (seg.type) {
    case GABI_VHOST_STATE_SEG_COPY:
    case GABI_VHOST_STATE_SEG_MEMORY:
        if (!seg.mem)
            return writer_fail(w, GABI_VHOST_STATE_SOURCE, -EINVAL,
                               "the device supplied no memory for offset %" PRIu64, w->offset);
        break;
    case GABI_VHOST_STATE_SEG_FILE: {
        struct stat st;

        if (seg.fd < 0 || fstat(seg.fd, &st) < 0 || !S_ISREG(st.st_mode))
            return writer_fail(w, GABI_VHOST_STATE_SOURCE, -EINVAL,
                               "the device's file for offset %" PRIu64 " is no regular file",
                               w->offset);
        if (seg.offset > (uint64_t)st.st_size || (uint64_t)st.st_size - seg.offset < seg.size)
            return writer_fail(w, GABI_VHOST_STATE_SOURCE, -ENODATA,
                               "the device's file is %" PRIu64 " bytes long, it was to supply %zu "
                               "bytes from its offset %" PRIu64,
                               (uint64_t)st.st_size, seg.size, seg.offset);
        break;
    }
    default:
        return writer_fail(w, GABI_VHOST_STATE_SOURCE, -EINVAL,
                           "the device supplied a segment of unknown type %d", (int)seg.type);
    }
    w->seg = seg;
    w->seg_done = 0;
    w->have_seg = true;
    return 0;
}

/* Checksum the current segment from where the sum stands up to `end` (at most max bytes). */
static int writer_sum(struct gabi_vhost_state_writer *w, size_t end, size_t max)
{
    struct gabi_vhost_state_seg *seg = &w->seg;
    size_t n = MIN(end - w->seg_summed, max);
    const uint8_t *p;

    if (seg->type == GABI_VHOST_STATE_SEG_FILE && w->ch.is_pipe) {
        /* spliced from the page cache: read back into the scratch buffer (free while the
         * segment is a file), whose pages stay mapped, rather than mapping the file */
        uint64_t pos = seg->offset + w->seg_summed;
        ssize_t k;

        do
            k = pread(seg->fd, w->scratch, MIN(n, (size_t)SCRATCH_SIZE), (off_t)pos);
        while (k < 0 && errno == EINTR);
        if (k <= 0) {
            int e = k < 0 ? errno : ENODATA;

            return writer_fail(w, GABI_VHOST_STATE_SOURCE, -e,
                               "cannot read the device's file at offset %" PRIu64 ": %s", pos,
                               k < 0 ? strerror(e) : "the file ended");
        }
        p = w->scratch;
        n = (size_t)k;
    } else if (seg->type == GABI_VHOST_STATE_SEG_FILE) {
        /* a socket sends from a mapping of the file: the checksum reads the same one */
        uint64_t pos = seg->offset + w->seg_summed;
        size_t avail;
        int r =
            window_get(&w->win, seg->fd, pos, seg->size - w->seg_summed, MAP_POPULATE, &p, &avail);

        if (r < 0)
            return writer_fail(w, GABI_VHOST_STATE_SOURCE, r,
                               "cannot map the device's file at offset %" PRIu64 ": %s", pos,
                               strerror(-r));
        n = MIN(n, avail);
    } else {
        p = (const uint8_t *)seg->mem + w->seg_summed;
    }
    w->crc = gabi_vhost_state_crc32c(w->crc, p, n);
    w->seg_summed += n;
    return 0;
}

/* The pipe is full: checksum the current segment up to SUM_AHEAD bytes beyond what was sent
 * (or up to what was sent), then -EAGAIN: wait for room rather than try the pipe between steps,
 * which takes its lock, and waits for it (spinning) while the reader copies out of the pipe. */
static int writer_sum_while_full(struct gabi_vhost_state_writer *w, bool sum_now)
{
    size_t end = sum_now ? w->seg_done : MIN(w->seg.size, w->seg_done + SUM_AHEAD);

    while (w->seg_summed < end) {
        int r = writer_sum(w, end, SUM_STEP);

        if (r < 0)
            return r;
    }
    return -EAGAIN;
}

/*
 * One step of the payload: 0 after progress, -EAGAIN, or a failure. Bytes that stay where the
 * device keeps them (MEMORY, FILE into a pipe) are checksummed while the pipe is full, those
 * already sent and up to SUM_AHEAD bytes not sent yet: the reader never waits for the writer's
 * checksum, and finds what it copies next in the cache.
 */
static int writer_send_payload(struct gabi_vhost_state_writer *w)
{
    struct gabi_vhost_state_seg *seg = &w->seg;
    const uint8_t *p = NULL;
    bool sum_now = true;
    size_t left;
    ssize_t n;
    int r;

    if (!w->have_seg) {
        r = writer_next_seg(w);
        if (r < 0)
            return r;
        w->seg_summed = 0;
    }
    left = seg->size - w->seg_done;
    if (left == 0) {
        r = writer_sum(w, seg->size, SUM_STEP);
        if (r >= 0 && w->seg_summed == seg->size)
            w->have_seg = false;
        return r;
    }
    switch (seg->type) {
    case GABI_VHOST_STATE_SEG_MEMORY:
    case GABI_VHOST_STATE_SEG_COPY:
        p = (const uint8_t *)seg->mem + w->seg_done;
        if (seg->type == GABI_VHOST_STATE_SEG_MEMORY && w->ch.is_pipe) {
            /* the pipe takes references to the device's pages, not a copy */
            struct iovec iov = {.iov_base = (uint8_t *)seg->mem + w->seg_done, .iov_len = left};

            do
                n = vmsplice(w->ch.fd, &iov, 1, SPLICE_F_NONBLOCK);
            while (n < 0 && errno == EINTR);
            n = n < 0 ? -errno : n;
            if (n > 0)
                w->stats.vmspliced += (uint64_t)n;
            sum_now = false;
        } else {
            n = channel_send(&w->ch, p, left);
            if (n > 0)
                w->stats.copied += (uint64_t)n;
        }
        break;
    case GABI_VHOST_STATE_SEG_FILE:
        if (w->ch.is_pipe) {
            loff_t o = (loff_t)(seg->offset + w->seg_done);

            do
                n = splice(seg->fd, &o, w->ch.fd, NULL, left, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
            while (n < 0 && errno == EINTR);
            n = n < 0 ? -errno : n;
            if (n > 0)
                w->stats.spliced += (uint64_t)n;
            sum_now = false;
        } else {
            /* a socket: write from the mapping the checksum reads too */
            uint64_t pos = seg->offset + w->seg_done;
            size_t avail;

            r = window_get(&w->win, seg->fd, pos, left, MAP_POPULATE, &p, &avail);
            if (r < 0)
                return writer_fail(w, GABI_VHOST_STATE_SOURCE, r,
                                   "cannot map the device's file at offset %" PRIu64 ": %s", pos,
                                   strerror(-r));
            n = channel_send(&w->ch, p, avail);
            if (n > 0)
                w->stats.copied += (uint64_t)n;
        }
        if (n == 0)
            return writer_fail(w, GABI_VHOST_STATE_SOURCE, -ENODATA,
                               "the device's file ended at offset %" PRIu64,
                               seg->offset + w->seg_done);
        break;
    default:
        return writer_fail(w, GABI_VHOST_STATE_SOURCE, -EINVAL, "bad segment");
    }
    if (n == -EAGAIN)
        return writer_sum_while_full(w, sum_now);
    if (n < 0)
        return writer_fail(w, GABI_VHOST_STATE_IO, (int)n,
                           "writing the device state failed after %" PRIu64 " of %" PRIu64
                           " payload bytes: %s%s",
                           w->offset, w->payload_size, strerror((int)-n),
                           n == -EPIPE ? " (the reader closed the channel)" : "");
    w->seg_done += (size_t)n;
    w->offset += (uint64_t)n;
    w->stats.bytes += (uint64_t)n;
    if (sum_now) {
        /* bytes in the writer's hands only until the next callback are summed at once */
        r = writer_sum(w, w->seg_done, SIZE_MAX);
        if (r < 0)
            return r;
    } else if ((size_t)n < left) {
        /* a pipe that took less than it was offered is full */
        return writer_sum_while_full(w, false);
    }
    if (w->seg_done == seg->size && w->seg_summed == seg->size)
        w->have_seg = false;
    return 0;
}

/* The steps of a stream, as the reader's below: 0 after progress, -EAGAIN when the channel is
 * full, or a failure recorded by writer_fail (w->outcome no longer PENDING). */

/* The header or the trailer, whichever the phase is. */
static int writer_send_frame(struct gabi_vhost_state_writer *w)
{
    bool header = w->phase == PHASE_HEADER;
    const uint8_t *frame = header ? w->header : w->trailer;
    size_t frame_size = header ? sizeof(w->header) : sizeof(w->trailer);
    ssize_t n = channel_send(&w->ch, frame + w->frame_done, frame_size - w->frame_done);

    if (n == -EAGAIN)
        return -EAGAIN;
    if (n < 0)
        return writer_fail(w, GABI_VHOST_STATE_IO, (int)n,
                           "writing the device-state %s failed: %s%s",
                           header ? "header" : "trailer", strerror((int)-n),
                           n == -EPIPE ? " (the reader closed the channel)" : "");
    w->frame_done += (size_t)n;
    w->stats.bytes += (uint64_t)n;
    if (w->frame_done < frame_size)
        return 0;
    w->frame_done = 0;
    if (!header) {
        w->phase = PHASE_EOF;
    } else if (w->payload_size == 0) {
        state_trailer_encode(0, w->trailer);
        w->phase = PHASE_TRAILER;
    } else {
        w->phase = PHASE_PAYLOAD;
    }
    return 0;
}

static int writer_send_payload_phase(struct gabi_vhost_state_writer *w)
{
    int r = writer_send_payload(w);

    if (r < 0)
        return r;
    if (w->offset == w->payload_size && !w->have_seg) {
        state_trailer_encode(w->crc, w->trailer);
        w->phase = PHASE_TRAILER;
    }
    return 0;
}

static int writer_step(struct gabi_vhost_state_writer *w)
{
    switch (w->phase) {
    case PHASE_HEADER:
    case PHASE_TRAILER:
        return writer_send_frame(w);
    case PHASE_PAYLOAD:
        return writer_send_payload_phase(w);
    case PHASE_EOF:
    default:
        /* closing the fd is the end-of-stream mark */
        writer_release(w);
        w->outcome = GABI_VHOST_STATE_SUCCEEDED;
        return 0;
    }
}

int gabi_vhost_state_writer_process(struct gabi_vhost_state_writer *w, struct gabi_error *reterr)
{
    int r;

    while (w->outcome == GABI_VHOST_STATE_PENDING) {
        r = writer_step(w);
        if (r == -EAGAIN && w->outcome == GABI_VHOST_STATE_PENDING)
            return GABI_VHOST_STATE_MORE;
        if (r < 0)
            break;
    }
    /* the one exit of a stream that is over (or of a failure a step did not record) */
    r = finished(w->outcome, &w->err, reterr);
    return r < 0 ? r : GABI_VHOST_STATE_DONE;
}

/* ---- reader ------------------------------------------------------------------------------ */

struct gabi_vhost_state_reader {
    struct channel ch;
    const struct gabi_vhost_state_sink_ops *ops;
    void *userdata;
    char device_type[GABI_VHOST_STATE_TYPE_SIZE]; /* "" for any */
    uint64_t max_payload_size;
    enum phase phase;
    uint8_t header[GABI_VHOST_STATE_HEADER_MAX];
    size_t header_got;
    size_t header_size; /* 0 until the prologue said */
    bool have_info;
    bool begun; /* begin returned, and neither commit nor abort followed yet */
    struct gabi_vhost_state_info info;
    uint8_t trailer[GABI_VHOST_STATE_TRAILER_SIZE];
    size_t trailer_got;
    uint64_t offset; /* payload bytes received */
    uint32_t crc;
    bool have_seg;
    bool seg_no_splice;
    struct gabi_vhost_state_seg seg;
    size_t seg_done;
    uint8_t *scratch;
    enum gabi_vhost_state_outcome outcome;
    struct gabi_error err;
    struct gabi_vhost_state_stats stats;
};

static void reader_release(struct gabi_vhost_state_reader *rd)
{
    close_and_clear(&rd->ch.fd);
    free(rd->scratch);
    rd->scratch = NULL;
    if (rd->begun) {
        rd->begun = false;
        rd->ops->abort(rd->userdata);
    }
}

/* Fail for good: abort the sink, close the channel (a writer still writing gets EPIPE). A
 * message from a callback is appended after ": ". */
__attribute__((format(printf, 5, 6))) static int
reader_fail(struct gabi_vhost_state_reader *rd, enum gabi_vhost_state_outcome outcome, int code,
            const struct gabi_error *cause, const char *fmt, ...)
{
    size_t len;
    va_list ap;

    rd->outcome = outcome;
    va_start(ap, fmt);
    gabi_error_setv(&rd->err, code < 0 ? code : -EIO, NULL, fmt, ap);
    va_end(ap);
    if (cause) {
        len = strlen(rd->err.message);
        len += gabi_strlcpy(rd->err.message + len, ": ", sizeof(rd->err.message) - len);
        if (len < sizeof(rd->err.message))
            gabi_strlcpy(rd->err.message + len,
                         cause->message[0] ? cause->message : strerror(code < 0 ? -code : EIO),
                         sizeof(rd->err.message) - len);
    }
    reader_release(rd);
    return rd->err.code;
}

int gabi_vhost_state_reader_new(int fd, const char *device_type, uint64_t max_payload_size,
                                const struct gabi_vhost_state_sink_ops *ops, void *userdata,
                                struct gabi_vhost_state_reader **ret, struct gabi_error *reterr)
{
    _cleanup_close_ int owned = fd;
    _cleanup_(gabi_vhost_state_reader_freep) struct gabi_vhost_state_reader *rd = NULL;
    int r;

    if (!ops || !ops->accept || !ops->commit || !ops->abort || (!ops->dest && !ops->write))
        return gabi_error_set(reterr, -EINVAL, NULL,
                              "the sink needs accept, commit, abort, and dest or write callbacks");
    if (device_type && !state_name_valid(device_type, GABI_VHOST_STATE_TYPE_SIZE))
        return gabi_error_set(reterr, -EINVAL, NULL,
                              "device type must be 1..31 printable ASCII characters");
    rd = calloc(1, sizeof(*rd));
    if (!rd)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    rd->ch.fd = -1;
    rd->scratch = malloc(SCRATCH_SIZE);
    if (!rd->scratch)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    r = channel_open(&rd->ch, TAKE_FD(owned), false, reterr);
    if (r < 0)
        return r;
    if (device_type)
        gabi_strlcpy(rd->device_type, device_type, sizeof(rd->device_type));
    rd->max_payload_size = max_payload_size;
    rd->ops = ops;
    rd->userdata = userdata;
    *ret = TAKE_PTR(rd);
    return 0;
}

struct gabi_vhost_state_reader *gabi_vhost_state_reader_free(struct gabi_vhost_state_reader *rd)
{
    if (rd) {
        reader_release(rd);
        free(rd);
    }
    return NULL;
}

int gabi_vhost_state_reader_get_fd(const struct gabi_vhost_state_reader *rd)
{
    return rd->ch.fd;
}

uint32_t gabi_vhost_state_reader_get_events(const struct gabi_vhost_state_reader *rd)
{
    return rd->outcome == GABI_VHOST_STATE_PENDING ? POLLIN : 0;
}

int gabi_vhost_state_reader_result(const struct gabi_vhost_state_reader *rd,
                                   struct gabi_error *reterr)
{
    return finished(rd->outcome, &rd->err, reterr);
}

enum gabi_vhost_state_outcome
gabi_vhost_state_reader_outcome(const struct gabi_vhost_state_reader *rd)
{
    return rd->outcome;
}

const struct gabi_vhost_state_info *
gabi_vhost_state_reader_get_info(const struct gabi_vhost_state_reader *rd)
{
    return rd->have_info ? &rd->info : NULL;
}

void gabi_vhost_state_reader_get_stats(const struct gabi_vhost_state_reader *rd,
                                       struct gabi_vhost_state_stats *ret)
{
    *ret = rd->stats;
    ret->pipe_size = rd->ch.pipe_size;
}

/* The header is complete: check it, then let the device decide and prepare. */
static int reader_on_header(struct gabi_vhost_state_reader *rd)
{
    enum gabi_vhost_state_outcome o = GABI_VHOST_STATE_BAD_HEADER;
    struct gabi_error e = {0};
    int r;

    r = gabi_vhost_state_header_parse(rd->header, rd->header_size, &rd->info, &o, &e);
    if (r < 0)
        return reader_fail(rd, o, r, NULL, "%s", e.message);
    rd->have_info = true;
    if (rd->device_type[0] && strcmp(rd->device_type, rd->info.device_type) != 0)
        return reader_fail(rd, GABI_VHOST_STATE_WRONG_TYPE, -ENOTSUP, NULL,
                           "the stream holds state of device type \"%s\", this device is \"%s\"",
                           rd->info.device_type, rd->device_type);
    if (rd->max_payload_size && rd->info.payload_size > rd->max_payload_size)
        return reader_fail(rd, GABI_VHOST_STATE_TOO_LARGE, -EFBIG, NULL,
                           "the stream declares %" PRIu64
                           " payload bytes, this device takes at most %" PRIu64,
                           rd->info.payload_size, rd->max_payload_size);
    r = rd->ops->accept(rd->userdata, &rd->info, &e);
    if (r < 0)
        return reader_fail(rd, GABI_VHOST_STATE_REFUSED, r, &e,
                           "the device does not load %s state version \"%s\"", rd->info.device_type,
                           rd->info.state_version);
    if (rd->ops->begin) {
        r = rd->ops->begin(rd->userdata, &rd->info, &e);
        if (r < 0)
            return reader_fail(rd, GABI_VHOST_STATE_SINK, r, &e,
                               "the device could not prepare for %" PRIu64 " bytes of state",
                               rd->info.payload_size);
    }
    rd->begun = true;
    rd->phase = rd->info.payload_size ? PHASE_PAYLOAD : PHASE_TRAILER;
    return 0;
}

static int reader_next_seg(struct gabi_vhost_state_reader *rd)
{
    struct gabi_vhost_state_seg seg = {.type = GABI_VHOST_STATE_SEG_COPY, .fd = -1};
    struct gabi_error e = {0};
    size_t max = (size_t)MIN(rd->info.payload_size - rd->offset, SEG_MAX);
    int r;

    seg.size = max;
    if (rd->ops->dest) {
        r = rd->ops->dest(rd->userdata, rd->offset, max, &seg, &e);
        if (r < 0)
            return reader_fail(rd, GABI_VHOST_STATE_SINK, r, &e,
                               "the device has no room for state bytes at offset %" PRIu64,
                               rd->offset);
    }
    if (seg.size == 0 || seg.size > max || (seg.type == GABI_VHOST_STATE_SEG_MEMORY && !seg.mem) ||
        (seg.type == GABI_VHOST_STATE_SEG_FILE && (seg.fd < 0 || seg.offset > INT64_MAX - max)) ||
        (seg.type == GABI_VHOST_STATE_SEG_COPY && !rd->ops->write) ||
        (unsigned)seg.type > GABI_VHOST_STATE_SEG_FILE)
        return reader_fail(rd, GABI_VHOST_STATE_SINK, -EINVAL, NULL,
                           "the device gave an invalid destination for offset %" PRIu64
                           " (type %d, %zu bytes, at most %zu)",
                           rd->offset, (int)seg.type, seg.size, max);
    rd->seg = seg;
    rd->seg_done = 0;
    rd->seg_no_splice = false;
    rd->have_seg = true;
    return 0;
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t r = pwrite(fd, p, n, (off_t)off);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -EIO;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* Splice from the pipe into the device's file. -ENOTSUP when this file cannot take that path
 * (the caller copies instead): splice refuses it, or it is write-only, so what was spliced
 * could not be read back for the checksum. */
static ssize_t reader_splice_file(struct gabi_vhost_state_reader *rd, size_t want)
{
    loff_t o = (loff_t)(rd->seg.offset + rd->seg_done);
    ssize_t n;

    if (rd->seg_done == 0) {
        int fl = fcntl(rd->seg.fd, F_GETFL);

        if (fl < 0 || (fl & O_ACCMODE) == O_WRONLY)
            return -ENOTSUP;
    }
    do
        n = splice(rd->ch.fd, NULL, rd->seg.fd, &o, want, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EINVAL && rd->seg_done == 0 ? -ENOTSUP : -errno;
    return n;
}

/* Checksum n bytes just spliced into the device's file at file offset pos, read back into the
 * scratch buffer: they are still in the cache, and the buffer's pages are mapped already (a
 * mapping of the file would take a page fault per 4 KiB page, each time it is mapped). */
static int reader_sum_file(struct gabi_vhost_state_reader *rd, uint64_t pos, size_t n)
{
    while (n) {
        ssize_t k = pread(rd->seg.fd, rd->scratch, MIN(n, (size_t)SCRATCH_SIZE), (off_t)pos);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int e = k < 0 ? errno : EIO;

            return reader_fail(rd, GABI_VHOST_STATE_SINK, -e, NULL,
                               "reading back the state bytes spliced into the device's file at "
                               "offset %" PRIu64 " failed: %s",
                               pos, k < 0 ? strerror(e) : "the file is shorter");
        }
        rd->crc = gabi_vhost_state_crc32c(rd->crc, rd->scratch, (size_t)k);
        pos += (uint64_t)k;
        n -= (size_t)k;
    }
    return 0;
}

/* One step of the payload: 0 after taking bytes, -EAGAIN, or a failure. */
static int reader_take_payload(struct gabi_vhost_state_reader *rd)
{
    struct gabi_vhost_state_seg *seg = &rd->seg;
    const uint8_t *p = rd->scratch;
    struct gabi_error e = {0};
    bool spliced = false;
    size_t want;
    ssize_t n;
    int r;

    if (!rd->have_seg && (r = reader_next_seg(rd)) < 0)
        return r;
    want = MIN(seg->size - rd->seg_done, (size_t)READ_CHUNK);
    if (seg->type == GABI_VHOST_STATE_SEG_MEMORY) {
        uint8_t *dst = (uint8_t *)seg->mem + rd->seg_done;

        n = channel_recv(&rd->ch, dst, want);
        p = dst;
    } else if (seg->type == GABI_VHOST_STATE_SEG_FILE && rd->ch.is_pipe && !rd->seg_no_splice) {
        n = reader_splice_file(rd, want);
        if (n == -ENOTSUP) {
            rd->seg_no_splice = true;
            return 0;
        }
        if (n < 0 && n != -EAGAIN)
            return reader_fail(rd, GABI_VHOST_STATE_SINK, (int)n, NULL,
                               "splicing state into the device's file at offset %" PRIu64
                               " failed: %s",
                               seg->offset + rd->seg_done, strerror((int)-n));
        spliced = true;
    } else {
        n = channel_recv(&rd->ch, rd->scratch, MIN(want, (size_t)SCRATCH_SIZE));
    }
    if (n == -EAGAIN)
        return -EAGAIN;
    if (n < 0)
        return reader_fail(rd, GABI_VHOST_STATE_IO, (int)n, NULL,
                           "reading the device state failed after %" PRIu64 " of %" PRIu64
                           " payload bytes: %s",
                           rd->offset, rd->info.payload_size, strerror((int)-n));
    if (n == 0)
        return reader_fail(rd, GABI_VHOST_STATE_TRUNCATED, -EPIPE, NULL,
                           "the stream ended after %" PRIu64 " of %" PRIu64
                           " payload bytes (the writer closed it early)",
                           rd->offset, rd->info.payload_size);
    if (spliced) {
        r = reader_sum_file(rd, seg->offset + rd->seg_done, (size_t)n);
        if (r < 0)
            return r;
        rd->stats.spliced += (uint64_t)n;
    } else {
        rd->crc = gabi_vhost_state_crc32c(rd->crc, p, (size_t)n);
        rd->stats.copied += (uint64_t)n;
        if (seg->type == GABI_VHOST_STATE_SEG_FILE)
            r = pwrite_all(seg->fd, p, (size_t)n, seg->offset + rd->seg_done);
        else if (seg->type == GABI_VHOST_STATE_SEG_COPY)
            r = rd->ops->write(rd->userdata, rd->offset, p, (size_t)n, &e);
        else
            r = 0;
        if (r < 0)
            return reader_fail(rd, GABI_VHOST_STATE_SINK, r, &e,
                               "the device could not store state bytes at offset %" PRIu64,
                               rd->offset);
    }
    rd->seg_done += (size_t)n;
    rd->offset += (uint64_t)n;
    rd->stats.bytes += (uint64_t)n;
    if (rd->seg_done == seg->size)
        rd->have_seg = false;
    return 0;
}

/* EOF where the stream should end: verify, then let the device make the state live. */
static int reader_finish(struct gabi_vhost_state_reader *rd)
{
    enum gabi_vhost_state_outcome o = GABI_VHOST_STATE_BAD_TRAILER;
    struct gabi_error e = {0};
    int r;

    r = state_trailer_check(rd->trailer, rd->crc, &o, &e);
    if (r < 0)
        return reader_fail(rd, o, r, NULL, "%s", e.message);
    rd->begun = false;
    r = rd->ops->commit(rd->userdata, &e);
    if (r < 0) {
        rd->begun = true; /* abort follows a failed commit */
        return reader_fail(rd, GABI_VHOST_STATE_SINK, r, &e,
                           "the device could not make the received state live");
    }
    reader_release(rd); /* nothing to abort: committed */
    rd->outcome = GABI_VHOST_STATE_SUCCEEDED;
    return 0;
}

/* The steps of a stream, one per phase: each takes what the channel has for its phase and
 * returns 0 after progress, -EAGAIN when the channel is dry, or a failure recorded by
 * reader_fail (rd->outcome no longer PENDING). */

/* The prologue, then the rest of the header it sizes; a complete header is checked and offered
 * to the device. */
static int reader_take_header(struct gabi_vhost_state_reader *rd)
{
    enum gabi_vhost_state_outcome o = GABI_VHOST_STATE_BAD_HEADER;
    size_t want = rd->header_size ? rd->header_size : STATE_PROLOGUE_SIZE;
    struct gabi_error e = {0};
    ssize_t n;
    int r;

    n = channel_recv(&rd->ch, rd->header + rd->header_got, want - rd->header_got);
    if (n == -EAGAIN)
        return -EAGAIN;
    if (n < 0)
        return reader_fail(rd, GABI_VHOST_STATE_IO, (int)n, NULL,
                           "reading the device-state header failed: %s", strerror((int)-n));
    if (n == 0 && rd->header_got == 0)
        return reader_fail(rd, GABI_VHOST_STATE_TRUNCATED, -EPIPE, NULL,
                           "the stream is empty: the writer closed it without a header");
    if (n == 0)
        return reader_fail(
            rd, GABI_VHOST_STATE_TRUNCATED, -EPIPE, NULL,
            "the stream ended after %zu bytes, inside its %zu-byte header", rd->header_got,
            rd->header_size ? rd->header_size : (size_t)GABI_VHOST_STATE_HEADER_SIZE);
    rd->header_got += (size_t)n;
    rd->stats.bytes += (uint64_t)n;
    r = state_header_size(rd->header, rd->header_got, &o, &e);
    if (r < 0)
        return reader_fail(rd, o, r, NULL, "%s", e.message);
    rd->header_size = (size_t)r;
    if (rd->header_size && rd->header_got == rd->header_size)
        return reader_on_header(rd);
    return 0;
}

static int reader_take_payload_phase(struct gabi_vhost_state_reader *rd)
{
    int r = reader_take_payload(rd);

    if (r < 0)
        return r;
    if (rd->offset == rd->info.payload_size)
        rd->phase = PHASE_TRAILER;
    return 0;
}

static int reader_take_trailer(struct gabi_vhost_state_reader *rd)
{
    ssize_t n =
        channel_recv(&rd->ch, rd->trailer + rd->trailer_got, sizeof(rd->trailer) - rd->trailer_got);

    if (n == -EAGAIN)
        return -EAGAIN;
    if (n < 0)
        return reader_fail(rd, GABI_VHOST_STATE_IO, (int)n, NULL,
                           "reading the device-state trailer failed: %s", strerror((int)-n));
    if (n == 0)
        return reader_fail(rd, GABI_VHOST_STATE_TRUNCATED, -EPIPE, NULL,
                           "the stream ended after all %" PRIu64
                           " payload bytes but %zu of the %d trailer bytes",
                           rd->info.payload_size, rd->trailer_got, GABI_VHOST_STATE_TRAILER_SIZE);
    rd->trailer_got += (size_t)n;
    rd->stats.bytes += (uint64_t)n;
    if (rd->trailer_got == sizeof(rd->trailer))
        rd->phase = PHASE_EOF;
    return 0;
}

/* After the trailer the writer must close the channel: EOF finishes the stream. */
static int reader_take_eof(struct gabi_vhost_state_reader *rd)
{
    uint8_t extra;
    ssize_t n = channel_recv(&rd->ch, &extra, 1);

    if (n == -EAGAIN)
        return -EAGAIN;
    if (n < 0)
        return reader_fail(rd, GABI_VHOST_STATE_IO, (int)n, NULL,
                           "reading the end of the device state failed: %s", strerror((int)-n));
    if (n > 0)
        return reader_fail(rd, GABI_VHOST_STATE_OVERSIZE, -E2BIG, NULL,
                           "the stream goes on after its declared end (%zu header + %" PRIu64
                           " payload + %d trailer bytes)",
                           rd->header_size, rd->info.payload_size, GABI_VHOST_STATE_TRAILER_SIZE);
    return reader_finish(rd);
}

static int reader_step(struct gabi_vhost_state_reader *rd)
{
    switch (rd->phase) {
    case PHASE_HEADER:
        return reader_take_header(rd);
    case PHASE_PAYLOAD:
        return reader_take_payload_phase(rd);
    case PHASE_TRAILER:
        return reader_take_trailer(rd);
    case PHASE_EOF:
    default:
        return reader_take_eof(rd);
    }
}

int gabi_vhost_state_reader_process(struct gabi_vhost_state_reader *rd, struct gabi_error *reterr)
{
    int r;

    while (rd->outcome == GABI_VHOST_STATE_PENDING) {
        r = reader_step(rd);
        if (r == -EAGAIN && rd->outcome == GABI_VHOST_STATE_PENDING)
            return GABI_VHOST_STATE_MORE;
        if (r < 0)
            break;
    }
    /* the one exit of a stream that is over (or of a failure a step did not record) */
    r = finished(rd->outcome, &rd->err, reterr);
    return r < 0 ? r : GABI_VHOST_STATE_DONE;
}
