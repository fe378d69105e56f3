/* SPDX-License-Identifier: MIT */
/*
 * Packed virtqueues (VIRTIO_F_RING_PACKED), device side: the data path behind the public
 * vring calls of vring.c when the ring is packed.
 *
 * One descriptor ring both sides write. The device consumes available descriptors from
 * last_avail (a slot below num and the avail wrap counter), and writes one used descriptor
 * per chain at used_idx (with the used wrap counter), then skips the slots that chain took.
 * Every guest access is checked as for split rings: a chain may not take more slots than
 * the ring has (so a chain of NEXT flags all around the ring ends), an indirect table must be
 * whole in one region and may not nest, every buffer is translated through the memory
 * table, and a base from the front-end must name slots inside the ring. A violation breaks
 * the vring, never the process.
 *
 * Publishing: the used descriptors of a flush are written id and len first, then their
 * flags, the first chain's flags last with release order, so the driver (which looks at the
 * first one first) sees the whole batch at once. With VIRTIO_F_IN_ORDER a batch of chains
 * with nothing written (transmit completions) is published as one used descriptor, the id
 * of its last chain, skipping all their slots (virtio 1.1, "In-order use of descriptors").
 */

#include <errno.h>
#include <string.h>

#include "vhost/internal.h"

#define WRAP(w) ((uint16_t)((w) ? 1u << VRING_PACKED_WRAP_BIT : 0))

/* The guest-physical address of a front-end virtual address (used writes are logged by
 * gpa: the descriptor ring, not log_gpa, is where a packed ring's used entries go). */
static uint64_t uaddr_gpa(const struct vhost_mem *m, uint64_t uaddr)
{
    for (unsigned i = 0; i < m->n; i++) {
        const struct vhost_region *r = &m->r[i];

        if (uaddr - r->uaddr < r->size)
            return r->gpa + (uaddr - r->uaddr);
    }
    return UINT64_MAX;
}

static void log_ring(struct gabi_vhost_vring *vr, uint64_t gpa, uint64_t len)
{
    if (unlikely(vr->b->logging) && (vr->addr_flags & VHOST_VRING_F_LOG) && gpa != UINT64_MAX)
        gabi_vhost_backend_log_write(vr->b, gpa, len);
}

static void clear_map(struct gabi_vhost_vring *vr)
{
    vr->pdesc = NULL;
    vr->drv_event = NULL;
    vr->dev_event = NULL;
}

bool vhost_packed_map(struct gabi_vhost_vring *vr)
{
    const struct vhost_mem *m = &vr->b->mem;

    if (!vr->addr_set || vr->num == 0) {
        vhost_vring_break(vr, "started before its size and addresses were set");
        return false;
    }
    vr->pdesc = vhost_mem_uaddr(m, vr->desc_uaddr, 16ull * vr->num);
    vr->drv_event = vhost_mem_uaddr(m, vr->avail_uaddr, sizeof(struct vring_packed_event));
    vr->dev_event = vhost_mem_uaddr(m, vr->used_uaddr, sizeof(struct vring_packed_event));
    if (!vr->pdesc || !vr->drv_event || !vr->dev_event) {
        vhost_vring_break(vr,
                          "packed ring of %u at desc 0x%" PRIx64 " driver 0x%" PRIx64
                          " device 0x%" PRIx64 " is not inside the memory table",
                          vr->num, vr->desc_uaddr, vr->avail_uaddr, vr->used_uaddr);
        clear_map(vr);
        return false;
    }
    if (((uintptr_t)vr->pdesc & 15) || ((uintptr_t)vr->drv_event & 3) ||
        ((uintptr_t)vr->dev_event & 3)) {
        vhost_vring_break(vr,
                          "packed ring addresses desc 0x%" PRIx64 " driver 0x%" PRIx64
                          " device 0x%" PRIx64 " are misaligned",
                          vr->desc_uaddr, vr->avail_uaddr, vr->used_uaddr);
        clear_map(vr);
        return false;
    }
    vr->pdesc_gpa = uaddr_gpa(m, vr->desc_uaddr);
    vr->dev_event_gpa = uaddr_gpa(m, vr->used_uaddr);
    vr->hint = 0;
    return true;
}

