/* SPDX-License-Identifier: MIT */
#pragma once

/* The split virtqueue layout (virtio 1.x, little-endian hosts only) and the barriers both
 * sides use. Internal to lib/vhost; tests include it to build hostile rings. */

#include <assert.h>
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

/* Shared-memory accessors: single, untorn loads and stores; ordering where named. */
#define ring_load(p)             __atomic_load_n((p), __ATOMIC_RELAXED)
#define ring_load_acquire(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ring_store(p, v)         __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define ring_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ring_fence()             __atomic_thread_fence(__ATOMIC_SEQ_CST)
