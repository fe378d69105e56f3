/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A virtqueue (split, or packed when VIRTIO_F_RING_PACKED is negotiated) seen from the device: pop
 * descriptor chains as iovecs (guest addresses translated and bounds-checked), push them back used,
 * flush once per batch. Hostile rings mark that vring broken; they never crash the process.
 */

#include <stddef.h>
#include <sys/uio.h>

#include <guestabi/vhost_backend.h>

/* ---- vrings (device side, split layout) ---------------------------------------------- */

/* One descriptor chain: device-readable segments first, then device-writable ones. */
struct gabi_vhost_elem {
    uint16_t head;    /* descriptor index (packed rings: buffer id), handed back by push */
    uint16_t n_desc;  /* packed rings: ring slots the chain took (split rings: unused) */
    uint16_t n_out;   /* readable segments: iov[0 .. n_out) */
    uint16_t n_in;    /* writable segments: iov[n_out .. n_out + n_in) */
    uint32_t out_len; /* bytes readable */
    uint32_t in_len;  /* bytes writable */
    struct iovec iov[GABI_VHOST_ELEM_MAX_SEGS];
    uint64_t gpa[GABI_VHOST_ELEM_MAX_SEGS]; /* guest-physical start of each segment */
};

unsigned gabi_vhost_vring_index(const struct gabi_vhost_vring *vr);
/* Started (kick received, rings mapped) and not broken: the device may process it. */
bool gabi_vhost_vring_ready(const struct gabi_vhost_vring *vr);
bool gabi_vhost_vring_started(const struct gabi_vhost_vring *vr);
/* SET_VRING_ENABLE state (started + disabled: consume without side effects). */
bool gabi_vhost_vring_enabled(const struct gabi_vhost_vring *vr);
/* Why the vring is broken, NULL when it is not. */
const char *gabi_vhost_vring_broken(const struct gabi_vhost_vring *vr);
/* The device found a chain it cannot even answer (a request with no room for its status):
 * mark the started vring broken with this reason, as lib/vhost does for hostile rings (err
 * fd signalled, NEEDS_RESET with STATUS, ops->vring_broken). Chains pushed and not flushed
 * are dropped. No effect on a stopped or already broken vring. */
void gabi_vhost_vring_set_broken(struct gabi_vhost_vring *vr, const char *reason);
uint16_t gabi_vhost_vring_size(const struct gabi_vhost_vring *vr);
/* Next avail index the device will consume (what GET_VRING_BASE returns). */
uint16_t gabi_vhost_vring_last_avail(const struct gabi_vhost_vring *vr);
/* Per-vring device data. */
void gabi_vhost_vring_set_userdata(struct gabi_vhost_vring *vr, void *userdata);
void *gabi_vhost_vring_userdata(const struct gabi_vhost_vring *vr);

/* Consume a pending kick (read the eventfd); call before processing on a kick. */
void gabi_vhost_vring_kick_drain(struct gabi_vhost_vring *vr);
/* Next available chain: 1 and *elem, 0 when none is available, -EIO when the vring is (now)
 * broken, -ENOTCONN when it is not started. */
int gabi_vhost_vring_pop(struct gabi_vhost_vring *vr, struct gabi_vhost_elem *elem);
/* Up to n chains at once into elems[0..): how many (0 when none is available), or -EIO /
 * -ENOTCONN as pop when none could be popped. The avail index is read once per burst; a
 * burst that drains the ring asks for a kick as an empty pop does (EVENT_IDX), and takes what
 * came meanwhile. Each chain's first buffer is prefetched. A chain that breaks the vring ends
 * the burst: the chains before it are the caller's (their pushes are then ignored). */
int gabi_vhost_vring_pop_burst(struct gabi_vhost_vring *vr, struct gabi_vhost_elem *elems,
                               unsigned n);
/* Chains available and not yet popped (0 when not ready). On a packed ring this walks the
 * available descriptors: use gabi_vhost_vring_has_avail() to ask whether there is one. */
unsigned gabi_vhost_vring_avail_count(struct gabi_vhost_vring *vr);
/* Whether a chain is available and not yet popped (false when not ready): one look. */
bool gabi_vhost_vring_has_avail(struct gabi_vhost_vring *vr);
/* Give back the last n popped and not pushed chains (they are popped again next time). */
void gabi_vhost_vring_unpop(struct gabi_vhost_vring *vr, unsigned n);
/* Hand a popped chain back with `written` bytes written to its writable segments (logged
 * when dirty logging is on). Becomes visible to the guest at the next flush. */
void gabi_vhost_vring_push(struct gabi_vhost_vring *vr, const struct gabi_vhost_elem *elem,
                           uint32_t written);
/* As push for elems[0..n), with written[i] bytes each (written NULL: none written, as a
 * transmit queue hands chains back). */
void gabi_vhost_vring_push_burst(struct gabi_vhost_vring *vr, const struct gabi_vhost_elem *elems,
                                 const uint32_t *written, unsigned n);
/* Publish pushed chains (one used-index update) and interrupt the guest if it asked for it
 * (EVENT_IDX or NO_INTERRUPT). Returns 1 when the call fd was signalled, else 0. */
int gabi_vhost_vring_flush(struct gabi_vhost_vring *vr);
/* Ask the guest for kicks (true) or not (false). Enabling returns true when chains arrived
 * meanwhile (process again instead of sleeping). */
bool gabi_vhost_vring_notify(struct gabi_vhost_vring *vr, bool enable);

/* Copy helpers over an element's segments (bounded by the segments' lengths). */
size_t gabi_vhost_elem_read(const struct gabi_vhost_elem *elem, size_t offset, void *buf,
                            size_t size);
size_t gabi_vhost_elem_write(const struct gabi_vhost_elem *elem, size_t offset, const void *buf,
                             size_t size);