static void set_dev_event(struct gabi_vhost_vring *vr, uint16_t flags)
{
    if (flags == VRING_PACKED_EVENT_F_DESC)
        ring_store(&vr->dev_event->off_wrap, (uint16_t)(vr->last_avail | WRAP(vr->avail_wrap)));
    ring_store(&vr->dev_event->flags, flags);
    log_ring(vr, vr->dev_event_gpa, sizeof(struct vring_packed_event));
}

bool vhost_packed_start(struct gabi_vhost_vring *vr)
{
    uint16_t avail = (uint16_t)vr->base, used = (uint16_t)(vr->base >> 16);

    /* A front-end that hands over the avail half only (bits 16-31 zero) has nothing in
     * flight: the used position is the avail one. */
    if ((vr->base >> 16) == 0)
        used = avail;
    if ((avail & 0x7fffu) >= vr->num || (used & 0x7fffu) >= vr->num) {
        vhost_vring_break(vr, "packed base 0x%08" PRIx32 " names a slot beyond the ring of %u",
                          vr->base, vr->num);
        return false;
    }
    vr->last_avail = avail & 0x7fffu;
    vr->avail_wrap = avail >> VRING_PACKED_WRAP_BIT;
    vr->used_idx = used & 0x7fffu;
    vr->used_wrap = used >> VRING_PACKED_WRAP_BIT;
    free(vr->pop_ndesc);
    vr->pop_ndesc = calloc(vr->num, sizeof(*vr->pop_ndesc));
    if (!vr->pop_ndesc) {
        vhost_vring_break(vr, "out of memory for %u entries", vr->num);
        return false;
    }
    vr->pop_seq = 0;
    set_dev_event(vr, vr->event_idx ? VRING_PACKED_EVENT_F_DESC : VRING_PACKED_EVENT_F_ENABLE);
    return true;
}

uint32_t vhost_packed_base(const struct gabi_vhost_vring *vr)
{
    return (uint32_t)(vr->last_avail | WRAP(vr->avail_wrap)) |
           (uint32_t)(vr->used_idx | WRAP(vr->used_wrap)) << 16;
}

/* ---- popping chains --------------------------------------------------------------------- */

static inline bool slot_avail(const struct gabi_vhost_vring *vr)
{
    return vring_packed_is_avail(ring_load_acquire(&vr->pdesc[vr->last_avail].flags),
                                 vr->avail_wrap);
}

static inline void read_pdesc(const struct vring_packed_desc *p, struct vring_packed_desc *d)
{
    memcpy(d, p, sizeof(*d));
    __asm__ volatile("" ::: "memory");
}

/* An indirect table's descriptors (consecutive: NEXT is not used in one) into elem. */
static int walk_indirect(struct gabi_vhost_vring *vr, const struct vring_packed_desc *d,
                         struct gabi_vhost_elem *elem, uint64_t *out_len, uint64_t *in_len)
{
    const struct vring_packed_desc *table;
    uint32_t n = d->len / sizeof(struct vring_packed_desc);
    uint64_t got = 0;

    if (!vr->indirect || (d->flags & VRING_DESC_F_NEXT) || d->len == 0 ||
        d->len % sizeof(struct vring_packed_desc) != 0 || n > vr->num) {
        vhost_vring_break(vr, "bad indirect descriptor at slot %u: %u bytes, flags 0x%x%s",
                          vr->last_avail, d->len, d->flags,
                          vr->indirect ? "" : " (INDIRECT_DESC not negotiated)");
        return -EIO;
    }
    table = (const struct vring_packed_desc *)vhost_mem_gpa(&vr->b->mem, &vr->hint, d->addr, d->len,
                                                            &got);
    if (!table || got != d->len) {
        vhost_vring_break(vr,
                          "indirect table at gpa 0x%" PRIx64 " (%u bytes, slot %u) is not "
                          "inside one memory region",
                          d->addr, d->len, vr->last_avail);
        return -EIO;
    }
    for (uint32_t k = 0; k < n; k++) {
        struct vring_packed_desc t;
        bool w;

        read_pdesc(&table[k], &t);
        w = t.flags & VRING_DESC_F_WRITE;
        if (t.flags & VRING_DESC_F_INDIRECT) {
            vhost_vring_break(vr, "indirect table at slot %u nests another", vr->last_avail);
            return -EIO;
        }
        if (!w && elem->n_in > 0) {
            vhost_vring_break(vr, "chain at slot %u has a readable descriptor after a writable one",
                              vr->last_avail);
            return -EIO;
        }
        *(w ? in_len : out_len) += t.len;
        if (t.len && vhost_vring_add_segments(vr, elem, t.addr, t.len, w) < 0)
            return -EIO;
    }
    return 0;
}

