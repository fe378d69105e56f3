/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueues, device side: the data path.
 *
 * Everything the guest controls is checked before use: the avail index may run at most one
 * ring ahead, heads and next indices must be inside their table, a chain may not visit more
 * descriptors than its table has (so loops end), indirect tables must be whole in guest RAM,
 * and every buffer is translated through the memory table piece by piece. Any violation marks
 * the vring broken (with the reason) and it is not touched again until it is stopped.
 *
 * Speed: the avail index is read once per batch, used elements are staged in a shadow array
 * and published with one release store, the region of the last translation is tried first,
 * and the only atomics are the orderings the virtio memory model needs.
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>

#include "vhost/internal.h"

/* How many avail entries ahead pop prefetches descriptors. */
#define PREFETCH_AHEAD 4

/* A call, err or log-call fd: the front-end's file description, its flags (as the kick fd's)
 * never changed here. Written only when the write cannot block: a front-end that hands over
 * something it never reads (a pipe, a saturated eventfd) loses its signals, never our loop. */
void vhost_vring_signal_fd(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    uint64_t one = 1;

    if (fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLOUT) &&
        write(fd, &one, sizeof(one)) < 0) {
        /* a full eventfd counter is still signalled */
    }
}

void vhost_vring_break(struct gabi_vhost_vring *vr, const char *fmt, ...)
{
    struct gabi_vhost_backend *b = vr->b;
    va_list ap;

    if (vr->broken)
        return;
    vr->broken = true;
    va_start(ap, fmt);
    gabi_error_setv(&vr->broken_reason, -EIO, NULL, fmt, ap);
    va_end(ap);
    vr->n_shadow = 0;
    vr->shadow_wrote = false;
    vr->shadow_slots = 0;
    vhost_backend_logf(b, "vring %u broken: %s", vr->index, vr->broken_reason.message);
    if (b->protocol_features & (1ull << GABI_PF_STATUS))
        b->status |= GABI_VIRTIO_STATUS_NEEDS_RESET;
    vhost_vring_signal_fd(vr->err_fd);
    if (!b->going_away && b->ops->vring_broken)
        b->ops->vring_broken(b, vr->index, vr->broken_reason.message, b->userdata);
}

/* ---- starting and stopping ------------------------------------------------------------- */

static bool map_rings(struct gabi_vhost_vring *vr)
{
    const struct vhost_mem *m = &vr->b->mem;

    if (!vr->addr_set || vr->num == 0) {
        vhost_vring_break(vr, "started before its size and addresses were set");
        return false;
    }
    vr->desc = vhost_mem_uaddr(m, vr->desc_uaddr, vring_desc_size(vr->num));
    vr->avail = vhost_mem_uaddr(m, vr->avail_uaddr, vring_avail_size(vr->num));
    vr->used = vhost_mem_uaddr(m, vr->used_uaddr, vring_used_size(vr->num));
    if (!vr->desc || !vr->avail || !vr->used) {
        vhost_vring_break(vr,
                          "ring of %u at desc 0x%" PRIx64 " avail 0x%" PRIx64 " used 0x%" PRIx64
                          " is not inside the memory table",
                          vr->num, vr->desc_uaddr, vr->avail_uaddr, vr->used_uaddr);
        vr->desc = NULL;
        vr->avail = NULL;
        vr->used = NULL;
        return false;
    }
    /* aligned as virtio requires (and as the atomic accesses need), where they are mapped */
    if (((uintptr_t)vr->desc & 15) || ((uintptr_t)vr->avail & 1) || ((uintptr_t)vr->used & 3)) {
        vhost_vring_break(vr,
                          "ring addresses desc 0x%" PRIx64 " avail 0x%" PRIx64 " used 0x%" PRIx64
                          " are misaligned",
                          vr->desc_uaddr, vr->avail_uaddr, vr->used_uaddr);
        vr->desc = NULL;
        vr->avail = NULL;
        vr->used = NULL;
        return false;
    }
    vr->hint = 0;
    return true;
}

