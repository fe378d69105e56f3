/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the vhost-user message stream into a back-end, through a real socketpair.
 *
 * Input: [flags][mem_len: u16 LE][mem_len bytes][message stream]
 *   flags bit 0: attach fds where a message takes them (a memfd of guest memory, eventfds)
 *   flags bit 1: send each message in two pieces (partial headers and payloads)
 * The mem bytes are repeated over a 1 MiB memfd, so rings and descriptors the stream points
 * at are fuzzer-controlled too. After every message each started vring is processed as a
 * device would (pop, write, push, flush; in bursts on odd vrings). Nothing may crash, leak, or
 * touch memory outside what was mapped; the back-end must end every connection cleanly.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <guestabi/log.h>
#include <guestabi/vhost_vring.h>

#include "vhost/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MEM_SIZE (1u << 20)

static const struct gabi_vhost_mode mode = {
    .name = "fuzz",
    .features =
        GABI_VHOST_TRANSPORT_FEATURES | (1ull << GABI_NET_F_MRG_RXBUF) | (1ull << GABI_NET_F_CSUM),
    .protocol_features = GABI_VHOST_PROTOCOL_FEATURES,
    .max_queue_pairs = 2,
    .max_queue_size = 256,
};

static int get_config(struct gabi_vhost_backend *b, uint32_t offset, void *buf, uint32_t size,
                      void *userdata)
{
    if (offset > 32 || size > 32 - offset)
        return -EINVAL;
    memset(buf, 0x42, size);
    return 0;
}

static const struct gabi_vhost_ops ops = {.get_config = get_config};

/* A device state of STATE_SIZE bytes: saved as copies, loaded into a scratch buffer. */
#define STATE_SIZE 3000u
static uint8_t state[STATE_SIZE], scratch[STATE_SIZE];

static int save_begin(struct gabi_vhost_backend *b, uint64_t *ret_size, struct gabi_error *reterr,
                      void *userdata)
{
    *ret_size = STATE_SIZE;
    return 0;
}

static int save_get(struct gabi_vhost_backend *b, uint64_t offset, size_t max, void *buf,
                    size_t buf_size, struct gabi_vhost_state_seg *ret, struct gabi_error *reterr,
                    void *userdata)
{
    size_t n = max < 1000 ? max : 1000;

    memcpy(buf, state + offset, n);
    *ret = (struct gabi_vhost_state_seg){.type = GABI_VHOST_STATE_SEG_COPY, .mem = buf, .size = n};
    return 0;
}

static int load_accept(struct gabi_vhost_backend *b, const struct gabi_vhost_state_info *info,
                       struct gabi_error *reterr, void *userdata)
{
    return strcmp(info->state_version, "1") == 0 ? 0 : -EPROTONOSUPPORT;
}

static int load_write(struct gabi_vhost_backend *b, uint64_t offset, const void *buf, size_t size,
                      struct gabi_error *reterr, void *userdata)
{
    memcpy(scratch + offset, buf, size);
    return 0;
}

static int load_commit(struct gabi_vhost_backend *b, struct gabi_error *reterr, void *userdata)
{
    memcpy(state, scratch, STATE_SIZE);
    return 0;
}

static void load_abort(struct gabi_vhost_backend *b, void *userdata)
{
}

static const struct gabi_vhost_state_ops state_ops = {
    .device_type = "fuzz-dev",
    .version = "1",
    .max_load_size = STATE_SIZE,
    .save_begin = save_begin,
    .save_get = save_get,
    .load_accept = load_accept,
    .load_write = load_write,
    .load_commit = load_commit,
    .load_abort = load_abort,
};

