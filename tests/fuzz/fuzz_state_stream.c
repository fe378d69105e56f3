/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the device-state reader. The first byte picks the sink (device memory, a
 * callback, a file that is spliced into, part memory part file) and whether the reader insists
 * on a device type; the rest is the stream, fed through a real pipe in pieces while the reader
 * runs. Whatever the bytes, the reader must end with an outcome, commit only a stream that
 * verified (and then hold exactly its payload), abort every sink it began otherwise, and name
 * the failure; never crash or leak.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <guestabi/vhost_state.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PAYLOAD (1 << 20)

enum kind { K_MEMORY, K_COPY, K_FILE, K_MIXED };

struct sink {
    enum kind kind;
    int fd;
    unsigned n_begin, n_commit, n_abort;
    uint8_t *scratch;
    uint64_t size;
    uint8_t *live;
};

static int accept_cb(void *userdata, const struct gabi_vhost_state_info *info,
                     struct gabi_error *reterr)
{
    (void)userdata;
    if (strcmp(info->state_version, "1") != 0 && strcmp(info->state_version, "2.0") != 0)
        return gabi_error_set(reterr, -ENOTSUP, NULL, "loads 1 and 2.0");
    return 0;
}

static int begin_cb(void *userdata, const struct gabi_vhost_state_info *info,
                    struct gabi_error *reterr)
{
    struct sink *k = userdata;

    (void)reterr;
    if (info->payload_size > MAX_PAYLOAD)
        abort(); /* the reader's limit must have stopped it */
    k->n_begin++;
    k->scratch = calloc(1, info->payload_size + 1);
    k->size = info->payload_size;
    if (!k->scratch)
        abort();
    if (k->fd >= 0 && ftruncate(k->fd, 0) < 0)
        abort();
    return 0;
}

static int dest_cb(void *userdata, uint64_t offset, size_t max, struct gabi_vhost_state_seg *ret,
                   struct gabi_error *reterr)
{
    struct sink *k = userdata;

    (void)reterr;
    if (offset >= k->size || max == 0 || max > k->size - offset)
        abort(); /* the reader asks for payload bytes only */
    if (k->kind == K_MEMORY || (k->kind == K_MIXED && offset < 100)) {
        ret->type = GABI_VHOST_STATE_SEG_MEMORY;
        ret->mem = k->scratch + offset;
        ret->size = k->kind == K_MIXED && max > 100 - offset ? 100 - offset : max;
    } else if (k->kind == K_FILE || k->kind == K_MIXED) {
        ret->type = GABI_VHOST_STATE_SEG_FILE;
        ret->fd = k->fd;
        ret->offset = offset;
        ret->size = max;
    } else {
        ret->type = GABI_VHOST_STATE_SEG_COPY;
        ret->size = max;
    }
    return 0;
}

static int write_cb(void *userdata, uint64_t offset, const void *buf, size_t size,
                    struct gabi_error *reterr)
{
    struct sink *k = userdata;

    (void)reterr;
    if (offset > k->size || size > k->size - offset)
        abort();
    memcpy(k->scratch + offset, buf, size);
    return 0;
}

static int commit_cb(void *userdata, struct gabi_error *reterr)
{
    struct sink *k = userdata;

    (void)reterr;
    k->n_commit++;
    k->live = k->scratch;
    k->scratch = NULL;
    return 0;
}

static void abort_cb(void *userdata)
{
    struct sink *k = userdata;

    k->n_abort++;
    free(k->scratch);
    k->scratch = NULL;
}

static const struct gabi_vhost_state_sink_ops ops = {
    .accept = accept_cb,
    .begin = begin_cb,
    .dest = dest_cb,
    .write = write_cb,
    .commit = commit_cb,
    .abort = abort_cb,
};

/* After a success: the sink holds exactly the payload the stream carried. */
static void check_payload(struct sink *k, const uint8_t *stream, size_t size)
{
    struct gabi_vhost_state_info info;
    int hsize = gabi_vhost_state_header_parse(stream, size, &info, NULL, NULL);

    if (hsize < 0 || info.payload_size != k->size ||
        size != (size_t)hsize + info.payload_size + GABI_VHOST_STATE_TRAILER_SIZE)
        abort();
    for (uint64_t i = 0; i < k->size; i++) {
        uint8_t b;

        if (k->kind == K_FILE || (k->kind == K_MIXED && i >= 100)) {
            if (pread(k->fd, &b, 1, (off_t)i) != 1)
                abort();
        } else {
            b = k->live[i];
        }
        if (b != stream[hsize + i])
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int file_fd = -1;
    struct gabi_vhost_state_reader *r = NULL;
    struct gabi_error err = {0};
    struct sink k = {.fd = -1};
    const uint8_t *stream;
    size_t done = 0, step;
    int ch[2], rc = GABI_VHOST_STATE_MORE;

    if (size < 1)
        return 0;
    signal(SIGPIPE, SIG_IGN);
    if (file_fd < 0 && (file_fd = memfd_create("fuzz-state", MFD_CLOEXEC)) < 0)
        abort();
    k.kind = (enum kind)(data[0] % 4);
    if (k.kind == K_FILE || k.kind == K_MIXED)
        k.fd = file_fd;
    step = 1 + (size_t)(data[0] >> 3) * 97; /* how the stream is cut into writes */
    stream = data + 1;
    size--;
    if (pipe2(ch, O_CLOEXEC | O_NONBLOCK) < 0)
        abort();
    if (gabi_vhost_state_reader_new(ch[0], data[0] & 4 ? "guestabi-blk" : NULL, MAX_PAYLOAD, &ops,
                                    &k, &r, &err) < 0)
        abort();
    while (rc == GABI_VHOST_STATE_MORE) {
        if (ch[1] >= 0) {
            ssize_t n = done < size
                            ? write(ch[1], stream + done, size - done < step ? size - done : step)
                            : 0;

            if (n > 0)
                done += (size_t)n;
            if (done == size || (n < 0 && errno == EPIPE)) {
                close(ch[1]);
                ch[1] = -1;
            }
        }
        rc = gabi_vhost_state_reader_process(r, &err);
    }
    if (ch[1] >= 0)
        close(ch[1]);
    if (rc == GABI_VHOST_STATE_DONE) {
        if (gabi_vhost_state_reader_outcome(r) != GABI_VHOST_STATE_SUCCEEDED || k.n_commit != 1 ||
            k.n_abort != 0 || done != size)
            abort();
        check_payload(&k, stream, size);
    } else {
        if (rc >= 0 || err.code != rc || !err.message[0] || k.n_commit != 0 ||
            k.n_abort != k.n_begin || gabi_vhost_state_reader_result(r, NULL) != rc ||
            gabi_vhost_state_reader_outcome(r) <= GABI_VHOST_STATE_SUCCEEDED)
            abort();
    }
    gabi_vhost_state_reader_free(r);
    if (k.n_abort != (rc == GABI_VHOST_STATE_DONE ? 0 : k.n_begin))
        abort();
    free(k.scratch);
    free(k.live);
    return 0;
}
