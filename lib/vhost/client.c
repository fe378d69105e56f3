/* SPDX-License-Identifier: MIT */
/*
 * The front-end: requests with their replies (the table in protocol.h says which requests
 * always get one), the typed requests, memory sharing, vring start/stop as QEMU does it, and
 * a dirty log it can read back.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "vhost/internal.h"

#define DEFAULT_TIMEOUT_MS 10000

struct gabi_vhost_client {
    int fd;
    int timeout_ms;
    bool ack;
    uint64_t features;
    uint64_t protocol_features;
    uint8_t *log;
    uint64_t log_size;
    uint64_t state_limit; /* bytes a state relay passes at most */
    gabi_vhost_progress_fn progress;
    void *progress_userdata;
};

void gabi_vhost_client_set_progress(struct gabi_vhost_client *c, gabi_vhost_progress_fn fn,
                                    void *userdata)
{
    c->progress = fn;
    c->progress_userdata = userdata;
}

gabi_vhost_progress_fn vhost_client_progress(const struct gabi_vhost_client *c, void **ret_userdata)
{
    *ret_userdata = c->progress_userdata;
    return c->progress;
}

int gabi_vhost_client_new_fd(int fd, int timeout_ms, struct gabi_vhost_client **ret)
{
    struct gabi_vhost_client *c;

    if (fd < 0)
        return -EBADF;
    c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    c->fd = fd;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
    c->ack = true;
    c->state_limit = GABI_VHOST_STATE_RELAY_LIMIT;
    *ret = c;
    return 0;
}

int gabi_vhost_client_connect(const char *path, int timeout_ms, struct gabi_vhost_client **ret,
                              struct gabi_error *reterr)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd, r;

    if (strlen(path) >= sizeof(sa.sun_path))
        return gabi_error_set(reterr, -ENAMETOOLONG, path, "socket path too long");
    memcpy(sa.sun_path, path, strlen(path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return gabi_error_set(reterr, -errno, path, "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = -errno;
        close(fd);
        return gabi_error_set(reterr, r, path, "connect: %s", strerror(-r));
    }
    r = gabi_vhost_client_new_fd(fd, timeout_ms, ret);
    if (r < 0)
        return gabi_error_set(reterr, r, path, "%s", strerror(-r));
    return 0;
}

struct gabi_vhost_client *gabi_vhost_client_free(struct gabi_vhost_client *c)
{
    if (!c)
        return NULL;
    if (c->log)
        munmap(c->log, (size_t)c->log_size);
    close_and_clear(&c->fd);
    free(c);
    return NULL;
}

int gabi_vhost_client_fd(const struct gabi_vhost_client *c)
{
    return c->fd;
}

void gabi_vhost_client_set_ack(struct gabi_vhost_client *c, bool ack)
{
    c->ack = ack;
}

void gabi_vhost_client_set_state_limit(struct gabi_vhost_client *c, uint64_t max_bytes)
{
    c->state_limit = max_bytes ? max_bytes : GABI_VHOST_STATE_RELAY_LIMIT;
}

uint64_t vhost_client_state_limit(const struct gabi_vhost_client *c)
{
    return c->state_limit;
}

uint64_t gabi_vhost_client_features(const struct gabi_vhost_client *c)
{
    return c->features;
}

uint64_t gabi_vhost_client_protocol_features(const struct gabi_vhost_client *c)
{
    return c->protocol_features;
}

/* Read exactly size bytes within the timeout. fds in a reply are refused, unless ret_fd is
 * given: then one fd is taken (into *ret_fd, which must start at -1). */
static int recv_exact(struct gabi_vhost_client *c, void *buf, size_t size, int *ret_fd,
                      int timeout_ms)
{
    size_t got = 0;

    while (got < size) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int fds[1];
        unsigned n_fds = 0;
        ssize_t n;
        int r = poll(&p, 1, timeout_ms);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ETIMEDOUT;
        n = vhost_recv(c->fd, (uint8_t *)buf + got, size - got, fds, &n_fds,
                       ret_fd && *ret_fd < 0 ? 1 : 0);
        if (n_fds == 1)
            *ret_fd = fds[0];
        if (n == -EAGAIN)
            continue;
        if (n == -EMSGSIZE)
            return -EPROTO;
        if (n < 0)
            return (int)n;
        if (n == 0)
            return -ECONNRESET;
        got += (size_t)n;
    }
    return 0;
}