void vhost_vring_start(struct gabi_vhost_vring *vr)
{
    struct gabi_vhost_backend *b = vr->b;
    struct gabi_error lost;

    if (vr->started)
        return;
    if (b->xfer.outcome == GABI_VHOST_STATE_PENDING && b->xfer.exists) {
        char why[64];

        snprintf(why, sizeof(why), "vring %u started", vr->index);
        vhost_state_cancel(b, why);
    }
    vr->started = true;
    vr->call_since_start = false;
    vr->signalled_unheard = false;
    vr->broken = false;
    vr->broken_reason = (struct gabi_error){0};
    if (vhost_backend_check_memory(b, &lost) < 0) {
        vhost_vring_break(vr, "%s", lost.message);
        return;
    }
    vr->packed = b->features & (1ull << GABI_F_RING_PACKED);
    if (!(vr->packed ? vhost_packed_map(vr) : map_rings(vr)))
        return;
    free(vr->shadow);
    vr->shadow = calloc(vr->num, sizeof(*vr->shadow));
    if (!vr->shadow) {
        vhost_vring_break(vr, "out of memory for %u used entries", vr->num);
        return;
    }
    vr->mask = (uint16_t)(vr->num - 1);
    vr->n_shadow = 0;
    vr->shadow_wrote = false;
    vr->shadow_slots = 0;
    vr->notify_on = true;
    vr->event_idx = b->features & (1ull << GABI_F_EVENT_IDX);
    vr->indirect = b->features & (1ull << GABI_F_INDIRECT_DESC);
    vr->in_order = b->features & (1ull << GABI_F_IN_ORDER);
    if (vr->packed) {
        if (!vhost_packed_start(vr))
            return;
    } else {
        vr->last_avail = (uint16_t)vr->base;
        vr->shadow_avail = (uint16_t)vr->base;
        vr->used_idx = ring_load(&vr->used->idx);
        vr->used_flags = ring_load(&vr->used->flags);
        vr->signalled_used = vr->used_idx;
    }
    vhost_backend_logf(b, "vring %u started: %u entries%s, base 0x%" PRIx32 ", used %u", vr->index,
                       vr->num, vr->packed ? " (packed)" : "", vr->base, vr->used_idx);
    if (b->ops->vring_started)
        b->ops->vring_started(b, vr->index, b->userdata);
}

void vhost_vring_remap(struct gabi_vhost_vring *vr)
{
    if (!vr->started)
        return;
    if (!vr->broken) {
        if (vr->packed)
            vhost_packed_map(vr);
        else
            map_rings(vr);
    } else {
        /* the old mapping may be gone: nothing may keep pointing into it */
        vr->desc = NULL;
        vr->avail = NULL;
        vr->used = NULL;
        vr->pdesc = NULL;
        vr->drv_event = NULL;
        vr->dev_event = NULL;
    }
}

void vhost_vring_stop(struct gabi_vhost_vring *vr)
{
    struct gabi_vhost_backend *b = vr->b;

    if (!vr->started)
        return;
    /* the device heard of the start only when the rings were mapped (shadow allocated) */
    if (vr->shadow && !b->going_away && b->ops->vring_stopped)
        b->ops->vring_stopped(b, vr->index, b->userdata);
    if (!vr->broken && (vr->used || vr->pdesc))
        gabi_vhost_vring_flush(vr);
    vhost_backend_logf(b, "vring %u stopped: next avail %u, used %u%s", vr->index, vr->last_avail,
                       vr->used_idx, b->logging ? " (logging)" : "");
    vr->started = false;
    vr->broken = false;
    vr->broken_reason = (struct gabi_error){0};
    vr->desc = NULL;
    vr->avail = NULL;
    vr->used = NULL;
    vr->pdesc = NULL;
    vr->drv_event = NULL;
    vr->dev_event = NULL;
    vr->n_shadow = 0;
    vr->shadow_wrote = false;
    vr->shadow_slots = 0;
    if (!vr->packed)
        vr->base = vr->last_avail;
    else if (vr->pop_ndesc) /* started on its rings: the indices moved from base */
        vr->base = vhost_packed_base(vr);
    free(vr->shadow);
    vr->shadow = NULL;
    free(vr->pop_ndesc);
    vr->pop_ndesc = NULL;
}

void vhost_vring_close_kick(struct gabi_vhost_vring *vr)
{
    if (vr->kick_fd < 0)
        return;
    if (vr->kick_watched)
        vhost_backend_unwatch(vr->b, vr->kick_fd);
    vr->kick_watched = false;
    close_and_clear(&vr->kick_fd);
}