/* The chain at last_avail (its first descriptor available) into elem, with every check. */
static int walk_chain(struct gabi_vhost_vring *vr, struct gabi_vhost_elem *elem)
{
    uint32_t slot = vr->last_avail, count = 0;
    uint64_t out_len = 0, in_len = 0;

    elem->head = vr->pdesc[slot].id; /* for messages until the last descriptor says */
    elem->n_out = 0;
    elem->n_in = 0;
    for (;;) {
        struct vring_packed_desc d;
        bool w;

        read_pdesc(&vr->pdesc[slot], &d);
        if (unlikely(++count > vr->num)) {
            vhost_vring_break(vr, "descriptor chain at slot %u is longer than the ring of %u",
                              vr->last_avail, vr->num);
            return -EIO;
        }
        if (unlikely(d.flags & VRING_DESC_F_INDIRECT)) {
            if (count != 1) {
                vhost_vring_break(vr, "chain at slot %u has an indirect descriptor after %u",
                                  vr->last_avail, count - 1);
                return -EIO;
            }
            if (walk_indirect(vr, &d, elem, &out_len, &in_len) < 0)
                return -EIO;
            elem->head = d.id;
            break;
        }
        w = d.flags & VRING_DESC_F_WRITE;
        if (unlikely(!w && elem->n_in > 0)) {
            vhost_vring_break(vr, "chain at slot %u has a readable descriptor after a writable one",
                              vr->last_avail);
            return -EIO;
        }
        *(w ? &in_len : &out_len) += d.len;
        if (d.len && vhost_vring_add_segments(vr, elem, d.addr, d.len, w) < 0)
            return -EIO;
        if (!(d.flags & VRING_DESC_F_NEXT)) {
            elem->head = d.id; /* the buffer id is in the chain's last descriptor */
            break;
        }
        if (++slot == vr->num)
            slot = 0;
    }
    if (unlikely(out_len > UINT32_MAX || in_len > UINT32_MAX)) {
        vhost_vring_break(vr, "chain at slot %u is longer than 4 GiB", vr->last_avail);
        return -EIO;
    }
    elem->out_len = (uint32_t)out_len;
    elem->in_len = (uint32_t)in_len;
    elem->n_desc = (uint16_t)count;
    return 0;
}

static inline void advance_avail(struct gabi_vhost_vring *vr, uint16_t n_desc)
{
    uint32_t next = (uint32_t)vr->last_avail + n_desc;

    if (next >= vr->num) {
        next -= vr->num;
        vr->avail_wrap = !vr->avail_wrap;
    }
    vr->last_avail = (uint16_t)next;
    vr->pop_ndesc[vr->pop_seq++ & vr->mask] = n_desc;
}

/*
 * The fast path of walk_chain() (one direct descriptor in the region of the last
 * translation) with the ring, the position and the region in registers; anything else goes
 * through walk_chain() with the position written back first.
 */