int vhost_client_call(struct gabi_vhost_client *c, uint32_t request, const void *payload,
                      uint32_t size, const int *fds, unsigned n_fds, void *reply,
                      uint32_t reply_max, uint32_t *ret_reply_size, int *ret_fd, int timeout_ms)
{
    struct vhost_user_hdr hdr = {.request = request, .flags = VHOST_USER_VERSION, .size = size};
    union vhost_user_payload in;
    int fd = -1, r;

    if (c->fd < 0)
        return -ENOTCONN;
    if (timeout_ms <= 0)
        timeout_ms = c->timeout_ms;
    r = vhost_send(c->fd, &hdr, payload, fds, n_fds, c->timeout_ms);
    if (r >= 0)
        r = recv_exact(c, &hdr, sizeof(hdr), ret_fd ? &fd : NULL, timeout_ms);
    if (r >= 0 && (hdr.request != request || hdr.flags != (VHOST_USER_VERSION | VHOST_USER_REPLY) ||
                   hdr.size > sizeof(in)))
        r = -EPROTO;
    if (r >= 0)
        r = recv_exact(c, &in, hdr.size, ret_fd ? &fd : NULL, c->timeout_ms);
    if (r < 0) {
        close_and_clear(&fd);
        return r;
    }
    memcpy(reply, &in, MIN(reply_max, hdr.size));
    *ret_reply_size = hdr.size;
    if (ret_fd)
        *ret_fd = fd;
    return 0;
}

int gabi_vhost_client_request(struct gabi_vhost_client *c, uint32_t request, bool need_reply,
                              const void *payload, uint32_t size, const int *fds, unsigned n_fds,
                              void *reply, uint32_t reply_max, uint32_t *ret_reply_size)
{
    const struct vhost_msg_info *info = vhost_msg_info(request);
    bool always = info && info->reply == VU_ALWAYS;
    bool ack =
        !always && (need_reply || c->ack) && (c->protocol_features & (1ull << GABI_PF_REPLY_ACK));
    struct vhost_user_hdr hdr = {
        .request = request,
        .flags = VHOST_USER_VERSION | (ack ? VHOST_USER_NEED_REPLY : 0),
        .size = size,
    };
    union vhost_user_payload in;
    int r;

    if (c->fd < 0)
        return -ENOTCONN;
    r = vhost_send(c->fd, &hdr, payload, fds, n_fds, c->timeout_ms);
    if (r < 0)
        return r;
    if (!always && !ack)
        return 0;
    r = recv_exact(c, &hdr, sizeof(hdr), NULL, c->timeout_ms);
    if (r < 0)
        return r;
    if (hdr.request != request || hdr.flags != (VHOST_USER_VERSION | VHOST_USER_REPLY) ||
        hdr.size > sizeof(in))
        return -EPROTO;
    r = recv_exact(c, &in, hdr.size, NULL, c->timeout_ms);
    if (r < 0)
        return r;
    if (ack) {
        if (hdr.size != sizeof(uint64_t))
            return -EPROTO;
        return in.u64 ? -EIO : 0;
    }
    if (reply)
        memcpy(reply, &in, MIN(reply_max, hdr.size));
    if (ret_reply_size)
        *ret_reply_size = hdr.size;
    return 0;
}

/* ---- typed requests --------------------------------------------------------------------- */

static int get_u64(struct gabi_vhost_client *c, uint32_t request, uint64_t *ret)
{
    uint64_t v = 0;
    uint32_t size = 0;
    int r = gabi_vhost_client_request(c, request, false, NULL, 0, NULL, 0, &v, sizeof(v), &size);

    if (r < 0)
        return r;
    if (size != sizeof(v))
        return -EPROTO;
    *ret = v;
    return 0;
}

