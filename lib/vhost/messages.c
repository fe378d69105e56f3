/* SPDX-License-Identifier: MIT */
/*
 * One handler per front-end request, and the dispatch built from VHOST_USER_MESSAGES
 * (protocol.h). Before a handler runs, the table has checked the request code, that it is
 * implemented, the protocol feature it needs, its payload size and its fd count; after it
 * returns, the fds it did not take are closed and the reply the table prescribes is sent.
 *
 * A handler returns 0, or fail(...) for input that ends the connection (the reason is
 * logged and kept). Softer refusals set rep->nack: the front-end gets a failure ack.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "vhost/internal.h"

typedef int handler_fn(struct gabi_vhost_backend *b, struct vhost_msg *m, struct vhost_reply *rep);

static const char *request_name(uint32_t request);

static int __attribute__((format(printf, 4, 5)))
fail(struct gabi_vhost_backend *b, const struct vhost_msg *m, int code, const char *fmt, ...)
{
    char why[GABI_ERROR_MESSAGE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    return gabi_error_set(&b->error, code, NULL, "%s: %s", request_name(m->hdr.request), why);
}

static void reply_u64(struct vhost_reply *rep, uint64_t v)
{
    rep->p.u64 = v;
    rep->size = sizeof(uint64_t);
}

static const char *feature_name(struct gabi_vhost_backend *b, unsigned bit)
{
    const char *n = gabi_feature_name(b->cls, bit);

    return n ? n : "unnamed feature";
}

static const char *pf_name(unsigned bit)
{
    const char *n = gabi_protocol_feature_name(bit);

    return n ? n : "unnamed protocol feature";
}

static struct gabi_vhost_vring *vring_of(struct gabi_vhost_backend *b, struct vhost_msg *m,
                                         uint32_t index)
{
    if (index < b->n_vrings)
        return &b->vrings[index];
    fail(b, m, -ERANGE, "vring %" PRIu32 " is beyond the %u vring%s of mode %s (%" PRIu32 " %s%s)",
         index, b->n_vrings, b->n_vrings == 1 ? "" : "s", b->mode.name, b->mode.max_queue_pairs,
         b->cls == GABI_CLASS_NET ? "queue pair" : "queue",
         b->mode.max_queue_pairs == 1 ? "" : "s");
    return NULL;
}

static void remap_vrings(struct gabi_vhost_backend *b)
{
    for (unsigned i = 0; i < b->n_vrings; i++)
        vhost_vring_remap(&b->vrings[i]);
}

/* ---- features ---------------------------------------------------------------------------- */

static int on_get_features(struct gabi_vhost_backend *b, struct vhost_msg *m,
                           struct vhost_reply *rep)
{
    reply_u64(rep, b->mode.features);
    return 0;
}

static int on_set_features(struct gabi_vhost_backend *b, struct vhost_msg *m,
                           struct vhost_reply *rep)
{
    uint64_t f = m->p.u64, extra = f & ~b->mode.features;

    if (extra) {
        unsigned bit = (unsigned)__builtin_ctzll(extra);

        return fail(b, m, -EINVAL,
                    "features 0x%" PRIx64 " include %s (bit %u), which mode %s does not offer", f,
                    feature_name(b, bit), bit, b->mode.name);
    }
    for (unsigned i = 0; i < b->n_vrings; i++) {
        if (b->vrings[i].started && ((f ^ b->features) & ~(1ull << GABI_F_LOG_ALL)))
            return fail(b, m, -EBUSY,
                        "features 0x%" PRIx64 " -> 0x%" PRIx64
                        " while vrings run: only VHOST_F_LOG_ALL may change",
                        b->features, f);
    }
    if (b->ops->features_changed && b->ops->features_changed(b, f, b->userdata) < 0)
        return fail(b, m, -EINVAL, "the device refused features 0x%" PRIx64, f);
    b->features = f;
    b->features_set = true;
    vhost_backend_update_logging(b);
    vhost_backend_logf(b, "features 0x%" PRIx64 "%s", f, b->logging ? " (dirty logging on)" : "");
    if (!(f & (1ull << GABI_F_PROTOCOL_FEATURES))) {
        /* legacy front-end: no SET_VRING_ENABLE will come */
        for (unsigned i = 0; i < b->n_vrings; i++) {
            if (!b->vrings[i].enabled) {
                b->vrings[i].enabled = true;
                if (b->ops->vring_enabled)
                    b->ops->vring_enabled(b, i, true, b->userdata);
            }
        }
    }
    return 0;
}

