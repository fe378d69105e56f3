/* SPDX-License-Identifier: MIT */
#pragma once

/* The split and packed virtqueue layouts (virtio 1.x, little-endian hosts only) and the barriers
 * both sides use. Internal to lib/vhost; tests include it to build hostile rings. */

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "lib/vhost assumes a little-endian host (virtio 1.x rings are little-endian)"
#endif

#define VRING_DESC_F_NEXT          1u
#define VRING_DESC_F_WRITE         2u
#define VRING_DESC_F_INDIRECT      4u

#define VRING_AVAIL_F_NO_INTERRUPT 1u
#define VRING_USED_F_NO_NOTIFY     1u

struct vring_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
static_assert(sizeof(struct vring_desc) == 16, "descriptor");

struct vring_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[]; /* num entries, then used_event */
};

struct vring_used_elem {
    uint32_t id;
    uint32_t len;
};
static_assert(sizeof(struct vring_used_elem) == 8, "used element");

struct vring_used {
    uint16_t flags;
    uint16_t idx;
    struct vring_used_elem ring[]; /* num entries, then avail_event (u16) */
};

/* Sizes, event fields included (the spec's sizes for a split ring). */
static inline uint64_t vring_desc_size(uint32_t num)
{
    return 16ull * num;
}

static inline uint64_t vring_avail_size(uint32_t num)
{
    return 6ull + 2ull * num;
}

static inline uint64_t vring_used_size(uint32_t num)
{
    return 6ull + 8ull * num;
}

static inline uint16_t *vring_used_event(struct vring_avail *avail, uint32_t num)
{
    return &avail->ring[num];
}

static inline uint16_t *vring_avail_event(struct vring_used *used, uint32_t num)
{
    return (uint16_t *)(void *)&used->ring[num];
}

/* virtio's vring_need_event(): notify when new_idx passed event_idx since old_idx. */
static inline int vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx)
{
    return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

/* ---- the packed layout (virtio 1.1+, VIRTIO_F_RING_PACKED) ---------------------------- */

/* One ring of descriptors both sides write: the driver makes a descriptor available by
 * setting AVAIL to its avail wrap counter and USED to its inverse; the device marks it used
 * by setting both to its used wrap counter. A chain (NEXT) takes consecutive slots; its
 * buffer id is in its last descriptor. */
#define VRING_PACKED_DESC_F_AVAIL (1u << 7)
#define VRING_PACKED_DESC_F_USED  (1u << 15)

/* Event suppression: the driver's structure is in the driver area (where a split ring has
 * avail), the device's in the device area (where a split ring has used). */
#define VRING_PACKED_EVENT_F_ENABLE  0u
#define VRING_PACKED_EVENT_F_DISABLE 1u
#define VRING_PACKED_EVENT_F_DESC    2u /* notify at off_wrap (needs EVENT_IDX) */
#define VRING_PACKED_WRAP_BIT        15 /* in off_wrap, and in a packed vring base */

struct vring_packed_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t id;
    uint16_t flags;
};
static_assert(sizeof(struct vring_packed_desc) == 16, "packed descriptor");

struct vring_packed_event {
    uint16_t off_wrap;
    uint16_t flags;
};
static_assert(sizeof(struct vring_packed_event) == 4, "packed event suppression");

/* The flags that mark a descriptor available (avail) or used (!avail) for wrap counter w. */
static inline uint16_t vring_packed_flags(bool avail, bool w)
{
    uint16_t a = w ? VRING_PACKED_DESC_F_AVAIL : 0, u = w ? VRING_PACKED_DESC_F_USED : 0;

    return avail ? (uint16_t)(a | (VRING_PACKED_DESC_F_USED ^ u)) : (uint16_t)(a | u);
}

/* Whether flags say available for a device whose avail wrap counter is w. */
static inline bool vring_packed_is_avail(uint16_t flags, bool w)
{
    return !!(flags & VRING_PACKED_DESC_F_AVAIL) == w && !!(flags & VRING_PACKED_DESC_F_USED) != w;
}

/* Whether flags say used for a driver whose used wrap counter is w. */
static inline bool vring_packed_is_used(uint16_t flags, bool w)
{
    return !!(flags & VRING_PACKED_DESC_F_AVAIL) == w && !!(flags & VRING_PACKED_DESC_F_USED) == w;
}

/*
 * vring_need_event() for a packed ring: positions are a slot below num plus a wrap counter.
 * The side that moved from old to new (slots, new's wrap counter new_wrap) must notify when
 * event (off_wrap as the other side wrote it) is in (old, new]. Laps are unfolded into one
 * 16-bit index space: num is at most 32768, so two laps fit.
 */
static inline bool vring_packed_need_event(uint16_t off_wrap, uint16_t new_idx, bool new_wrap,
                                           uint16_t old_idx, uint32_t num)
{
    uint16_t off = off_wrap & 0x7fffu;

    if (new_idx <= old_idx)
        old_idx = (uint16_t)(old_idx - num);
    if (!!(off_wrap >> VRING_PACKED_WRAP_BIT) != new_wrap)
        off = (uint16_t)(off - num);
    return vring_need_event(off, new_idx, old_idx);
}

/* Shared-memory accessors: single, untorn loads and stores; ordering where named. */
#define ring_load(p)             __atomic_load_n((p), __ATOMIC_RELAXED)
#define ring_load_acquire(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ring_store(p, v)         __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define ring_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ring_fence()             __atomic_thread_fence(__ATOMIC_SEQ_CST)