static int set_u64(struct gabi_vhost_client *c, uint32_t request, uint64_t v)
{
    return gabi_vhost_client_request(c, request, false, &v, sizeof(v), NULL, 0, NULL, 0, NULL);
}

static int set_state(struct gabi_vhost_client *c, uint32_t request, unsigned index, uint32_t num)
{
    struct vhost_vring_state s = {.index = index, .num = num};

    return gabi_vhost_client_request(c, request, false, &s, sizeof(s), NULL, 0, NULL, 0, NULL);
}

int gabi_vhost_client_get_features(struct gabi_vhost_client *c, uint64_t *ret)
{
    return get_u64(c, VHOST_USER_GET_FEATURES, ret);
}

int gabi_vhost_client_set_features(struct gabi_vhost_client *c, uint64_t features)
{
    int r = set_u64(c, VHOST_USER_SET_FEATURES, features);

    if (r >= 0)
        c->features = features;
    return r;
}

int gabi_vhost_client_get_protocol_features(struct gabi_vhost_client *c, uint64_t *ret)
{
    return get_u64(c, VHOST_USER_GET_PROTOCOL_FEATURES, ret);
}

int gabi_vhost_client_set_protocol_features(struct gabi_vhost_client *c, uint64_t pf)
{
    int r = set_u64(c, VHOST_USER_SET_PROTOCOL_FEATURES, pf);

    if (r >= 0)
        c->protocol_features = pf;
    return r;
}

int gabi_vhost_client_set_owner(struct gabi_vhost_client *c)
{
    return gabi_vhost_client_request(c, VHOST_USER_SET_OWNER, false, NULL, 0, NULL, 0, NULL, 0,
                                     NULL);
}

int gabi_vhost_client_reset_owner(struct gabi_vhost_client *c)
{
    return gabi_vhost_client_request(c, VHOST_USER_RESET_OWNER, false, NULL, 0, NULL, 0, NULL, 0,
                                     NULL);
}

int gabi_vhost_client_reset_device(struct gabi_vhost_client *c)
{
    return gabi_vhost_client_request(c, VHOST_USER_RESET_DEVICE, false, NULL, 0, NULL, 0, NULL, 0,
                                     NULL);
}

int gabi_vhost_client_get_queue_num(struct gabi_vhost_client *c, uint64_t *ret)
{
    return get_u64(c, VHOST_USER_GET_QUEUE_NUM, ret);
}

int gabi_vhost_client_get_max_mem_slots(struct gabi_vhost_client *c, uint64_t *ret)
{
    return get_u64(c, VHOST_USER_GET_MAX_MEM_SLOTS, ret);
}

int gabi_vhost_client_set_vring_num(struct gabi_vhost_client *c, unsigned index, uint32_t num)
{
    return set_state(c, VHOST_USER_SET_VRING_NUM, index, num);
}

int gabi_vhost_client_set_vring_base(struct gabi_vhost_client *c, unsigned index, uint32_t base)
{
    return set_state(c, VHOST_USER_SET_VRING_BASE, index, base);
}

int gabi_vhost_client_get_vring_base(struct gabi_vhost_client *c, unsigned index,
                                     uint32_t *ret_base)
{
    struct vhost_vring_state s = {.index = index};
    uint32_t size = 0;
    int r = gabi_vhost_client_request(c, VHOST_USER_GET_VRING_BASE, false, &s, sizeof(s), NULL, 0,
                                      &s, sizeof(s), &size);

    if (r < 0)
        return r;
    if (size != sizeof(s) || s.index != index)
        return -EPROTO;
    *ret_base = s.num;
    return 0;
}