void vhost_vring_reset(struct gabi_vhost_vring *vr)
{
    vhost_vring_stop(vr);
    vhost_vring_close_kick(vr);
    close_and_clear(&vr->call_fd);
    close_and_clear(&vr->err_fd);
    vr->addr_set = false;
    vr->addr_flags = 0;
    vr->desc_uaddr = vr->avail_uaddr = vr->used_uaddr = vr->log_gpa = 0;
    vr->num = 0;
    vr->base = 0;
    vr->last_avail = 0;
    vr->enabled = false;
}

/* ---- accessors -------------------------------------------------------------------------- */

unsigned gabi_vhost_vring_index(const struct gabi_vhost_vring *vr)
{
    return vr->index;
}

bool gabi_vhost_vring_ready(const struct gabi_vhost_vring *vr)
{
    return vr->started && !vr->broken;
}

bool gabi_vhost_vring_started(const struct gabi_vhost_vring *vr)
{
    return vr->started;
}

bool gabi_vhost_vring_enabled(const struct gabi_vhost_vring *vr)
{
    return vr->enabled;
}

const char *gabi_vhost_vring_broken(const struct gabi_vhost_vring *vr)
{
    return vr->broken ? vr->broken_reason.message : NULL;
}

void gabi_vhost_vring_set_broken(struct gabi_vhost_vring *vr, const char *reason)
{
    if (vr->started)
        vhost_vring_break(vr, "%s", reason);
}

uint16_t gabi_vhost_vring_size(const struct gabi_vhost_vring *vr)
{
    return (uint16_t)vr->num;
}

uint16_t gabi_vhost_vring_last_avail(const struct gabi_vhost_vring *vr)
{
    if (!vr->started)
        return (uint16_t)vr->base;
    return vr->packed ? (uint16_t)(vr->last_avail | (vr->avail_wrap ? 0x8000u : 0))
                      : vr->last_avail;
}

void gabi_vhost_vring_set_userdata(struct gabi_vhost_vring *vr, void *userdata)
{
    vr->userdata = userdata;
}

void *gabi_vhost_vring_userdata(const struct gabi_vhost_vring *vr)
{
    return vr->userdata;
}

void gabi_vhost_vring_kick_drain(struct gabi_vhost_vring *vr)
{
    struct pollfd p = {.fd = vr->kick_fd, .events = POLLIN};
    uint64_t v;

    /* The eventfd's file description is shared with the front-end: never change its flags,
     * and only read what is there. */
    if (vr->kick_fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN) &&
        read(vr->kick_fd, &v, sizeof(v)) < 0) {
        /* nothing to consume */
    }
}

/* ---- popping chains --------------------------------------------------------------------- */

int vhost_vring_add_segments(struct gabi_vhost_vring *vr, struct gabi_vhost_elem *elem,
                             uint64_t gpa, uint32_t len, bool write)
{
    const struct vhost_mem *m = &vr->b->mem;

    if (gpa + len < gpa) {
        vhost_vring_break(vr, "descriptor buffer 0x%" PRIx64 "+%u wraps around", gpa, len);
        return -EIO;
    }
    while (len > 0) {
        unsigned k = elem->n_out + elem->n_in;
        uint64_t got;
        uint8_t *p;

        if (unlikely(k >= GABI_VHOST_ELEM_MAX_SEGS)) {
            vhost_vring_break(vr, "descriptor chain from head %u has more than %u segments",
                              elem->head, GABI_VHOST_ELEM_MAX_SEGS);
            return -EIO;
        }
        p = vhost_mem_gpa(m, &vr->hint, gpa, len, &got);
        if (unlikely(!p)) {
            vhost_vring_break(vr,
                              "descriptor buffer at gpa 0x%" PRIx64 " (%u bytes, head %u) is "
                              "outside guest memory",
                              gpa, len, elem->head);
            return -EIO;
        }
        elem->iov[k].iov_base = p;
        elem->iov[k].iov_len = (size_t)got;
        elem->gpa[k] = gpa;
        if (write)
            elem->n_in++;
        else
            elem->n_out++;
        gpa += got;
        len -= (uint32_t)got;
    }
    return 0;
}

