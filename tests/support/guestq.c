/* SPDX-License-Identifier: MIT */
/*
 * A guest driver's side of a virtqueue, for tests and benchmarks: descriptors from a free
 * list, chains posted directly or as indirect tables, avail published in batches, used
 * entries reaped, kicks and interrupts following the virtio suppression rules.
 *
 * Packed layout (GABI_VHOST_GUESTQ_PACKED): chains take consecutive slots of the descriptor
 * ring, buffer ids come from a free list of their own, a chain's first descriptor gets its
 * flags (made available) at publish, the driver event structure says when to interrupt,
 * and with GABI_VHOST_GUESTQ_IN_ORDER one used descriptor may complete every chain posted
 * up to its id.
 *
 * Split layout with GABI_VHOST_GUESTQ_IN_ORDER: descriptors are taken in ring order (the
 * free descriptors are always the run [free_head, free_head + n_free), the oldest chain in
 * flight starts right after it), and one used entry may complete every chain up to its id:
 * the device writes it where the batch's first entry would go and counts every chain in
 * used->idx.
 */

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>

#include <guestabi/util.h>
#include "vhost/ring.h"
#include "vhost_guest.h"

#define INDIRECT_MAX 16u /* descriptors in one indirect table */

struct gabi_vhost_guestq {
    struct gabi_vhost_guestmem *gm;
    uint16_t num;
    unsigned flags;
    uint64_t desc_gpa, avail_gpa, used_gpa, indirect_gpa;
    struct vring_desc *desc;
    struct vring_avail *avail;
    struct vring_used *used;
    struct vring_desc *indirect; /* num tables of INDIRECT_MAX */
    uint16_t *chain_len;         /* per head: descriptors held (0: free) */
    uint16_t *next;              /* per descriptor: free list and chain links, kept here: the
                                  * device can write the shared table, we never follow it */
    uint16_t free_head;
    uint16_t n_free;
    uint16_t avail_idx; /* next to publish */
    uint16_t published; /* avail->idx as published */
    uint16_t kicked_at; /* avail index at the last kick decision */
    uint16_t last_used;
    int kick_fd;
    int call_fd;

    /* packed layout: desc, avail, used and next above are unused; ids use chain_len */
    struct vring_packed_desc *pdesc;
    struct vring_packed_event *drv_event, *dev_event;
    uint16_t *id_next;    /* free list of buffer ids */
    uint16_t *pending;    /* slots whose flags publish writes, in order */
    uint16_t *pending_fl; /* ... and those flags */
    uint16_t n_pending;
    uint16_t *order; /* ids in posting order (in-order reaping) */
    uint16_t order_head, order_tail;
    uint16_t free_id;
    uint16_t slot;      /* next slot to fill */
    bool wrap;          /* avail wrap counter */
    uint16_t used_slot; /* next slot to look at for a used descriptor */
    bool used_wrap;
    uint32_t kicked_slot; /* slot | wrap << 15 at the last kick decision */
    uint32_t skip;        /* in-order: slots of chains completed by a later id */

    /* split in-order: the batch being reaped (the id its used entry named), or -1 */
    int32_t batch_last;
    uint32_t batch_len;
};

static inline bool flags_event_idx(const struct gabi_vhost_guestq *q)
{
    return q->flags & GABI_VHOST_GUESTQ_EVENT_IDX;
}

#define PWRAP(w) ((uint16_t)((w) ? 0x8000u : 0))