int gabi_vhost_client_set_vring_addr(struct gabi_vhost_client *c, unsigned index, uint32_t flags,
                                     uint64_t desc_uaddr, uint64_t used_uaddr, uint64_t avail_uaddr,
                                     uint64_t log_gpa)
{
    struct vhost_vring_addr a = {
        .index = index,
        .flags = flags,
        .desc_uaddr = desc_uaddr,
        .used_uaddr = used_uaddr,
        .avail_uaddr = avail_uaddr,
        .log_gpa = log_gpa,
    };

    return gabi_vhost_client_request(c, VHOST_USER_SET_VRING_ADDR, false, &a, sizeof(a), NULL, 0,
                                     NULL, 0, NULL);
}

static int set_vring_fd(struct gabi_vhost_client *c, uint32_t request, unsigned index, int fd)
{
    uint64_t v = (index & VHOST_USER_VRING_IDX_MASK) | (fd < 0 ? VHOST_USER_VRING_NOFD : 0);

    return gabi_vhost_client_request(c, request, false, &v, sizeof(v), fd < 0 ? NULL : &fd,
                                     fd < 0 ? 0 : 1, NULL, 0, NULL);
}

int gabi_vhost_client_set_vring_kick(struct gabi_vhost_client *c, unsigned index, int fd)
{
    return set_vring_fd(c, VHOST_USER_SET_VRING_KICK, index, fd);
}

int gabi_vhost_client_set_vring_call(struct gabi_vhost_client *c, unsigned index, int fd)
{
    return set_vring_fd(c, VHOST_USER_SET_VRING_CALL, index, fd);
}

int gabi_vhost_client_set_vring_err(struct gabi_vhost_client *c, unsigned index, int fd)
{
    return set_vring_fd(c, VHOST_USER_SET_VRING_ERR, index, fd);
}

int gabi_vhost_client_set_vring_enable(struct gabi_vhost_client *c, unsigned index, bool on)
{
    return set_state(c, VHOST_USER_SET_VRING_ENABLE, index, on);
}

int gabi_vhost_client_get_config(struct gabi_vhost_client *c, uint32_t offset, void *buf,
                                 uint32_t size)
{
    struct vhost_config cfg = {.offset = offset, .size = size};
    uint32_t got = 0;
    int r;

    if (size > GABI_VHOST_MAX_CONFIG_SIZE)
        return -EINVAL;
    r = gabi_vhost_client_request(c, VHOST_USER_GET_CONFIG, false, &cfg,
                                  VHOST_CONFIG_HDR_SIZE + size, NULL, 0, &cfg, sizeof(cfg), &got);
    if (r < 0)
        return r;
    if (got == 0)
        return -EIO; /* the back-end refused */
    if (got != VHOST_CONFIG_HDR_SIZE + size || cfg.size != size)
        return -EPROTO;
    memcpy(buf, cfg.region, size);
    return 0;
}

int gabi_vhost_client_set_config(struct gabi_vhost_client *c, uint32_t offset, const void *buf,
                                 uint32_t size, uint32_t flags)
{
    struct vhost_config cfg = {.offset = offset, .size = size, .flags = flags};

    if (size > GABI_VHOST_MAX_CONFIG_SIZE)
        return -EINVAL;
    memcpy(cfg.region, buf, size);
    return gabi_vhost_client_request(c, VHOST_USER_SET_CONFIG, false, &cfg,
                                     VHOST_CONFIG_HDR_SIZE + size, NULL, 0, NULL, 0, NULL);
}

int gabi_vhost_client_set_status(struct gabi_vhost_client *c, uint8_t status)
{
    return set_u64(c, VHOST_USER_SET_STATUS, status);
}

int gabi_vhost_client_get_status(struct gabi_vhost_client *c, uint8_t *ret)
{
    uint64_t v;
    int r = get_u64(c, VHOST_USER_GET_STATUS, &v);

    if (r < 0)
        return r;
    if (v > 0xff)
        return -EPROTO;
    *ret = (uint8_t)v;
    return 0;
}