static void process_vrings(struct gabi_vhost_backend *b)
{
    static struct gabi_vhost_elem e, burst[8];
    static const uint8_t pattern[256] = {1, 2, 3};

    for (unsigned i = 0; i < gabi_vhost_backend_n_vrings(b); i++) {
        struct gabi_vhost_vring *vr = gabi_vhost_backend_vring(b, i);

        gabi_vhost_vring_avail_count(vr);
        gabi_vhost_vring_has_avail(vr);
        if (i % 2) {
            /* odd vrings the way a data path takes them: in bursts */
            for (unsigned k = 0; k < 40; k++) {
                uint32_t written[8];
                int n = gabi_vhost_vring_pop_burst(vr, burst, 8);

                if (n <= 0)
                    break;
                for (int j = 0; j < n; j++) {
                    uint8_t buf[64];
                    size_t r = gabi_vhost_elem_read(&burst[j], 0, buf, sizeof(buf));

                    written[j] = (uint32_t)(r + gabi_vhost_elem_write(&burst[j], 0, pattern,
                                                                      sizeof(pattern)));
                }
                if (k % 5 == 4 && n > 1) {
                    gabi_vhost_vring_unpop(vr, 1);
                    n--;
                }
                gabi_vhost_vring_push_burst(vr, burst, k % 2 ? written : NULL, (unsigned)n);
            }
        } else {
            for (unsigned k = 0; k < 300 && gabi_vhost_vring_pop(vr, &e) == 1; k++) {
                uint8_t buf[64];
                size_t n = gabi_vhost_elem_read(&e, 0, buf, sizeof(buf));

                n += gabi_vhost_elem_write(&e, 0, pattern, sizeof(pattern));
                gabi_vhost_vring_push(vr, &e, (uint32_t)(k % 3 == 0 ? e.in_len : n));
                if (k % 7 == 6)
                    gabi_vhost_vring_unpop(vr, 0);
            }
        }
        gabi_vhost_vring_flush(vr);
        gabi_vhost_vring_notify(vr, true);
    }
}

