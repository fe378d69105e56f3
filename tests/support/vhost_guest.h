/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Test support: a guest driver for lib/vhost's front-end, used by the unit tests, the fuzz
 * targets and the benchmarks (never by a program): memfd guest memory shared with a
 * back-end, and split virtqueues a guest driver posts chains on and reaps used entries from.
 */

#include <stddef.h>
#include <sys/uio.h>

#include <guestabi/vhost_client.h>

/* ---- guest memory (front-end side) ---------------------------------------------------- */

/* memfd-backed guest RAM, shareable with a back-end: n_regions equal regions adjacent in
 * guest-physical space from gpa 0 (like QEMU's split around the PCI hole, without the hole). */
struct gabi_vhost_guestmem;

struct gabi_vhost_region {
    uint64_t gpa;
    uint64_t size;
    uint64_t uaddr;       /* front-end virtual address (ring addresses are these) */
    uint64_t mmap_offset; /* into the fd */
};

int gabi_vhost_guestmem_new(uint64_t size, unsigned n_regions, struct gabi_vhost_guestmem **ret,
                            struct gabi_error *reterr);
struct gabi_vhost_guestmem *gabi_vhost_guestmem_free(struct gabi_vhost_guestmem *gm);
GABI_DEFINE_FREEP(struct gabi_vhost_guestmem, gabi_vhost_guestmem_free)
int gabi_vhost_guestmem_fd(const struct gabi_vhost_guestmem *gm);
uint64_t gabi_vhost_guestmem_size(const struct gabi_vhost_guestmem *gm);
unsigned gabi_vhost_guestmem_n_regions(const struct gabi_vhost_guestmem *gm);
const struct gabi_vhost_region *gabi_vhost_guestmem_region(const struct gabi_vhost_guestmem *gm,
                                                           unsigned i);
/* Host pointer to [gpa, gpa+len), or NULL when it is not all guest RAM. */
void *gabi_vhost_guestmem_ptr(const struct gabi_vhost_guestmem *gm, uint64_t gpa, uint64_t len);
/* Front-end virtual address of gpa (0 when outside). */
uint64_t gabi_vhost_guestmem_uaddr(const struct gabi_vhost_guestmem *gm, uint64_t gpa);
/* Bump allocator over guest RAM: 0 and *ret_gpa, or -ENOMEM. align: a power of 2. */
int gabi_vhost_guestmem_alloc(struct gabi_vhost_guestmem *gm, uint64_t size, uint64_t align,
                              uint64_t *ret_gpa);

/* ---- guest driver virtqueue (front-end side, split layout) ---------------------------- */

struct gabi_vhost_guestq;

/* A buffer in guest memory. */
struct gabi_vhost_gbuf {
    uint64_t gpa;
    uint32_t len;
};

#define GABI_VHOST_GUESTQ_EVENT_IDX 0x1u /* use used_event/avail_event */
#define GABI_VHOST_GUESTQ_INDIRECT  0x2u /* may post chains as indirect tables */
#define GABI_VHOST_GUESTQ_PACKED    0x4u /* packed layout (VIRTIO_F_RING_PACKED) */
#define GABI_VHOST_GUESTQ_IN_ORDER  0x8u /* a used id completes all chains before it */

/* Rings in gm, plus a kick and a call eventfd. */
int gabi_vhost_guestq_new(struct gabi_vhost_guestmem *gm, uint16_t size, unsigned flags,
                          struct gabi_vhost_guestq **ret);
struct gabi_vhost_guestq *gabi_vhost_guestq_free(struct gabi_vhost_guestq *q);
GABI_DEFINE_FREEP(struct gabi_vhost_guestq, gabi_vhost_guestq_free)
struct gabi_vhost_guestmem *gabi_vhost_guestq_guestmem(const struct gabi_vhost_guestq *q);
uint16_t gabi_vhost_guestq_size(const struct gabi_vhost_guestq *q);
void gabi_vhost_guestq_addrs(const struct gabi_vhost_guestq *q, uint64_t *ret_desc,
                             uint64_t *ret_avail, uint64_t *ret_used);