int gabi_vhost_client_net_set_mtu(struct gabi_vhost_client *c, uint64_t mtu)
{
    return set_u64(c, VHOST_USER_NET_SET_MTU, mtu);
}

int gabi_vhost_client_send_rarp(struct gabi_vhost_client *c, const uint8_t mac[6])
{
    uint64_t v = 0;

    memcpy(&v, mac, 6);
    return set_u64(c, VHOST_USER_SEND_RARP, v);
}

int gabi_vhost_client_set_backend_req_fd(struct gabi_vhost_client *c, int fd)
{
    return gabi_vhost_client_request(c, VHOST_USER_SET_BACKEND_REQ_FD, true, NULL, 0, &fd, 1, NULL,
                                     0, NULL);
}

/* ---- sequences --------------------------------------------------------------------------- */

int gabi_vhost_client_negotiate(struct gabi_vhost_client *c, uint64_t want_features,
                                uint64_t want_pf, uint64_t *ret_features, uint64_t *ret_pf)
{
    uint64_t offered, pf = 0;
    int r = gabi_vhost_client_get_features(c, &offered);

    if (r < 0)
        return r;
    if (offered & (1ull << GABI_F_PROTOCOL_FEATURES)) {
        r = gabi_vhost_client_get_protocol_features(c, &pf);
        if (r < 0)
            return r;
        r = gabi_vhost_client_set_protocol_features(c, pf & want_pf);
        if (r < 0)
            return r;
    }
    r = gabi_vhost_client_set_owner(c);
    if (r < 0)
        return r;
    r = gabi_vhost_client_set_features(c, offered & want_features);
    if (r < 0)
        return r;
    if (ret_features)
        *ret_features = c->features;
    if (ret_pf)
        *ret_pf = c->protocol_features;
    return 0;
}

int gabi_vhost_client_stop_vring(struct gabi_vhost_client *c, unsigned index, uint32_t *ret_base)
{
    uint32_t base;
    int r = 0;

    if (c->features & (1ull << GABI_F_PROTOCOL_FEATURES))
        r = gabi_vhost_client_set_vring_enable(c, index, false);
    if (r >= 0)
        r = gabi_vhost_client_get_vring_base(c, index, &base);
    if (r >= 0 && base > 0xffff && !(c->features & (1ull << GABI_F_RING_PACKED)))
        return -EPROTO; /* split rings: a 16-bit index, bits 16-31 zero */
    if (r >= 0 && ret_base)
        *ret_base = base;
    return r;
}

/* ---- dirty log --------------------------------------------------------------------------- */