/* Read one descriptor once: the guest may change it under us, we use only this copy. */
static inline void read_desc(const struct vring_desc *table, uint32_t i, struct vring_desc *d)
{
    memcpy(d, &table[i], sizeof(*d));
    __asm__ volatile("" ::: "memory");
}

static int walk_chain(struct gabi_vhost_vring *vr, uint16_t head, struct gabi_vhost_elem *elem)
{
    const struct vring_desc *table = vr->desc;
    uint32_t max = vr->num, i = head, count = 0;
    uint64_t out_len = 0, in_len = 0;
    bool in_indirect = false;

    elem->head = head;
    elem->n_out = 0;
    elem->n_in = 0;
    for (;;) {
        struct vring_desc d;

        read_desc(table, i, &d);
        if (unlikely(++count > max)) {
            vhost_vring_break(vr, "descriptor chain from head %u loops or is longer than %u", head,
                              max);
            return -EIO;
        }
        if (unlikely(d.flags & VRING_DESC_F_INDIRECT)) {
            uint64_t got = 0;

            if (!vr->indirect || in_indirect || count != 1 || (d.flags & VRING_DESC_F_NEXT) ||
                d.len == 0 || d.len % sizeof(struct vring_desc) != 0 ||
                d.len / sizeof(struct vring_desc) > vr->num) {
                vhost_vring_break(vr, "bad indirect descriptor at head %u: %u bytes, flags 0x%x%s",
                                  head, d.len, d.flags,
                                  vr->indirect ? "" : " (INDIRECT_DESC not negotiated)");
                return -EIO;
            }
            table = (const struct vring_desc *)vhost_mem_gpa(&vr->b->mem, &vr->hint, d.addr, d.len,
                                                             &got);
            if (!table || got != d.len) {
                vhost_vring_break(vr,
                                  "indirect table at gpa 0x%" PRIx64 " (%u bytes, head %u) is "
                                  "not inside one memory region",
                                  d.addr, d.len, head);
                return -EIO;
            }
            max = d.len / sizeof(struct vring_desc);
            i = 0;
            count = 0;
            in_indirect = true;
            continue;
        }
        if (d.flags & VRING_DESC_F_WRITE) {
            in_len += d.len;
        } else {
            if (unlikely(elem->n_in > 0)) {
                vhost_vring_break(vr,
                                  "chain from head %u has a readable descriptor after a "
                                  "writable one",
                                  head);
                return -EIO;
            }
            out_len += d.len;
        }
        if (d.len &&
            vhost_vring_add_segments(vr, elem, d.addr, d.len, d.flags & VRING_DESC_F_WRITE) < 0)
            return -EIO;
        if (!(d.flags & VRING_DESC_F_NEXT))
            break;
        i = d.next;
        if (unlikely(i >= max)) {
            vhost_vring_break(vr,
                              "descriptor chain from head %u links to %u, beyond its table of %u",
                              head, i, max);
            return -EIO;
        }
    }
    if (unlikely(out_len > UINT32_MAX || in_len > UINT32_MAX)) {
        vhost_vring_break(vr, "chain from head %u is longer than 4 GiB", head);
        return -EIO;
    }
    elem->out_len = (uint32_t)out_len;
    elem->in_len = (uint32_t)in_len;
    return 0;
}

static void log_used(struct gabi_vhost_vring *vr, uint64_t offset, uint64_t len);

static bool refresh_avail(struct gabi_vhost_vring *vr)
{
    uint16_t idx = ring_load_acquire(&vr->avail->idx);

    if (unlikely((uint16_t)(idx - vr->last_avail) > vr->num)) {
        vhost_vring_break(vr, "avail index %u is more than %u ahead of %u", idx, vr->num,
                          vr->last_avail);
        return false;
    }
    vr->shadow_avail = idx;
    return true;
}

/*
 * The chain at avail entry idx into elem. The common chain, one direct descriptor inside the
 * region of the last translation, takes the fast path: one descriptor read, one bounds check.
 * Anything else (several descriptors, indirect tables, a buffer in another region or across
 * two) walks the chain with every check.
 */
static inline int read_chain(struct gabi_vhost_vring *vr, uint16_t idx,
                             struct gabi_vhost_elem *elem)
{
    const struct vhost_mem *m = &vr->b->mem;
    uint16_t head = ring_load(&vr->avail->ring[idx & vr->mask]);
    struct vring_desc d;