static int packed_new(struct gabi_vhost_guestq *q, struct gabi_vhost_guestmem *gm, uint16_t size)
{
    q->id_next = calloc(size, sizeof(*q->id_next));
    q->pending = calloc(size, sizeof(*q->pending));
    q->pending_fl = calloc(size, sizeof(*q->pending_fl));
    q->order = calloc(size, sizeof(*q->order));
    if (!q->id_next || !q->pending || !q->pending_fl || !q->order ||
        gabi_vhost_guestmem_alloc(gm, 16ull * size, 4096, &q->desc_gpa) < 0 ||
        gabi_vhost_guestmem_alloc(gm, 4, 64, &q->avail_gpa) < 0 ||
        gabi_vhost_guestmem_alloc(gm, 4, 64, &q->used_gpa) < 0)
        return -ENOMEM;
    q->pdesc = gabi_vhost_guestmem_ptr(gm, q->desc_gpa, 16ull * size);
    q->drv_event = gabi_vhost_guestmem_ptr(gm, q->avail_gpa, 4);
    q->dev_event = gabi_vhost_guestmem_ptr(gm, q->used_gpa, 4);
    memset(q->pdesc, 0, 16ull * size);
    memset(q->dev_event, 0, 4);
    q->drv_event->off_wrap = 0x8000;
    q->drv_event->flags =
        (flags_event_idx(q) ? VRING_PACKED_EVENT_F_DESC : VRING_PACKED_EVENT_F_ENABLE);
    for (uint16_t i = 0; i < size; i++)
        q->id_next[i] = (uint16_t)(i + 1);
    q->wrap = q->used_wrap = true;
    q->kicked_slot = 0x8000;
    return 0;
}

/*
 * Write a descriptor only where it changes. A buffer reposted at the same head (the usual
 * case for a driver that keys buffers by head) leaves the descriptor's cache line shared
 * with the device's CPU instead of pulling it back: on split rings, that line transfer per
 * four chains is most of the cost of a small packet.
 */
static inline void set_desc(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags)
{
    if (d->addr != addr)
        d->addr = addr;
    if (d->len != len)
        d->len = len;
    if (d->flags != flags)
        d->flags = flags;
}

int gabi_vhost_guestq_new(struct gabi_vhost_guestmem *gm, uint16_t size, unsigned flags,
                          struct gabi_vhost_guestq **ret)
{
    struct gabi_vhost_guestq *q;

    if (size == 0 || (size & (size - 1)))
        return -EINVAL;
    q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->kick_fd = q->call_fd = -1;
    q->chain_len = calloc(size, sizeof(*q->chain_len));
    q->next = calloc(size, sizeof(*q->next));
    q->flags = flags;
    if (flags & GABI_VHOST_GUESTQ_PACKED) {
        if (!q->chain_len || !q->next || packed_new(q, gm, size) < 0 ||
            ((flags & GABI_VHOST_GUESTQ_INDIRECT) &&
             gabi_vhost_guestmem_alloc(gm, (uint64_t)size * INDIRECT_MAX * 16, 64,
                                       &q->indirect_gpa) < 0)) {
            gabi_vhost_guestq_free(q);
            return -ENOMEM;
        }
        q->gm = gm;
        q->num = size;
        if (q->indirect_gpa)
            q->indirect =
                gabi_vhost_guestmem_ptr(gm, q->indirect_gpa, (uint64_t)size * INDIRECT_MAX * 16);
        q->n_free = size;
        goto fds;
    }
    if (!q->chain_len || !q->next ||
        gabi_vhost_guestmem_alloc(gm, vring_desc_size(size), 4096, &q->desc_gpa) < 0 ||
        gabi_vhost_guestmem_alloc(gm, vring_avail_size(size), 64, &q->avail_gpa) < 0 ||
        gabi_vhost_guestmem_alloc(gm, vring_used_size(size), 4096, &q->used_gpa) < 0 ||
        ((flags & GABI_VHOST_GUESTQ_INDIRECT) &&
         gabi_vhost_guestmem_alloc(gm, (uint64_t)size * INDIRECT_MAX * sizeof(struct vring_desc),
                                   64, &q->indirect_gpa) < 0)) {
        gabi_vhost_guestq_free(q);
        return -ENOMEM;
    }
    q->gm = gm;
    q->num = size;
    q->flags = flags;
    q->desc = gabi_vhost_guestmem_ptr(gm, q->desc_gpa, vring_desc_size(size));
    q->avail = gabi_vhost_guestmem_ptr(gm, q->avail_gpa, vring_avail_size(size));
    q->used = gabi_vhost_guestmem_ptr(gm, q->used_gpa, vring_used_size(size));
    if (q->indirect_gpa)
        q->indirect =
            gabi_vhost_guestmem_ptr(gm, q->indirect_gpa, (uint64_t)size * INDIRECT_MAX * 16);
    memset(q->desc, 0, vring_desc_size(size));
    memset(q->avail, 0, vring_avail_size(size));
    memset(q->used, 0, vring_used_size(size));
    /* in order: ring order, the last descriptor chaining to the first (virtio 2.7.5) */
    for (uint16_t i = 0; i < size; i++)
        q->desc[i].next = q->next[i] = (flags & GABI_VHOST_GUESTQ_IN_ORDER)
                                           ? (uint16_t)((i + 1) & (size - 1))
                                           : (uint16_t)(i + 1);
    q->n_free = size;
    q->batch_last = -1;
fds:
    q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    q->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (q->kick_fd < 0 || q->call_fd < 0) {
        int e = -errno;

        gabi_vhost_guestq_free(q);
        return e;
    }
    *ret = q;
    return 0;
}