int vhost_packed_pop_burst(struct gabi_vhost_vring *vr, struct gabi_vhost_elem *elems, unsigned n)
{
    const struct vhost_mem *m = &vr->b->mem;
    const struct vring_packed_desc *ring = vr->pdesc;
    uint16_t *hist = vr->pop_ndesc, mask = vr->mask, seq = vr->pop_seq;
    uint32_t num = vr->num, slot = vr->last_avail;
    bool wrap = vr->avail_wrap;
    uint64_t r_gpa = 0, r_size = 0;
    uint8_t *r_host = NULL;
    unsigned got = 0;

    if (vr->hint < m->n) {
        r_gpa = m->r[vr->hint].gpa;
        r_size = m->r[vr->hint].size;
        r_host = m->r[vr->hint].host;
    }
    while (got < n) {
        struct gabi_vhost_elem *e = &elems[got];
        struct vring_packed_desc d;
        uint64_t off;

        if (!vring_packed_is_avail(ring_load_acquire(&ring[slot].flags), wrap)) {
            /* Drained. With EVENT_IDX, ask for a kick at this slot (unless the device
             * polls), then look once more: the driver may have added one meanwhile. */
            vr->last_avail = (uint16_t)slot;
            vr->avail_wrap = wrap;
            if (!vr->event_idx || !vr->notify_on)
                break;
            set_dev_event(vr, VRING_PACKED_EVENT_F_DESC);
            ring_fence();
            if (!slot_avail(vr))
                break;
        }
        read_pdesc(&ring[slot], &d);
        off = d.addr - r_gpa;
        if (likely(!(d.flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT)) && d.len &&
                   off < r_size && d.len <= r_size - off)) {
            vhost_elem_one(e, d.id, r_host + off, d.addr, d.len, d.flags & VRING_DESC_F_WRITE);
            e->n_desc = 1;
            __builtin_prefetch(e->iov[0].iov_base);
            hist[seq++ & mask] = 1;
            if (++slot == num) {
                slot = 0;
                wrap = !wrap;
            }
            got++;
            continue;
        }
        vr->last_avail = (uint16_t)slot;
        vr->avail_wrap = wrap;
        vr->pop_seq = seq;
        if (walk_chain(vr, e) < 0)
            break;
        advance_avail(vr, e->n_desc);
        slot = vr->last_avail;
        wrap = vr->avail_wrap;
        seq = vr->pop_seq;
        if (vr->hint < m->n) {
            r_gpa = m->r[vr->hint].gpa;
            r_size = m->r[vr->hint].size;
            r_host = m->r[vr->hint].host;
        }
        got++;
    }
    vr->last_avail = (uint16_t)slot;
    vr->avail_wrap = wrap;
    vr->pop_seq = seq;
    return got == 0 && vr->broken ? -EIO : (int)got;
}

bool vhost_packed_has_avail(struct gabi_vhost_vring *vr)
{
    return slot_avail(vr);
}

unsigned vhost_packed_avail_count(struct gabi_vhost_vring *vr)
{
    uint32_t slot = vr->last_avail, n = 0;
    bool w = vr->avail_wrap;

    for (uint32_t i = 0; i < vr->num; i++) {
        uint16_t flags = ring_load_acquire(&vr->pdesc[slot].flags);

        if (!vring_packed_is_avail(flags, w))
            break;
        if (!(flags & VRING_DESC_F_NEXT))
            n++;
        if (++slot == vr->num) {
            slot = 0;
            w = !w;
        }
    }
    return n;
}

void vhost_packed_unpop(struct gabi_vhost_vring *vr, unsigned n)
{
    while (n-- > 0) {
        uint16_t k = vr->pop_ndesc[--vr->pop_seq & vr->mask];

        if (vr->last_avail >= k) {
            vr->last_avail = (uint16_t)(vr->last_avail - k);
        } else {
            vr->last_avail = (uint16_t)(vr->last_avail + vr->num - k);
            vr->avail_wrap = !vr->avail_wrap;
        }
    }
}

/* ---- pushing and publishing ------------------------------------------------------------- */

void vhost_packed_stage(struct gabi_vhost_vring *vr, const struct gabi_vhost_elem *elem,
                        uint32_t len)
{
    uint16_t n_desc = elem->n_desc ? elem->n_desc : 1;

    if (unlikely(!vr->shadow || vr->broken))
        return;
    if (unlikely(vr->n_shadow >= vr->num))
        vhost_packed_flush(vr);
    vr->shadow[vr->n_shadow].id = elem->head | (uint32_t)n_desc << 16;
    vr->shadow[vr->n_shadow].len = len;
    vr->shadow_wrote |= len != 0;
    vr->shadow_slots += n_desc;
    vr->n_shadow++;
}