int gabi_vhost_guestq_kick_fd(const struct gabi_vhost_guestq *q);
int gabi_vhost_guestq_call_fd(const struct gabi_vhost_guestq *q);
/* The vring base to start a fresh queue at: 0 split; packed, slot 0 with both wrap counters
 * set (0x80008000, as QEMU hands it over). */
uint32_t gabi_vhost_guestq_base(const struct gabi_vhost_guestq *q);
/* The head the next add will use (drivers keying buffers by head), or -ENOSPC. */
int gabi_vhost_guestq_next_head(const struct gabi_vhost_guestq *q);
/* Free descriptors. */
unsigned gabi_vhost_guestq_n_free(const struct gabi_vhost_guestq *q);
/* Post a chain: n_out device-readable buffers then n_in writable ones; indirect: as one
 * indirect table (needs GABI_VHOST_GUESTQ_INDIRECT). Returns the head id, or -ENOSPC. Not
 * visible to the device before gabi_vhost_guestq_publish(). */
int gabi_vhost_guestq_add(struct gabi_vhost_guestq *q, const struct gabi_vhost_gbuf *bufs,
                          unsigned n_out, unsigned n_in, bool indirect);
/* Make added chains visible (one avail-index update). */
void gabi_vhost_guestq_publish(struct gabi_vhost_guestq *q);
/* Kick the device unless it asked not to be (NO_NOTIFY / avail_event). 1 when kicked. */
int gabi_vhost_guestq_kick(struct gabi_vhost_guestq *q);
/* Reap one used chain: 1 with *ret_id and *ret_len, 0 when none (descriptors are freed). */
int gabi_vhost_guestq_get_used(struct gabi_vhost_guestq *q, uint32_t *ret_id, uint32_t *ret_len);
/* Ask for interrupts (call fd writes) or not. */
void gabi_vhost_guestq_set_interrupts(struct gabi_vhost_guestq *q, bool enable);
/* Wait up to timeout_ms for the call fd (and consume it): 1 signalled, 0 timeout. */
int gabi_vhost_guestq_wait(struct gabi_vhost_guestq *q, int timeout_ms);
/* Avail index the driver will publish next (the base to restart a vring at is the one
 * GET_VRING_BASE returned). */
uint16_t gabi_vhost_guestq_avail_idx(const struct gabi_vhost_guestq *q);
/* Used index as the device wrote it (packed: the driver's next used slot | wrap << 15). */
uint16_t gabi_vhost_guestq_used_idx(const struct gabi_vhost_guestq *q);

/* ---- the front-end with guest memory and a guest driver's virtqueues ------------------ */

/* All of gm's regions in one SET_MEM_TABLE, or one ADD_MEM_REG / REM_MEM_REG each. */
int gabi_vhost_client_set_mem_table(struct gabi_vhost_client *c,
                                    const struct gabi_vhost_guestmem *gm);
int gabi_vhost_client_add_mem_reg(struct gabi_vhost_client *c, const struct gabi_vhost_guestmem *gm,
                                  unsigned region);
int gabi_vhost_client_rem_mem_reg(struct gabi_vhost_client *c, const struct gabi_vhost_guestmem *gm,
                                  unsigned region);

/* Start vring `index` on q, as QEMU does: NUM, BASE (base), ADDR (flags: VHOST_VRING_F_LOG
 * = 1 with log_gpa the used ring's gpa), KICK, CALL, ENABLE 1. */
int gabi_vhost_client_start_vring(struct gabi_vhost_client *c, unsigned index,
                                  struct gabi_vhost_guestq *q, uint32_t base, bool log);

/* Share all of gm as QEMU does: one ADD_MEM_REG per region once CONFIGURE_MEM_SLOTS is
 * negotiated, else one SET_MEM_TABLE. */
int gabi_vhost_client_share_guestmem(struct gabi_vhost_client *c,
                                     const struct gabi_vhost_guestmem *gm);

/* ---- compat modes from the built-in catalog ----------------------------------------------- */

/* The built-in catalog's mode `name` as lib/vhost runs it (loaded once; a name the catalog
 * does not ship aborts the test). Tests take the modes the product ships from here. */
const struct gabi_vhost_mode *test_catalog_mode(const char *name);