static int on_get_protocol_features(struct gabi_vhost_backend *b, struct vhost_msg *m,
                                    struct vhost_reply *rep)
{
    reply_u64(rep, b->mode.protocol_features);
    return 0;
}

static int on_set_protocol_features(struct gabi_vhost_backend *b, struct vhost_msg *m,
                                    struct vhost_reply *rep)
{
    uint64_t pf = m->p.u64, extra = pf & ~b->mode.protocol_features;

    if (extra) {
        unsigned bit = (unsigned)__builtin_ctzll(extra);

        return fail(b, m, -EINVAL,
                    "protocol features 0x%" PRIx64
                    " include %s (bit %u), which mode %s does not offer",
                    pf, pf_name(bit), bit, b->mode.name);
    }
    b->protocol_features = pf;
    b->pf_set = true;
    vhost_backend_logf(b, "protocol features 0x%" PRIx64, pf);
    return 0;
}

static int on_get_queue_num(struct gabi_vhost_backend *b, struct vhost_msg *m,
                            struct vhost_reply *rep)
{
    reply_u64(rep, b->mode.max_queue_pairs);
    return 0;
}

/* ---- session ----------------------------------------------------------------------------- */

static int on_set_owner(struct gabi_vhost_backend *b, struct vhost_msg *m, struct vhost_reply *rep)
{
    if (b->owner)
        vhost_backend_logf(b, "SET_OWNER again (ignored)");
    b->owner = true;
    return 0;
}

static void reset_device(struct gabi_vhost_backend *b, bool features)
{
    vhost_state_cancel(b, "the device was reset");
    vhost_backend_reset_vrings(b);
    if (features) {
        b->features = 0;
        b->features_set = false;
        vhost_backend_update_logging(b);
    }
    b->status = 0;
    if (b->ops->reset)
        b->ops->reset(b, b->userdata);
}

/* Deprecated: treated as "stop and disable every vring". */
static int on_reset_owner(struct gabi_vhost_backend *b, struct vhost_msg *m,
                          struct vhost_reply *rep)
{
    reset_device(b, false);
    return 0;
}

static int on_reset_device(struct gabi_vhost_backend *b, struct vhost_msg *m,
                           struct vhost_reply *rep)
{
    reset_device(b, true);
    return 0;
}

static int on_set_status(struct gabi_vhost_backend *b, struct vhost_msg *m, struct vhost_reply *rep)
{
    if (m->p.u64 > 0xff)
        return fail(b, m, -EINVAL, "status 0x%" PRIx64 " is more than a byte", m->p.u64);
    b->status = (uint8_t)m->p.u64;
    if (b->ops->status_changed)
        b->ops->status_changed(b, b->status, b->userdata);
    return 0;
}

static int on_get_status(struct gabi_vhost_backend *b, struct vhost_msg *m, struct vhost_reply *rep)
{
    reply_u64(rep, b->status);
    return 0;
}

static int on_set_backend_req_fd(struct gabi_vhost_backend *b, struct vhost_msg *m,
                                 struct vhost_reply *rep)
{
    if (m->n_fds != 1)
        return fail(b, m, -EINVAL, "no fd attached");
    close_and_clear(&b->backend_req_fd);
    b->backend_req_fd = TAKE_FD(m->fds[0]);
    return 0;
}

/* ---- memory ------------------------------------------------------------------------------ */

static int on_set_mem_table(struct gabi_vhost_backend *b, struct vhost_msg *m,
                            struct vhost_reply *rep)
{
    const struct vhost_mem_table *t = &m->p.mem;
    struct vhost_mem fresh = {0};
    struct gabi_error e;