    if (unlikely(head >= vr->num)) {
        vhost_vring_break(vr, "avail entry %u names descriptor %u, the ring has %u", idx, head,
                          vr->num);
        return -EIO;
    }
    read_desc(vr->desc, head, &d);
    if (likely(!(d.flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT)) && d.len &&
               vr->hint < m->n)) {
        const struct vhost_region *r = &m->r[vr->hint];
        uint64_t off = d.addr - r->gpa;

        if (likely(off < r->size && d.len <= r->size - off)) {
            vhost_elem_one(elem, head, r->host + off, d.addr, d.len, d.flags & VRING_DESC_F_WRITE);
            return 0;
        }
    }
    return walk_chain(vr, head, elem);
}

/* Ask for the descriptor of a later avail entry, so that its cache miss (the guest's CPU just
 * wrote it) overlaps with the work on this one. */
static inline void prefetch_ahead(const struct gabi_vhost_vring *vr, uint16_t idx)
{
    if ((uint16_t)(vr->shadow_avail - idx) > PREFETCH_AHEAD) {
        uint16_t ahead = ring_load(&vr->avail->ring[(idx + PREFETCH_AHEAD) & vr->mask]);

        if (ahead < vr->num)
            __builtin_prefetch(&vr->desc[ahead]);
    }
}

int gabi_vhost_vring_pop(struct gabi_vhost_vring *vr, struct gabi_vhost_elem *elem)
{
    vhost_backend_guard_poll(vr->b);
    if (unlikely(!vr->started))
        return -ENOTCONN;
    if (unlikely(vr->broken))
        return -EIO;
    if (unlikely(vr->packed))
        return vhost_packed_pop_burst(vr, elem, 1);
    if (vr->last_avail == vr->shadow_avail) {
        if (!refresh_avail(vr))
            return -EIO;
        if (vr->last_avail == vr->shadow_avail) {
            /* Empty. With EVENT_IDX, ask for a kick at the next chain (unless the device
             * polls), then look once more: the guest may have added one meanwhile. */
            if (!vr->event_idx || !vr->notify_on)
                return 0;
            ring_store(vring_avail_event(vr->used, vr->num), vr->last_avail);
            log_used(vr, 4 + 8ull * vr->num, 2);
            ring_fence();
            if (!refresh_avail(vr))
                return -EIO;
            if (vr->last_avail == vr->shadow_avail)
                return 0;
        }
    }
    prefetch_ahead(vr, vr->last_avail);
    if (read_chain(vr, vr->last_avail, elem) < 0)
        return -EIO;
    vr->last_avail++;
    return 1;
}

/*
 * take chains, all available, into elems[0..take); *got grows by each one popped. The fast
 * path of read_chain() with the ring, the table and the region in registers; anything else
 * goes through read_chain() itself. -EIO when a chain broke the vring.
 */
static int pop_run(struct gabi_vhost_vring *vr, struct gabi_vhost_elem *elems, unsigned take,
                   unsigned *got)
{
    const struct vhost_mem *m = &vr->b->mem;
    const struct vring_desc *desc = vr->desc;
    const uint16_t *ring = vr->avail->ring;
    uint16_t mask = vr->mask, num = (uint16_t)vr->num, idx = vr->last_avail;
    /* the region of the last translation (none: an empty one), in registers */
    uint64_t r_gpa = 0, r_size = 0;
    uint8_t *r_host = NULL;
    unsigned i;

    if (vr->hint < m->n) {
        r_gpa = m->r[vr->hint].gpa;
        r_size = m->r[vr->hint].size;
        r_host = m->r[vr->hint].host;
    }

    for (i = 0; i < take; i++, idx++) {
        struct gabi_vhost_elem *e = &elems[i];
        uint16_t head = ring_load(&ring[idx & mask]);
        struct vring_desc d;

        /* a later entry's descriptor, so that its cache miss overlaps with this one; only one
         * of this run, all published (the guest may be writing the entries after them:
         * reading those would take their cache line from its CPU) */
        if (i + PREFETCH_AHEAD < take) {
            uint16_t ahead = ring_load(&ring[(uint16_t)(idx + PREFETCH_AHEAD) & mask]);

            if (ahead < num)
                __builtin_prefetch(&desc[ahead]);
        }
        if (likely(head < num)) {
            read_desc(desc, head, &d);
            uint64_t off = d.addr - r_gpa;

            if (likely(!(d.flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT)) && d.len &&
                       off < r_size && d.len <= r_size - off)) {
                uint8_t *host = r_host + off;

                vhost_elem_one(e, head, host, d.addr, d.len, d.flags & VRING_DESC_F_WRITE);
                /* the device reads (or writes) the buffer next: start bringing it in */
                __builtin_prefetch(host);
                continue;
            }
        }
        vr->last_avail = idx;
        if (read_chain(vr, idx, e) < 0) {
            *got += i;
            return -EIO;
        }
        if (vr->hint < m->n) {
            r_gpa = m->r[vr->hint].gpa;
            r_size = m->r[vr->hint].size;
            r_host = m->r[vr->hint].host;
        }
        if (e->n_out + e->n_in)
            __builtin_prefetch(e->iov[0].iov_base);
    }
    vr->last_avail = idx;
    *got += i;
    return 0;
}