struct gabi_vhost_guestq *gabi_vhost_guestq_free(struct gabi_vhost_guestq *q)
{
    if (!q)
        return NULL;
    close_and_clear(&q->kick_fd);
    close_and_clear(&q->call_fd);
    free(q->chain_len);
    free(q->next);
    free(q->id_next);
    free(q->pending);
    free(q->pending_fl);
    free(q->order);
    free(q);
    return NULL;
}

struct gabi_vhost_guestmem *gabi_vhost_guestq_guestmem(const struct gabi_vhost_guestq *q)
{
    return q->gm;
}

uint16_t gabi_vhost_guestq_size(const struct gabi_vhost_guestq *q)
{
    return q->num;
}

void gabi_vhost_guestq_addrs(const struct gabi_vhost_guestq *q, uint64_t *ret_desc,
                             uint64_t *ret_avail, uint64_t *ret_used)
{
    *ret_desc = q->desc_gpa;
    *ret_avail = q->avail_gpa;
    *ret_used = q->used_gpa;
}

int gabi_vhost_guestq_kick_fd(const struct gabi_vhost_guestq *q)
{
    return q->kick_fd;
}

int gabi_vhost_guestq_call_fd(const struct gabi_vhost_guestq *q)
{
    return q->call_fd;
}

int gabi_vhost_guestq_next_head(const struct gabi_vhost_guestq *q)
{
    if (q->pdesc)
        return q->n_free ? q->free_id : -ENOSPC;
    return q->n_free ? q->free_head : -ENOSPC;
}

uint32_t gabi_vhost_guestq_base(const struct gabi_vhost_guestq *q)
{
    return q->pdesc ? 0x80008000u : 0;
}

/* One packed descriptor at the next slot; its flags now, or (first) left for publish. */
static void packed_put(struct gabi_vhost_guestq *q, uint64_t addr, uint32_t len, uint16_t id,
                       uint16_t flags, bool first)
{
    struct vring_packed_desc *d = &q->pdesc[q->slot];

    flags = (uint16_t)(flags | vring_packed_flags(true, q->wrap));
    d->addr = addr;
    d->len = len;
    d->id = id;
    if (first) {
        q->pending[q->n_pending] = q->slot;
        q->pending_fl[q->n_pending++] = flags;
    } else {
        d->flags = flags;
    }
    if (++q->slot == q->num) {
        q->slot = 0;
        q->wrap = !q->wrap;
    }
}