int gabi_vhost_client_set_log(struct gabi_vhost_client *c, uint64_t guest_size)
{
    uint64_t pages = (guest_size + GABI_VHOST_LOG_PAGE - 1) / GABI_VHOST_LOG_PAGE;
    uint64_t size = ((pages + 63) / 64) * 8; /* QEMU sizes it in 64-bit words */
    struct vhost_log l = {.mmap_size = size, .mmap_offset = 0};
    _cleanup_close_ int fd = -1;
    void *map;
    int r;

    if (size == 0 || size > GABI_VHOST_MAX_LOG_SIZE)
        return -EINVAL;
    fd = memfd_create("guestabi-dirty-log", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
        return -errno;
    map = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        return -errno;
    /* the reply's payload is not looked at: QEMU's back-ends send a u64, DPDK's none */
    r = gabi_vhost_client_request(c, VHOST_USER_SET_LOG_BASE, false, &l, sizeof(l), &fd, 1, NULL, 0,
                                  NULL);
    if (r < 0) {
        munmap(map, (size_t)size);
        return r;
    }
    if (c->log)
        munmap(c->log, (size_t)c->log_size);
    c->log = map;
    c->log_size = size;
    return 0;
}

bool gabi_vhost_client_log_dirty(const struct gabi_vhost_client *c, uint64_t gpa)
{
    uint64_t page = gpa / GABI_VHOST_LOG_PAGE;

    if (!c->log || page / 8 >= c->log_size)
        return false;
    return __atomic_load_n(&c->log[page / 8], __ATOMIC_RELAXED) & (1u << (page % 8));
}

uint64_t gabi_vhost_client_log_count(const struct gabi_vhost_client *c)
{
    uint64_t n = 0;

    for (uint64_t i = 0; c->log && i < c->log_size; i++)
        n += (uint64_t)__builtin_popcount(__atomic_load_n(&c->log[i], __ATOMIC_RELAXED));
    return n;
}

void gabi_vhost_client_log_clear(struct gabi_vhost_client *c)
{
    for (uint64_t i = 0; c->log && i < c->log_size; i++)
        __atomic_store_n(&c->log[i], 0, __ATOMIC_RELAXED);
}

/* ---- the offer, for the probe ----------------------------------------------------------- */

/* One connection: the offer, and whether a ring of `size` is accepted (size 0: do not try). */
static int probe_once(const char *path, int timeout_ms, uint32_t size, struct gabi_vhost_offer *o,
                      bool *ret_accepted, struct gabi_error *reterr)
{
    struct gabi_vhost_client *c = NULL;
    uint64_t v, pf = 0, known = (1ull << GABI_PF_MQ) | (1ull << GABI_PF_REPLY_ACK);
    int r = gabi_vhost_client_connect(path, timeout_ms, &c, reterr);

    if (r < 0)
        return r;
    r = gabi_vhost_client_get_features(c, &o->features);
    if (r >= 0 && (o->features & (1ull << GABI_F_PROTOCOL_FEATURES))) {
        r = gabi_vhost_client_get_protocol_features(c, &pf);
        if (r >= 0)
            r = gabi_vhost_client_set_protocol_features(c, pf & known);
    }
    o->protocol_features = pf;
    o->max_queue_pairs = 1;
    if (r >= 0 && (pf & (1ull << GABI_PF_MQ))) {
        r = gabi_vhost_client_get_queue_num(c, &v);
        if (r >= 0 && (v == 0 || v > UINT32_MAX))
            r = -EPROTO;
        if (r >= 0)
            o->max_queue_pairs = (uint32_t)v;
    }
    if (r < 0) {
        gabi_vhost_client_free(c);
        return gabi_error_set(reterr, r, path, "reading the offer: %s", strerror(-r));
    }
    if (size) {
        /* refused: a failure ack (REPLY_ACK), or a connection closed before the next reply */
        r = gabi_vhost_client_set_owner(c);
        if (r >= 0)
            r = gabi_vhost_client_set_vring_num(c, 0, size);
        if (r >= 0)
            r = gabi_vhost_client_get_features(c, &v);
        *ret_accepted = r >= 0;
    }
    gabi_vhost_client_free(c);
    return 0;
}

int gabi_vhost_client_probe_offer(const char *path, int timeout_ms, struct gabi_vhost_offer *ret,
                                  struct gabi_error *reterr)
{
    struct gabi_vhost_offer o = {0};
    unsigned lo = 0, hi = 15; /* ring sizes 2^lo .. 2^hi; 2^lo is known to be accepted */
    bool accepted = false;
    int r = probe_once(path, timeout_ms, 1, &o, &accepted, reterr);

    if (r < 0)
        return r;
    if (!accepted)
        return gabi_error_set(reterr, -EPROTO, path, "the back-end refuses even a ring of 1");
    while (lo < hi) {
        unsigned mid = (lo + hi + 1) / 2;
        struct gabi_vhost_offer again = {0};

        r = probe_once(path, timeout_ms, 1u << mid, &again, &accepted, reterr);
        if (r < 0)
            return r;
        if (again.features != o.features || again.protocol_features != o.protocol_features ||
            again.max_queue_pairs != o.max_queue_pairs)
            return gabi_error_set(reterr, -ESTALE, path, "the offer changed while probing");
        if (accepted)
            lo = mid;
        else
            hi = mid - 1;
    }
    o.max_queue_size = 1u << lo;
    *ret = o;
    return 0;
}