static int signal_guest(struct gabi_vhost_vring *vr, uint16_t old)
{
    uint16_t flags;
    bool need;

    /* the used descriptors must be visible before we read the driver's wishes */
    ring_fence();
    flags = ring_load(&vr->drv_event->flags);
    if (flags == VRING_PACKED_EVENT_F_DISABLE)
        need = false;
    else if (flags == VRING_PACKED_EVENT_F_DESC && vr->event_idx)
        need = vring_packed_need_event(ring_load(&vr->drv_event->off_wrap), vr->used_idx,
                                       vr->used_wrap, old, vr->num);
    else
        need = true;
    if (need && !vr->call_since_start)
        vr->signalled_unheard = true;
    if (!need || vr->call_fd < 0)
        return 0;
    vhost_vring_signal_fd(vr->call_fd);
    return 1;
}

/* The shadow entries [0, n) as used descriptors from used_idx: each one's id and length, then
 * its flags (release); the first one's flags last of all, so that the driver, which looks at
 * the first slot first, sees the batch at once. */
static void write_used(struct gabi_vhost_vring *vr, unsigned n)
{
    struct vring_packed_desc *ring = vr->pdesc;
    const struct vring_used_elem *sh = vr->shadow;
    uint16_t head = vr->used_idx, head_flags = vring_packed_flags(false, vr->used_wrap);
    uint16_t fl = head_flags;
    uint32_t slot = head, num = vr->num;
    bool w = vr->used_wrap, log = unlikely(vr->b->logging) && (vr->addr_flags & VHOST_VRING_F_LOG);

    /* the first one: id and length now, its flags last of all (below) */
    ring[slot].id = (uint16_t)sh[0].id;
    ring[slot].len = sh[0].len;
    for (unsigned k = 0;;) {
        if (unlikely(log))
            log_ring(vr, vr->pdesc_gpa + 16ull * slot, sizeof(struct vring_packed_desc));
        slot += sh[k].id >> 16;
        if (unlikely(slot >= num)) {
            slot -= num;
            w = !w;
            fl = vring_packed_flags(false, w);
        }
        if (++k == n)
            break;
        ring[slot].id = (uint16_t)sh[k].id;
        ring[slot].len = sh[k].len;
        ring_store_release(&ring[slot].flags, fl);
    }
    ring_store_release(&ring[head].flags, head_flags);
    vr->used_idx = (uint16_t)slot;
    vr->used_wrap = w;
}

int vhost_packed_flush(struct gabi_vhost_vring *vr)
{
    unsigned n = vr->n_shadow;
    uint16_t old = vr->used_idx;

    if (n == 0 || !vr->pdesc || vr->broken)
        return 0;
    if (vr->in_order && n > 1 && !vr->shadow_wrote) {
        /* one used descriptor for the batch when it wrote nothing: the id of its last chain,
         * the slots of all (the driver frees every buffer up to that id) */
        uint32_t slots = vr->shadow_slots;

        if (slots <= 0xffff) {
            vr->shadow[0].id = (uint16_t)vr->shadow[n - 1].id | slots << 16;
            n = 1;
        }
    }
    write_used(vr, n);
    vr->n_shadow = 0;
    vr->shadow_wrote = false;
    vr->shadow_slots = 0;
    if (unlikely(vr->b->logging))
        vhost_vring_signal_fd(vr->b->log_call_fd);
    return signal_guest(vr, old);
}

bool vhost_packed_notify(struct gabi_vhost_vring *vr, bool enable)
{
    vr->notify_on = enable;
    if (!enable) {
        set_dev_event(vr, VRING_PACKED_EVENT_F_DISABLE);
        return false;
    }
    set_dev_event(vr, vr->event_idx ? VRING_PACKED_EVENT_F_DESC : VRING_PACKED_EVENT_F_ENABLE);
    /* our wish must be visible before we look at the ring again */
    ring_fence();
    return slot_avail(vr);
}