static int packed_add(struct gabi_vhost_guestq *q, const struct gabi_vhost_gbuf *bufs,
                      unsigned n_out, unsigned n_in, bool indirect)
{
    unsigned n = n_out + n_in, slots = indirect ? 1 : n;
    uint16_t id = q->free_id;

    if (indirect && (!q->indirect || n > INDIRECT_MAX))
        return -E2BIG;
    if (slots > q->n_free)
        return -ENOSPC;
    q->free_id = q->id_next[id];
    if (indirect) {
        struct vring_packed_desc *table =
            (struct vring_packed_desc *)(q->indirect + (size_t)id * INDIRECT_MAX);

        for (unsigned k = 0; k < n; k++) {
            table[k].addr = bufs[k].gpa;
            table[k].len = bufs[k].len;
            table[k].id = 0;
            table[k].flags = (uint16_t)(k >= n_out ? VRING_DESC_F_WRITE : 0);
        }
        packed_put(q, q->indirect_gpa + (uint64_t)id * INDIRECT_MAX * 16, n * 16, id,
                   VRING_DESC_F_INDIRECT, true);
    } else {
        for (unsigned k = 0; k < n; k++)
            packed_put(q, bufs[k].gpa, bufs[k].len, id,
                       (uint16_t)((k >= n_out ? VRING_DESC_F_WRITE : 0) |
                                  (k + 1 < n ? VRING_DESC_F_NEXT : 0)),
                       k == 0);
    }
    q->n_free = (uint16_t)(q->n_free - slots);
    q->chain_len[id] = (uint16_t)slots;
    q->order[q->order_tail++ & (q->num - 1)] = id;
    q->avail_idx++;
    return id;
}

unsigned gabi_vhost_guestq_n_free(const struct gabi_vhost_guestq *q)
{
    return q->n_free;
}

int gabi_vhost_guestq_add(struct gabi_vhost_guestq *q, const struct gabi_vhost_gbuf *bufs,
                          unsigned n_out, unsigned n_in, bool indirect)
{
    unsigned n = n_out + n_in;
    uint16_t head = q->free_head, i = head;

    if (n == 0)
        return -EINVAL;
    if (q->pdesc)
        return packed_add(q, bufs, n_out, n_in, indirect);
    if (indirect) {
        struct vring_desc *table;

        if (!q->indirect || n > INDIRECT_MAX)
            return -E2BIG;
        if (q->n_free < 1)
            return -ENOSPC;
        table = q->indirect + (size_t)head * INDIRECT_MAX;
        for (unsigned k = 0; k < n; k++) {
            table[k].addr = bufs[k].gpa;
            table[k].len = bufs[k].len;
            table[k].flags = (uint16_t)((k >= n_out ? VRING_DESC_F_WRITE : 0) |
                                        (k + 1 < n ? VRING_DESC_F_NEXT : 0));
            table[k].next = (uint16_t)(k + 1);
        }
        q->free_head = q->next[head];
        q->desc[head].addr = q->indirect_gpa + (uint64_t)head * INDIRECT_MAX * 16;
        q->desc[head].len = n * 16;
        q->desc[head].flags = VRING_DESC_F_INDIRECT;
        q->n_free--;
        q->chain_len[head] = 1;
    } else {
        if (n > q->n_free)
            return -ENOSPC;
        for (unsigned k = 0; k < n; k++) {
            set_desc(&q->desc[i], bufs[k].gpa, bufs[k].len,
                     (uint16_t)((k >= n_out ? VRING_DESC_F_WRITE : 0) |
                                (k + 1 < n ? VRING_DESC_F_NEXT : 0)));
            if (k + 1 < n) {
                if (q->desc[i].next != q->next[i])
                    q->desc[i].next = q->next[i];
                i = q->next[i];
            }
        }
        q->free_head = q->next[i];
        q->n_free = (uint16_t)(q->n_free - n);
        q->chain_len[head] = (uint16_t)n;
    }
    if (q->avail->ring[q->avail_idx & (q->num - 1)] != head)
        q->avail->ring[q->avail_idx & (q->num - 1)] = head;
    q->avail_idx++;
    return head;
}

void gabi_vhost_guestq_publish(struct gabi_vhost_guestq *q)
{
    if (q->pdesc) {
        /* every chain's first descriptor last, in order (the device reads them in order) */
        for (uint16_t k = 0; k < q->n_pending; k++)
            ring_store_release(&q->pdesc[q->pending[k]].flags, q->pending_fl[k]);
        q->n_pending = 0;
        q->published = q->avail_idx;
        return;
    }
    if (q->published != q->avail_idx) {
        ring_store_release(&q->avail->idx, q->avail_idx);
        q->published = q->avail_idx;
    }
}