int gabi_vhost_vring_pop_burst(struct gabi_vhost_vring *vr, struct gabi_vhost_elem *elems,
                               unsigned n)
{
    unsigned got = 0;

    vhost_backend_guard_poll(vr->b);
    if (unlikely(!vr->started))
        return -ENOTCONN;
    if (unlikely(vr->broken))
        return -EIO;
    if (unlikely(vr->packed))
        return vhost_packed_pop_burst(vr, elems, n);
    while (got < n) {
        unsigned have = (uint16_t)(vr->shadow_avail - vr->last_avail), take;

        if (have < n - got) {
            if (!refresh_avail(vr))
                break;
            have = (uint16_t)(vr->shadow_avail - vr->last_avail);
        }
        if (have == 0) {
            /* Drained. As pop: with EVENT_IDX, ask for a kick at the next chain (unless the
             * device polls), then look once more: the guest may have added one meanwhile. */
            if (!vr->event_idx || !vr->notify_on)
                break;
            ring_store(vring_avail_event(vr->used, vr->num), vr->last_avail);
            log_used(vr, 4 + 8ull * vr->num, 2);
            ring_fence();
            if (!refresh_avail(vr))
                break;
            have = (uint16_t)(vr->shadow_avail - vr->last_avail);
            if (have == 0)
                break;
        }
        take = MIN(have, n - got);
        if (pop_run(vr, elems + got, take, &got) < 0)
            break;
    }
    /* chains popped before a broken one are the device's to finish (their pushes are
     * ignored); with none, say the vring broke */
    return got == 0 && vr->broken ? -EIO : (int)got;
}

unsigned gabi_vhost_vring_avail_count(struct gabi_vhost_vring *vr)
{
    if (!vr->started || vr->broken)
        return 0;
    if (vr->packed)
        return vr->pdesc ? vhost_packed_avail_count(vr) : 0;
    if (!refresh_avail(vr))
        return 0;
    return (uint16_t)(vr->shadow_avail - vr->last_avail);
}

bool gabi_vhost_vring_has_avail(struct gabi_vhost_vring *vr)
{
    if (!vr->started || vr->broken)
        return false;
    if (vr->packed)
        return vr->pdesc && vhost_packed_has_avail(vr);
    if (vr->last_avail != vr->shadow_avail)
        return true;
    return refresh_avail(vr) && vr->last_avail != vr->shadow_avail;
}

void gabi_vhost_vring_unpop(struct gabi_vhost_vring *vr, unsigned n)
{
    if (vr->packed) {
        if (vr->pop_ndesc)
            vhost_packed_unpop(vr, n);
        return;
    }
    vr->last_avail = (uint16_t)(vr->last_avail - n);
}

/* ---- pushing and publishing ------------------------------------------------------------- */

static inline void stage_used(struct gabi_vhost_vring *vr, uint16_t head, uint32_t len)
{
    if (unlikely(!vr->shadow || vr->broken))
        return;
    if (unlikely(vr->n_shadow >= vr->num))
        gabi_vhost_vring_flush(vr);
    vr->shadow[vr->n_shadow].id = head;
    vr->shadow[vr->n_shadow].len = len;
    vr->shadow_wrote |= len != 0;
    vr->n_shadow++;
}