    if (t->nregions > VHOST_MEMORY_BASELINE_NREGIONS)
        return fail(b, m, -E2BIG, "%" PRIu32 " regions, at most %u", t->nregions,
                    VHOST_MEMORY_BASELINE_NREGIONS);
    if (m->hdr.size != 8 + t->nregions * sizeof(struct vhost_mem_region))
        return fail(b, m, -EINVAL, "%" PRIu32 " bytes of payload for %" PRIu32 " regions",
                    m->hdr.size, t->nregions);
    if (m->n_fds != t->nregions)
        return fail(b, m, -EINVAL, "%" PRIu32 " regions but %u fds", t->nregions, m->n_fds);
    for (unsigned i = 0; i < t->nregions; i++) {
        int r = vhost_mem_add(&fresh, b->max_mem_slots, &t->regions[i], m->fds[i], &e);

        if (r < 0) {
            vhost_mem_clear(&fresh);
            return fail(b, m, r, "region %u: %s", i, e.message);
        }
    }
    vhost_mem_clear(&b->mem);
    b->mem = fresh;
    remap_vrings(b);
    vhost_backend_logf(b, "memory table of %u regions", b->mem.n);
    return 0;
}

static int on_get_max_mem_slots(struct gabi_vhost_backend *b, struct vhost_msg *m,
                                struct vhost_reply *rep)
{
    reply_u64(rep, b->max_mem_slots);
    return 0;
}

static int on_add_mem_reg(struct gabi_vhost_backend *b, struct vhost_msg *m,
                          struct vhost_reply *rep)
{
    struct gabi_error e;
    int r;

    if (m->n_fds != 1)
        return fail(b, m, -EINVAL, "%u fds, one expected", m->n_fds);
    r = vhost_mem_add(&b->mem, b->max_mem_slots, &m->p.mem_reg.region, m->fds[0], &e);
    if (r < 0)
        return fail(b, m, r, "%s", e.message);
    remap_vrings(b);
    return 0;
}

static int on_rem_mem_reg(struct gabi_vhost_backend *b, struct vhost_msg *m,
                          struct vhost_reply *rep)
{
    const struct vhost_mem_region *reg = &m->p.mem_reg.region;

    if (vhost_mem_remove(&b->mem, reg) < 0)
        return fail(b, m, -ENOENT,
                    "no region gpa 0x%" PRIx64 " size 0x%" PRIx64 " uaddr 0x%" PRIx64, reg->gpa,
                    reg->size, reg->uaddr);
    remap_vrings(b);
    return 0;
}

/* ---- dirty log --------------------------------------------------------------------------- */

static int on_set_log_base(struct gabi_vhost_backend *b, struct vhost_msg *m,
                           struct vhost_reply *rep)
{
    uint64_t size = m->p.log.mmap_size, offset = m->p.log.mmap_offset, total;
    struct stat st;
    void *map;
    int guard;

    if (m->n_fds != 1)
        return fail(b, m, -EINVAL, "no shared-memory fd attached");
    if (size == 0 || size > GABI_VHOST_MAX_LOG_SIZE ||
        __builtin_add_overflow(size, offset, &total) || total > GABI_VHOST_MAX_LOG_SIZE * 2)
        return fail(b, m, -EINVAL,
                    "log of 0x%" PRIx64 " bytes at offset 0x%" PRIx64 " (at most 0x%llx bytes)",
                    size, offset, GABI_VHOST_MAX_LOG_SIZE);
    if (fstat(m->fds[0], &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < total)
        return fail(b, m, -EINVAL, "the log fd does not hold 0x%" PRIx64 " bytes", total);
    map = vhost_guard_map(m->fds[0], (size_t)total, &guard);
    if (map == MAP_FAILED)
        return fail(b, m, -errno, "cannot map the log: %s", strerror(errno));
    vhost_backend_unmap_log(b);
    b->log_map = map;
    b->log_guard = guard;
    b->log_map_size = (size_t)total;
    b->log = (uint8_t *)map + offset;
    b->log_size = size;
    vhost_backend_update_logging(b);
    vhost_backend_logf(b, "dirty log of %" PRIu64 " bytes%s", size, b->logging ? " (logging)" : "");
    reply_u64(rep, 0);
    return 0;
}

static int on_set_log_fd(struct gabi_vhost_backend *b, struct vhost_msg *m, struct vhost_reply *rep)
{
    close_and_clear(&b->log_call_fd);
    if (m->n_fds == 1)
        b->log_call_fd = TAKE_FD(m->fds[0]);
    return 0;
}

/* ---- vrings ------------------------------------------------------------------------------ */

static int on_set_vring_num(struct gabi_vhost_backend *b, struct vhost_msg *m,
                            struct vhost_reply *rep)
{
    struct gabi_vhost_vring *vr = vring_of(b, m, m->p.state.index);
    uint32_t num = m->p.state.num;

