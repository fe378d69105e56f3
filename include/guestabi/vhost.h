/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * vhost-user, as QEMU's docs/interop/vhost-user.rst defines it (docs/vhost.md is the guide):
 * what every side shares, the limits, the virtio status bits and the compat mode. One header
 * per object beside it:
 *
 *   <guestabi/vhost_backend.h>  a device: one listening socket path (or one connected fd), one
 *                               front-end at a time, run from the caller's loop
 *   <guestabi/vhost_vring.h>    a split virtqueue seen from the device
 *   <guestabi/vhost_client.h>   the front-end: connect, negotiate, move device state, probe
 *   <guestabi/vhost_state.h>    the device-state stream and its writer and reader
 *
 * Functions return >= 0 on success and -errno on failure.
 */

#include <stdbool.h>
#include <stdint.h>

#include <guestabi/cleanup.h>
#include <guestabi/error.h>
#include <guestabi/features.h>

/* ---- limits --------------------------------------------------------------------------- */

#define GABI_VHOST_MAX_QUEUE_PAIRS 128u         /* per device (net: 2 vrings per pair) */
#define GABI_VHOST_MAX_QUEUE_SIZE  32768u       /* descriptors per vring (a power of 2) */
#define GABI_VHOST_MAX_MEM_SLOTS   32u          /* regions: SET_MEM_TABLE takes at most 8 */
#define GABI_VHOST_MAX_FDS         8u           /* file descriptors on one message */
#define GABI_VHOST_MAX_CONFIG_SIZE 256u         /* GET/SET_CONFIG */
#define GABI_VHOST_ELEM_MAX_SEGS   64u          /* segments of one descriptor chain */
#define GABI_VHOST_MAX_LOG_SIZE    (1ull << 30) /* dirty log: covers 32 TiB of guest memory */
#define GABI_VHOST_LOG_PAGE        4096u

/* Virtio transport bits lib/vhost implements itself (the device adds its class's bits). */
#define GABI_VHOST_TRANSPORT_FEATURES                                                              \
    ((1ull << GABI_F_LOG_ALL) | (1ull << GABI_F_INDIRECT_DESC) | (1ull << GABI_F_EVENT_IDX) |      \
     (1ull << GABI_F_PROTOCOL_FEATURES) | (1ull << GABI_F_VERSION_1) |                             \
     (1ull << GABI_F_RING_PACKED))

/* Protocol features lib/vhost implements. CONFIG needs ops->get_config; DEVICE_STATE
 * (SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE) needs a `struct gabi_vhost_state_ops` in the
 * back-end's configuration. */
#define GABI_VHOST_PROTOCOL_FEATURES                                                               \
    ((1ull << GABI_PF_MQ) | (1ull << GABI_PF_LOG_SHMFD) | (1ull << GABI_PF_RARP) |                 \
     (1ull << GABI_PF_REPLY_ACK) | (1ull << GABI_PF_NET_MTU) | (1ull << GABI_PF_BACKEND_REQ) |     \
     (1ull << GABI_PF_CONFIG) | (1ull << GABI_PF_RESET_DEVICE) |                                   \
     (1ull << GABI_PF_CONFIGURE_MEM_SLOTS) | (1ull << GABI_PF_STATUS) |                            \
     (1ull << GABI_PF_DEVICE_STATE))

/* Virtio device status bits (SET/GET_STATUS). */
#define GABI_VIRTIO_STATUS_ACKNOWLEDGE 0x01u
#define GABI_VIRTIO_STATUS_DRIVER      0x02u
#define GABI_VIRTIO_STATUS_DRIVER_OK   0x04u
#define GABI_VIRTIO_STATUS_FEATURES_OK 0x08u
#define GABI_VIRTIO_STATUS_NEEDS_RESET 0x40u
#define GABI_VIRTIO_STATUS_FAILED      0x80u

/* ---- compat mode ---------------------------------------------------------------------- */

/* What a back-end offers, all of it and nothing more (a catalog mode, without the catalog). */
struct gabi_vhost_mode {
    const char *name;           /* for messages: "upstream.guestabi-net.v2" */
    uint64_t features;          /* GET_FEATURES */
    uint64_t protocol_features; /* GET_PROTOCOL_FEATURES */
    uint32_t max_queue_pairs;   /* GET_QUEUE_NUM (virtio-blk: queues) */
    uint32_t max_queue_size;    /* largest SET_VRING_NUM accepted */
};

/* ---- device state (protocol feature DEVICE_STATE, docs/vhost.md "Device state") ---------- */

enum gabi_vhost_state_direction {
    GABI_VHOST_STATE_SAVE = 0, /* back-end -> front-end: the source's state goes out */
    GABI_VHOST_STATE_LOAD = 1, /* front-end -> back-end: the destination takes it in */
};

#define GABI_VHOST_STATE_PHASE_STOPPED 0u /* the only phase: the device is suspended */