void gabi_vhost_vring_push(struct gabi_vhost_vring *vr, const struct gabi_vhost_elem *elem,
                           uint32_t written)
{
    if (written > elem->in_len)
        written = elem->in_len;
    if (unlikely(vr->b->logging) && written) {
        uint32_t left = written;

        for (unsigned k = elem->n_out; left && k < (unsigned)elem->n_out + elem->n_in; k++) {
            uint32_t n = (uint32_t)MIN((size_t)left, elem->iov[k].iov_len);

            gabi_vhost_backend_log_write(vr->b, elem->gpa[k], n);
            left -= n;
        }
    }
    if (unlikely(vr->packed))
        vhost_packed_stage(vr, elem, written);
    else
        stage_used(vr, elem->head, written);
}

void gabi_vhost_vring_push_burst(struct gabi_vhost_vring *vr, const struct gabi_vhost_elem *elems,
                                 const uint32_t *written, unsigned n)
{
    struct vring_used_elem *u;

    if (unlikely(vr->b->logging) || unlikely(!vr->shadow || vr->broken) ||
        unlikely(vr->n_shadow + n > vr->num)) {
        for (unsigned i = 0; i < n; i++)
            gabi_vhost_vring_push(vr, &elems[i], written ? written[i] : 0);
        return;
    }
    u = vr->shadow + vr->n_shadow;
    if (unlikely(vr->packed)) {
        /* packed shadow entries: the buffer id and the ring slots the chain took */
        uint32_t slots = 0;

        if (written) {
            for (unsigned i = 0; i < n; i++) {
                uint32_t nd = elems[i].n_desc + (elems[i].n_desc == 0); /* not popped: 1 */

                u[i].id = elems[i].head | nd << 16;
                u[i].len = MIN(written[i], elems[i].in_len);
                slots += nd;
            }
            vr->shadow_wrote = true; /* lengths given: not batched, even if all were 0 */
        } else {
            for (unsigned i = 0; i < n; i++) {
                uint32_t nd = elems[i].n_desc + (elems[i].n_desc == 0);

                u[i].id = elems[i].head | nd << 16;
                u[i].len = 0;
                slots += nd;
            }
        }
        vr->shadow_slots += slots;
        vr->n_shadow = (uint16_t)(vr->n_shadow + n);
        return;
    }
    if (written) {
        for (unsigned i = 0; i < n; i++) {
            u[i].id = elems[i].head;
            u[i].len = MIN(written[i], elems[i].in_len);
        }
        vr->shadow_wrote = true; /* lengths given: not batched, even if all were 0 */
    } else {
        for (unsigned i = 0; i < n; i++) {
            u[i].id = elems[i].head;
            u[i].len = 0;
        }
    }
    vr->n_shadow = (uint16_t)(vr->n_shadow + n);
}

static void log_used(struct gabi_vhost_vring *vr, uint64_t offset, uint64_t len)
{
    if (unlikely(vr->b->logging) && (vr->addr_flags & VHOST_VRING_F_LOG))
        gabi_vhost_backend_log_write(vr->b, vr->log_gpa + offset, len);
}