    if (!vr)
        return -ERANGE;
    if (num == 0 || (num & (num - 1)))
        return fail(b, m, -EINVAL, "vring %u: size %" PRIu32 " is not a power of 2", vr->index,
                    num);
    if (num > b->mode.max_queue_size)
        return fail(b, m, -EINVAL,
                    "vring %u: size %" PRIu32 " exceeds %" PRIu32 ", the most mode %s allows",
                    vr->index, num, b->mode.max_queue_size, b->mode.name);
    if (vr->started)
        return fail(b, m, -EBUSY, "vring %u is running", vr->index);
    vr->num = num;
    return 0;
}

static int on_set_vring_addr(struct gabi_vhost_backend *b, struct vhost_msg *m,
                             struct vhost_reply *rep)
{
    const struct vhost_vring_addr *a = &m->p.addr;
    struct gabi_vhost_vring *vr = vring_of(b, m, a->index);

    if (!vr)
        return -ERANGE;
    if (a->flags & ~VHOST_VRING_F_LOG)
        return fail(b, m, -EINVAL, "vring %u: unknown flags 0x%" PRIx32, vr->index, a->flags);
    vr->addr_flags = a->flags;
    vr->desc_uaddr = a->desc_uaddr;
    vr->avail_uaddr = a->avail_uaddr;
    vr->used_uaddr = a->used_uaddr;
    vr->log_gpa = a->log_gpa;
    vr->addr_set = true;
    vhost_vring_remap(vr);
    return 0;
}

static int on_set_vring_base(struct gabi_vhost_backend *b, struct vhost_msg *m,
                             struct vhost_reply *rep)
{
    struct gabi_vhost_vring *vr = vring_of(b, m, m->p.state.index);

    if (!vr)
        return -ERANGE;
    /* packed rings: bits 0-14 the next avail slot, 15 its wrap counter, 16-31 the same for
     * used (as QEMU hands them over); checked against the size when the vring starts */
    if (m->p.state.num > 0xffff && !(b->features & (1ull << GABI_F_RING_PACKED)))
        return fail(b, m, -EINVAL, "vring %u: base 0x%" PRIx32 " (split rings: bits 16-31 are 0)",
                    vr->index, m->p.state.num);
    if (vr->started)
        return fail(b, m, -EBUSY, "vring %u is running", vr->index);
    vr->base = m->p.state.num;
    vr->last_avail = (uint16_t)vr->base;
    return 0;
}

static int on_get_vring_base(struct gabi_vhost_backend *b, struct vhost_msg *m,
                             struct vhost_reply *rep)
{
    struct gabi_vhost_vring *vr = vring_of(b, m, m->p.state.index);

    if (!vr)
        return -ERANGE;
    vhost_vring_stop(vr);
    vhost_vring_close_kick(vr);
    close_and_clear(&vr->call_fd);
    rep->p.state.index = vr->index;
    rep->p.state.num = vr->base;
    rep->size = sizeof(rep->p.state);
    vhost_backend_logf(b, "vring %u stopped at 0x%" PRIx32, vr->index, vr->base);
    return 0;
}

/* kick/call/err: the vring index and the "no fd" flag, and the fd unless that flag is set */
static int vring_fd_arg(struct gabi_vhost_backend *b, struct vhost_msg *m,
                        struct gabi_vhost_vring **ret_vr, int *ret_fd)
{
    uint64_t v = m->p.u64;
    bool nofd = v & VHOST_USER_VRING_NOFD;