int gabi_vhost_guestq_kick(struct gabi_vhost_guestq *q)
{
    uint64_t one = 1;
    uint16_t old = q->kicked_at;
    bool need;

    gabi_vhost_guestq_publish(q);
    if (q->pdesc) {
        uint32_t now = q->slot | PWRAP(q->wrap), was = q->kicked_slot;
        uint16_t fl;

        if (now == was)
            return 0;
        q->kicked_slot = now;
        ring_fence();
        fl = ring_load(&q->dev_event->flags);
        if (fl == VRING_PACKED_EVENT_F_DISABLE)
            return 0;
        if (fl == VRING_PACKED_EVENT_F_DESC && flags_event_idx(q) &&
            !vring_packed_need_event(ring_load(&q->dev_event->off_wrap), q->slot, q->wrap,
                                     (uint16_t)(was & 0x7fff), q->num))
            return 0;
        return write(q->kick_fd, &one, sizeof(one)) == sizeof(one) ? 1 : -errno;
    }
    if (old == q->published)
        return 0;
    q->kicked_at = q->published;
    ring_fence();
    if (q->flags & GABI_VHOST_GUESTQ_EVENT_IDX)
        need = vring_need_event(ring_load(vring_avail_event(q->used, q->num)), q->published, old);
    else
        need = !(ring_load(&q->used->flags) & VRING_USED_F_NO_NOTIFY);
    if (!need)
        return 0;
    return write(q->kick_fd, &one, sizeof(one)) == sizeof(one) ? 1 : -errno;
}

static void packed_free_id(struct gabi_vhost_guestq *q, uint16_t id)
{
    q->n_free = (uint16_t)(q->n_free + q->chain_len[id]);
    q->chain_len[id] = 0;
    q->id_next[id] = q->free_id;
    q->free_id = id;
}

static void packed_used_advance(struct gabi_vhost_guestq *q, uint32_t slots)
{
    uint32_t s = q->used_slot + slots;

    if (s >= q->num) {
        s -= q->num;
        q->used_wrap = !q->used_wrap;
    }
    q->used_slot = (uint16_t)s;
}

static int packed_get_used(struct gabi_vhost_guestq *q, uint32_t *ret_id, uint32_t *ret_len)
{
    struct vring_packed_desc *d = &q->pdesc[q->used_slot];
    uint16_t id, first;
    uint32_t len;

    if (!vring_packed_is_used(ring_load_acquire(&d->flags), q->used_wrap))
        return 0;
    id = d->id;
    len = d->len;
    if (id >= q->num || q->chain_len[id] == 0)
        return -EIO; /* the device handed back something we never posted */
    first = q->order[q->order_head & (q->num - 1)];
    if ((q->flags & GABI_VHOST_GUESTQ_IN_ORDER) && first != id) {
        /* a later chain's id: every chain posted before it is complete, nothing written */
        q->order_head++;
        q->skip += q->chain_len[first];
        packed_free_id(q, first);
        *ret_id = first;
        *ret_len = 0;
        return 1;
    }
    if (first == id)
        q->order_head++;
    packed_used_advance(q, q->skip + q->chain_len[id]);
    q->skip = 0;
    packed_free_id(q, id);
    if (flags_event_idx(q) && ring_load(&q->drv_event->flags) != VRING_PACKED_EVENT_F_DISABLE)
        ring_store(&q->drv_event->off_wrap, (uint16_t)(q->used_slot | PWRAP(q->used_wrap)));
    *ret_id = id;
    *ret_len = len;
    return 1;
}

static void split_used_event(struct gabi_vhost_guestq *q)
{
    if ((q->flags & GABI_VHOST_GUESTQ_EVENT_IDX) && !(q->avail->flags & VRING_AVAIL_F_NO_INTERRUPT))
        ring_store(vring_used_event(q->avail, q->num), q->last_used);
}

/* Split, in order: the oldest chain in flight is the next one used. A batch's used entry is
 * checked to name a chain in flight within the chains used->idx counts. */