static void drain_fd(int fd)
{
    uint8_t buf[4096];

    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

static void drain(int fd)
{
    uint8_t buf[4096];

    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
}

/* SET_DEVICE_STATE_FD gets a real pipe: the end its direction asks for goes to the back-end;
 * for a load the fuzzer's guest-memory bytes are written into the other end (a stream to
 * parse), for a save it is kept to be drained. *peer: our end, or -1. */
static unsigned fds_for(const struct vhost_user_hdr *hdr, const uint8_t *payload, size_t n,
                        int memfd, int *fds, int *peer, const uint8_t *mem, size_t mem_len)
{
    unsigned k = 0;
    uint64_t u64 = 0;

    if (n >= 8)
        memcpy(&u64, payload, 8);
    switch (hdr->request) {
    case VHOST_USER_SET_MEM_TABLE: {
        uint32_t nreg = n >= 4 ? (payload[0] | (uint32_t)payload[1] << 8) : 0;

        for (; k < nreg && k < GABI_VHOST_MAX_FDS; k++)
            fds[k] = dup(memfd);
        break;
    }
    case VHOST_USER_ADD_MEM_REG:
    case VHOST_USER_REM_MEM_REG:
    case VHOST_USER_SET_LOG_BASE:
        fds[k++] = dup(memfd);
        break;
    case VHOST_USER_SET_VRING_KICK:
    case VHOST_USER_SET_VRING_CALL:
    case VHOST_USER_SET_VRING_ERR:
        if (!(u64 & VHOST_USER_VRING_NOFD))
            fds[k++] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        break;
    case VHOST_USER_SET_DEVICE_STATE_FD: {
        int p[2];

        if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
            abort();
        if ((u64 & 0xffffffff) == 1) { /* load: the back-end reads what we wrote */
            fds[k++] = p[0];
            if (mem_len && write(p[1], mem, mem_len) < 0) {
                /* a full pipe: the stream is what fits */
            }
            close(p[1]);
        } else {
            fds[k++] = p[1];
            *peer = p[0];
        }
        break;
    }
    case VHOST_USER_SET_LOG_FD:
    case VHOST_USER_SET_BACKEND_REQ_FD:
        fds[k++] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        break;
    default:
        break;
    }
    return k;
}

static void send_piece(int fd, const uint8_t *p, size_t n, const int *fds, unsigned n_fds)
{
    union vhost_cmsg_buf ctl;
    struct iovec iov = {(void *)p, n};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

    if (n_fds)
        vhost_msg_put_fds(&mh, &ctl, fds, n_fds);
    if (sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* the back-end closed the connection: the next dispatch notices */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int memfd = -1;
    static uint8_t *mem;
    struct gabi_vhost_backend_config cfg = {
        .name = "fuzz",
        .cls = GABI_CLASS_NET,
        .mode = &mode,
        .device_features = mode.features,
        .max_mem_slots = 8,
        .state = &state_ops,
    };
    int peer = -1;
    struct gabi_vhost_backend *b = NULL;
    size_t mem_len, pos;
    uint8_t flags;
    int sv[2];

    if (size < 3)
        return 0;
    if (memfd < 0) {
        signal(SIGPIPE, SIG_IGN);            /* a state channel whose other end is gone: EPIPE */
        if (getenv("GUESTABI_FUZZ_DEBUG")) { /* what the back-end does with each input */
            gabi_log_set_handler(gabi_log_stderr, NULL);
            gabi_log_set_max_level(GABI_LOG_DEBUG);
        }
        memfd = memfd_create("fuzz-guest", MFD_CLOEXEC);
        if (memfd < 0 || ftruncate(memfd, MEM_SIZE) < 0)
            abort();
        mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        if (mem == MAP_FAILED)
            abort();
    }
    flags = data[0];
    mem_len = data[1] | (size_t)data[2] << 8;
    if (mem_len > size - 3)
        mem_len = size - 3;
    if (mem_len > 4096)
        mem_len = 4096;
    if (mem_len)
        for (size_t off = 0; off < MEM_SIZE; off += mem_len)
            memcpy(mem + off, data + 3, mem_len < MEM_SIZE - off ? mem_len : MEM_SIZE - off);
    else
        memset(mem, 0, MEM_SIZE);
    pos = 3 + mem_len;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    if (gabi_vhost_backend_new(&cfg, &ops, NULL, &b, NULL) < 0 ||
        gabi_vhost_backend_attach_fd(b, sv[0], NULL) < 0)
        abort();
    while (pos < size && gabi_vhost_backend_connected(b)) {
        struct vhost_user_hdr hdr = {0};
        size_t n = size - pos, take;
        int fds[GABI_VHOST_MAX_FDS];
        unsigned n_fds = 0;

        memcpy(&hdr, data + pos, n < sizeof(hdr) ? n : sizeof(hdr));
        take = n < sizeof(hdr)
                   ? n
                   : sizeof(hdr) + (hdr.size < n - sizeof(hdr) ? hdr.size : n - sizeof(hdr));
        if (take > 4096)
            take = 4096;
        if ((flags & 1) && take >= sizeof(hdr)) {
            if (hdr.request == VHOST_USER_SET_DEVICE_STATE_FD && peer >= 0) {
                close(peer);
                peer = -1;
            }
            n_fds = fds_for(&hdr, data + pos + sizeof(hdr), take - sizeof(hdr), memfd, fds, &peer,
                            data + 3, mem_len);
        }
        if ((flags & 2) && take > 5) {
            send_piece(sv[1], data + pos, 5, fds, n_fds);
            gabi_vhost_backend_dispatch(b);
            send_piece(sv[1], data + pos + 5, take - 5, NULL, 0);
        } else {
            send_piece(sv[1], data + pos, take, fds, n_fds);
        }
        for (unsigned i = 0; i < n_fds; i++)
            close(fds[i]);
        pos += take;
        gabi_vhost_backend_dispatch(b);
        drain(sv[1]);
        /* a state channel: move what it takes (a save is drained by us, then EOF) */
        for (int i = 0; i < 8; i++) {
            gabi_vhost_backend_process_state(b);
            if (peer >= 0)
                drain_fd(peer);
        }
        drain(sv[1]);
        if (gabi_vhost_backend_connected(b))
            process_vrings(b);
    }
    if (peer >= 0)
        close(peer);
    close(sv[1]);
    /* end of stream: the connection closes cleanly */
    for (int i = 0; i < 4 && gabi_vhost_backend_connected(b); i++)
        gabi_vhost_backend_dispatch(b);
    if (gabi_vhost_backend_connected(b))
        abort();
    gabi_vhost_backend_free(b);
    return 0;
}