static int signal_guest(struct gabi_vhost_vring *vr)
{
    bool need;

    /* used->idx must be visible before we read the guest's wishes */
    ring_fence();
    if (vr->event_idx) {
        uint16_t old = vr->signalled_used, event = ring_load(vring_used_event(vr->avail, vr->num));
        vr->signalled_used = vr->used_idx;
        need = vring_need_event(event, vr->used_idx, old);
    } else {
        need = !(ring_load(&vr->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
    }
    if (need && !vr->call_since_start)
        vr->signalled_unheard = true;
    if (!need || vr->call_fd < 0)
        return 0;
    vhost_vring_signal_fd(vr->call_fd);
    return 1;
}

/* With VIRTIO_F_IN_ORDER, a batch that wrote nothing into its buffers (transmit completions)
 * is published as one used entry: the id of its last chain, where its first chain's entry
 * would go; used->idx still counts every chain, and the driver takes every chain up to that
 * id (virtio 1.2, 2.7.9 "In-order use of descriptors"). A batch with written lengths keeps
 * an entry per chain: the driver needs each length. */
static inline uint16_t used_entries(const struct gabi_vhost_vring *vr, uint16_t n)
{
    return vr->in_order && n > 1 && !vr->shadow_wrote ? 1 : n;
}

int gabi_vhost_vring_flush(struct gabi_vhost_vring *vr)
{
    uint16_t n = vr->n_shadow, start, entries, first;
    const struct vring_used_elem *src = vr->shadow;

    if (unlikely(vr->packed))
        return vhost_packed_flush(vr);
    if (n == 0 || !vr->used || vr->broken)
        return 0;
    entries = used_entries(vr, n);
    if (entries == 1)
        src += n - 1;
    start = vr->used_idx & vr->mask;
    first = (uint16_t)MIN((uint32_t)entries, vr->num - start);
    memcpy(&vr->used->ring[start], src, first * sizeof(struct vring_used_elem));
    if (entries > first)
        memcpy(&vr->used->ring[0], src + first, (entries - first) * sizeof(struct vring_used_elem));
    vr->used_idx = (uint16_t)(vr->used_idx + n);
    ring_store_release(&vr->used->idx, vr->used_idx);
    vr->n_shadow = 0;
    vr->shadow_wrote = false;
    vr->shadow_slots = 0;
    if (unlikely(vr->b->logging)) {
        log_used(vr, 4 + 8ull * start, 8ull * first);
        if (entries > first)
            log_used(vr, 4, 8ull * (entries - first));
        log_used(vr, 2, 2);
        vhost_vring_signal_fd(vr->b->log_call_fd);
    }
    return signal_guest(vr);
}

bool gabi_vhost_vring_notify(struct gabi_vhost_vring *vr, bool enable)
{
    if (!vr->started || vr->broken)
        return false;
    if (vr->packed)
        return vr->pdesc ? vhost_packed_notify(vr, enable) : false;
    vr->notify_on = enable;
    if (vr->event_idx) {
        /* disabled: an event index half the index space away (one kick per 32K chains) */
        ring_store(vring_avail_event(vr->used, vr->num),
                   (uint16_t)(vr->last_avail + (enable ? 0 : 0x7fff)));
        log_used(vr, 4 + 8ull * vr->num, 2);
        if (!enable)
            return false;
    } else {
        uint16_t flags = enable ? 0 : VRING_USED_F_NO_NOTIFY;

        if (flags != vr->used_flags) {
            vr->used_flags = flags;
            ring_store(&vr->used->flags, flags);
            log_used(vr, 0, 2);
        }
        if (!enable)
            return false;
    }
    /* our wish must be visible before we look at avail again */
    ring_fence();
    return ring_load(&vr->avail->idx) != vr->last_avail;
}

/* ---- element copies --------------------------------------------------------------------- */

size_t gabi_vhost_elem_read(const struct gabi_vhost_elem *elem, size_t offset, void *buf,
                            size_t size)
{
    size_t done = 0;

    if (likely(elem->n_out && offset + size <= elem->iov[0].iov_len && offset + size >= size)) {
        memcpy(buf, (const uint8_t *)elem->iov[0].iov_base + offset, size);
        return size;
    }

    for (unsigned k = 0; k < elem->n_out && done < size; k++) {
        size_t len = elem->iov[k].iov_len, n;

        if (offset >= len) {
            offset -= len;
            continue;
        }
        n = MIN(len - offset, size - done);
        memcpy((uint8_t *)buf + done, (uint8_t *)elem->iov[k].iov_base + offset, n);
        done += n;
        offset = 0;
    }
    return done;
}

size_t gabi_vhost_elem_write(const struct gabi_vhost_elem *elem, size_t offset, const void *buf,
                             size_t size)
{
    const struct iovec *first = &elem->iov[elem->n_out];
    size_t done = 0;

    if (likely(elem->n_in && offset + size <= first->iov_len && offset + size >= size)) {
        memcpy((uint8_t *)first->iov_base + offset, buf, size);
        return size;
    }

    for (unsigned k = elem->n_out; k < (unsigned)elem->n_out + elem->n_in && done < size; k++) {
        size_t len = elem->iov[k].iov_len, n;

        if (offset >= len) {
            offset -= len;
            continue;
        }
        n = MIN(len - offset, size - done);
        memcpy((uint8_t *)elem->iov[k].iov_base + offset, (const uint8_t *)buf + done, n);
        done += n;
        offset = 0;
    }
    return done;
}