static int split_get_used_in_order(struct gabi_vhost_guestq *q, uint16_t idx, uint32_t *ret_id,
                                   uint32_t *ret_len)
{
    uint16_t mask = (uint16_t)(q->num - 1), id = (uint16_t)((q->free_head + q->n_free) & mask);

    if (q->chain_len[id] == 0)
        return -EIO; /* used entries counted beyond what we posted */
    if (q->batch_last < 0) {
        struct vring_used_elem e = q->used->ring[q->last_used & mask];
        uint16_t h = id, chains = (uint16_t)(idx - q->last_used);

        if (e.id >= q->num || q->chain_len[e.id] == 0)
            return -EIO; /* the device handed back something we never posted */
        for (uint16_t k = 1; h != e.id; k++) {
            h = (uint16_t)((h + q->chain_len[h]) & mask);
            if (k >= chains || q->chain_len[h] == 0)
                return -EIO; /* a batch longer than used->idx counts */
        }
        q->batch_last = (int32_t)e.id;
        q->batch_len = e.len;
    }
    *ret_len = 0;
    if ((int32_t)id == q->batch_last) {
        *ret_len = q->batch_len;
        q->batch_last = -1;
    }
    q->n_free = (uint16_t)(q->n_free + q->chain_len[id]);
    q->chain_len[id] = 0;
    q->last_used++;
    split_used_event(q);
    *ret_id = id;
    return 1;
}

int gabi_vhost_guestq_get_used(struct gabi_vhost_guestq *q, uint32_t *ret_id, uint32_t *ret_len)
{
    struct vring_used_elem e;
    uint16_t idx, last;

    if (q->pdesc)
        return packed_get_used(q, ret_id, ret_len);
    idx = ring_load_acquire(&q->used->idx);
    if (idx == q->last_used)
        return 0;
    if (q->flags & GABI_VHOST_GUESTQ_IN_ORDER)
        return split_get_used_in_order(q, idx, ret_id, ret_len);
    e = q->used->ring[q->last_used & (q->num - 1)];
    if (e.id >= q->num || q->chain_len[e.id] == 0)
        return -EIO; /* the device handed back something we never posted */
    q->last_used++;
    last = (uint16_t)e.id;
    for (unsigned k = 1; k < q->chain_len[e.id]; k++)
        last = q->next[last];
    q->next[last] = q->free_head;
    q->free_head = (uint16_t)e.id;
    q->n_free = (uint16_t)(q->n_free + q->chain_len[e.id]);
    q->chain_len[e.id] = 0;
    split_used_event(q);
    *ret_id = e.id;
    *ret_len = e.len;
    return 1;
}

void gabi_vhost_guestq_set_interrupts(struct gabi_vhost_guestq *q, bool enable)
{
    if (q->pdesc) {
        ring_store(&q->drv_event->off_wrap, (uint16_t)(q->used_slot | PWRAP(q->used_wrap)));
        ring_store(&q->drv_event->flags,
                   (uint16_t)(!enable              ? VRING_PACKED_EVENT_F_DISABLE
                              : flags_event_idx(q) ? VRING_PACKED_EVENT_F_DESC
                                                   : VRING_PACKED_EVENT_F_ENABLE));
        ring_fence();
        return;
    }
    ring_store(&q->avail->flags, (uint16_t)(enable ? 0 : VRING_AVAIL_F_NO_INTERRUPT));
    if (q->flags & GABI_VHOST_GUESTQ_EVENT_IDX)
        ring_store(vring_used_event(q->avail, q->num),
                   (uint16_t)(enable ? q->last_used : q->last_used - 1));
    ring_fence();
}

int gabi_vhost_guestq_wait(struct gabi_vhost_guestq *q, int timeout_ms)
{
    struct pollfd p = {.fd = q->call_fd, .events = POLLIN};
    uint64_t v;
    int r = poll(&p, 1, timeout_ms);

    if (r < 0)
        return -errno;
    if (r == 0)
        return 0;
    if (read(q->call_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        return -errno;
    return 1;
}

uint16_t gabi_vhost_guestq_avail_idx(const struct gabi_vhost_guestq *q)
{
    return q->avail_idx;
}

uint16_t gabi_vhost_guestq_used_idx(const struct gabi_vhost_guestq *q)
{
    if (q->pdesc)
        return (uint16_t)(q->used_slot | PWRAP(q->used_wrap));
    return ring_load_acquire(&q->used->idx);
}