    if (v & ~(uint64_t)(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD))
        return fail(b, m, -EINVAL, "argument 0x%" PRIx64 " has unknown bits", v);
    *ret_vr = vring_of(b, m, (uint32_t)(v & VHOST_USER_VRING_IDX_MASK));
    if (!*ret_vr)
        return -ERANGE;
    if (m->n_fds != (nofd ? 0u : 1u))
        return fail(b, m, -EINVAL, "vring %u: %u fds with the no-fd flag %s", (*ret_vr)->index,
                    m->n_fds, nofd ? "set" : "clear");
    *ret_fd = nofd ? -1 : TAKE_FD(m->fds[0]);
    return 0;
}

static int on_set_vring_kick(struct gabi_vhost_backend *b, struct vhost_msg *m,
                             struct vhost_reply *rep)
{
    struct gabi_vhost_vring *vr;
    int fd, r = vring_fd_arg(b, m, &vr, &fd);

    if (r < 0)
        return r;
    vhost_vring_close_kick(vr);
    vr->kick_fd = fd;
    if (fd >= 0) {
        r = vhost_backend_watch(b, fd, GABI_VHOST_WATCH_KICK, vr->index);
        if (r < 0)
            return fail(b, m, r, "vring %u: the kick fd cannot be watched", vr->index);
        vr->kick_watched = true;
    }
    vhost_vring_start(vr);
    return 0;
}

static int on_set_vring_call(struct gabi_vhost_backend *b, struct vhost_msg *m,
                             struct vhost_reply *rep)
{
    struct gabi_vhost_vring *vr;
    int fd, r = vring_fd_arg(b, m, &vr, &fd);

    if (r < 0)
        return r;
    close_and_clear(&vr->call_fd);
    vr->call_fd = fd;
    /* What the vring used between its start and this (a migration's destination takes the
     * frames waiting for it at once) was signalled to the old fd, which the front-end may not
     * read; with EVENT_IDX no later interrupt comes until the guest moves used_event. That
     * signal again, on the new fd. */
    if (vr->started) {
        if (vr->signalled_unheard && fd >= 0)
            vhost_vring_signal_fd(fd);
        vr->call_since_start = true;
        vr->signalled_unheard = false;
    }
    return 0;
}

static int on_set_vring_err(struct gabi_vhost_backend *b, struct vhost_msg *m,
                            struct vhost_reply *rep)
{
    struct gabi_vhost_vring *vr;
    int fd, r = vring_fd_arg(b, m, &vr, &fd);

    if (r < 0)
        return r;
    close_and_clear(&vr->err_fd);
    vr->err_fd = fd;
    return 0;
}

static int on_set_vring_enable(struct gabi_vhost_backend *b, struct vhost_msg *m,
                               struct vhost_reply *rep)
{
    struct gabi_vhost_vring *vr = vring_of(b, m, m->p.state.index);

    if (!vr)
        return -ERANGE;
    if (m->p.state.num > 1)
        return fail(b, m, -EINVAL, "vring %u: enable %" PRIu32 " (0 or 1)", vr->index,
                    m->p.state.num);
    vr->enabled = m->p.state.num;
    if (b->ops->vring_enabled)
        b->ops->vring_enabled(b, vr->index, vr->enabled, b->userdata);
    return 0;
}

/* ---- device specific --------------------------------------------------------------------- */

static int on_send_rarp(struct gabi_vhost_backend *b, struct vhost_msg *m, struct vhost_reply *rep)
{
    uint8_t mac[6];

    memcpy(mac, m->p.raw, sizeof(mac));
    vhost_backend_logf(b, "RARP for %02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                       mac[4], mac[5]);
    if (b->ops->send_rarp)
        b->ops->send_rarp(b, mac, b->userdata);
    return 0;
}

static int on_net_set_mtu(struct gabi_vhost_backend *b, struct vhost_msg *m,
                          struct vhost_reply *rep)
{
    uint64_t mtu = m->p.u64;

    if (mtu < 68 || mtu > 65535 || (b->ops->set_mtu && b->ops->set_mtu(b, mtu, b->userdata) < 0)) {
        vhost_backend_logf(b, "MTU %" PRIu64 " refused", mtu);
        rep->nack = true;
        return 0;
    }
    b->mtu = mtu;
    return 0;
}

static int config_args(struct gabi_vhost_backend *b, struct vhost_msg *m)
{
    const struct vhost_config *c = &m->p.config;

    if (c->size > GABI_VHOST_MAX_CONFIG_SIZE || VHOST_CONFIG_HDR_SIZE + c->size != m->hdr.size)
        return fail(b, m, -EINVAL,
                    "config access of %" PRIu32 " bytes in a %" PRIu32 "-byte message", c->size,
                    m->hdr.size);
    return 0;
}

static int on_get_config(struct gabi_vhost_backend *b, struct vhost_msg *m, struct vhost_reply *rep)
{
    const struct vhost_config *c = &m->p.config;
    int r = config_args(b, m);

    if (r < 0)
        return r;
    rep->p.config.offset = c->offset;
    rep->p.config.size = c->size;
    rep->p.config.flags = c->flags;
    if (c->offset > GABI_VHOST_MAX_CONFIG_SIZE - c->size ||
        b->ops->get_config(b, c->offset, rep->p.config.region, c->size, b->userdata) < 0) {
        vhost_backend_logf(b, "config read of %" PRIu32 " bytes at %" PRIu32 " refused", c->size,
                           c->offset);
        rep->size = 0; /* an empty reply says: error */
        return 0;
    }
    rep->size = VHOST_CONFIG_HDR_SIZE + c->size;
    return 0;
}

static int on_set_config(struct gabi_vhost_backend *b, struct vhost_msg *m, struct vhost_reply *rep)
{
    const struct vhost_config *c = &m->p.config;
    int r = config_args(b, m);

    if (r < 0)
        return r;
    if (c->offset > GABI_VHOST_MAX_CONFIG_SIZE - c->size || !b->ops->set_config ||
        b->ops->set_config(b, c->offset, c->region, c->size, c->flags, b->userdata) < 0) {
        vhost_backend_logf(b, "config write of %" PRIu32 " bytes at %" PRIu32 " refused", c->size,
                           c->offset);
        rep->nack = true;
    }
    return 0;
}

/* ---- the table --------------------------------------------------------------------------- */

static handler_fn *const handlers[VHOST_USER_MAX] = {
#define X(id, name, min, max, fds, pf, reply, handler) [id] = handler,
    VHOST_USER_MESSAGES(X)
#undef X
};

static const struct vhost_msg_info infos[VHOST_USER_MAX] = {
#define X(id, nm, min, max, fds, pf_bit, rep, handler)                                             \
    [id] = {.name = #nm,                                                                           \
            .min_size = (uint32_t)(min),                                                           \
            .max_size = (uint32_t)(max),                                                           \
            .max_fds = fds,                                                                        \
            .pf = pf_bit,                                                                          \
            .reply = rep},
    VHOST_USER_MESSAGES(X)
#undef X
};

const struct vhost_msg_info *vhost_msg_info(uint32_t request)
{
    return request < VHOST_USER_MAX && infos[request].name ? &infos[request] : NULL;
}

static const char *request_name(uint32_t request)
{
    const struct vhost_msg_info *info = vhost_msg_info(request);

    return info ? info->name : "unknown request";
}

const char *gabi_vhost_request_name(uint32_t request)
{
    const struct vhost_msg_info *info = vhost_msg_info(request);

    return info ? info->name : "?";
}

static bool wants_ack(const struct gabi_vhost_backend *b, const struct vhost_user_hdr *hdr)
{
    return (hdr->flags & VHOST_USER_NEED_REPLY) &&
           (b->protocol_features & (1ull << GABI_PF_REPLY_ACK));
}

int vhost_send_reply(struct gabi_vhost_backend *b, uint32_t request, const void *payload,
                     uint32_t size, int fd)
{
    struct vhost_user_hdr hdr = {
        .request = request,
        .flags = VHOST_USER_VERSION | VHOST_USER_REPLY,
        .size = size,
    };

    return vhost_send(b->conn_fd, &hdr, size ? payload : NULL, fd >= 0 ? &fd : NULL,
                      fd >= 0 ? 1 : 0, 1000);
}

static int send_reply(struct gabi_vhost_backend *b, uint32_t request, const void *payload,
                      uint32_t size)
{
    return vhost_send_reply(b, request, payload, size, -1);
}

/* A refusal the front-end asked to hear about: a failure ack before the connection closes. */
static void nack_before_close(struct gabi_vhost_backend *b, const struct vhost_user_hdr *hdr)
{
    const struct vhost_msg_info *info = vhost_msg_info(hdr->request);
    uint64_t one = 1;

    if (wants_ack(b, hdr) && (!info || info->reply == VU_ACK))
        send_reply(b, hdr->request, &one, sizeof(one));
}

int vhost_check_header(struct gabi_vhost_backend *b, const struct vhost_user_hdr *hdr)
{
    const struct vhost_msg_info *info = vhost_msg_info(hdr->request);
    struct vhost_msg m = {.hdr = *hdr};
    int r = 0;

    if ((hdr->flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION ||
        (hdr->flags & VHOST_USER_REPLY))
        r = fail(b, &m, -EPROTO, "flags 0x%" PRIx32 " (version must be 1, no reply flag)",
                 hdr->flags);
    else if (!info)
        r = fail(b, &m, -EOPNOTSUPP, "request code %" PRIu32 " is not a vhost-user request",
                 hdr->request);
    else if (!handlers[hdr->request])
        r = fail(b, &m, -EOPNOTSUPP, "not supported by this back-end");
    else if (info->pf != NOPF && !(b->protocol_features & (1ull << info->pf)))
        r = fail(b, &m, -EOPNOTSUPP, "needs %s, which was not negotiated",
                 pf_name((unsigned)info->pf));
    else if (hdr->size < info->min_size || hdr->size > info->max_size)
        r = fail(b, &m, -EMSGSIZE,
                 "payload of %" PRIu32 " bytes (expected %" PRIu32 " to %" PRIu32 ")", hdr->size,
                 info->min_size, info->max_size);
    if (r < 0)
        nack_before_close(b, hdr);
    return r;
}

int vhost_handle_message(struct gabi_vhost_backend *b, struct vhost_msg *m)
{
    const struct vhost_msg_info *info = vhost_msg_info(m->hdr.request);
    bool ack = wants_ack(b, &m->hdr);
    struct vhost_reply rep;
    int r;

    /* vhost_check_header() let only known, implemented requests through */
    if (!info || !handlers[m->hdr.request])
        return fail(b, m, -EOPNOTSUPP, "not supported by this back-end");
    vhost_backend_logf(b, "<- %s (%" PRIu32 " bytes, %u fds)", info->name, m->hdr.size, m->n_fds);
    if (b->xfer.check_pending)
        /* the front-end waits for that reply: a request now breaks the protocol */
        return fail(b, m, -EPROTO, "sent while CHECK_DEVICE_STATE waits for its reply");
    if (m->n_fds > info->max_fds) {
        r = fail(b, m, -EINVAL, "%u fds attached, at most %u", m->n_fds, info->max_fds);
        goto refused;
    }
    memset(&rep, 0, sizeof(rep));
    rep.fd = -1;
    r = handlers[m->hdr.request](b, m, &rep);
    if (r < 0) {
        close_and_clear(&rep.fd);
        goto refused;
    }
    if (rep.defer)
        return 0;
    if (info->reply == VU_ALWAYS)
        r = vhost_send_reply(b, m->hdr.request, &rep.p, rep.size, rep.fd);
    else if (ack)
        r = send_reply(b, m->hdr.request, &(uint64_t){rep.nack ? 1 : 0}, sizeof(uint64_t));
    close_and_clear(&rep.fd);
    if (r < 0)
        return fail(b, m, r, "cannot send the reply: %s", strerror(-r));
    return 0;

refused:
    if (ack && info->reply == VU_ACK)
        send_reply(b, m->hdr.request, &(uint64_t){1}, sizeof(uint64_t));
    return r;
}
