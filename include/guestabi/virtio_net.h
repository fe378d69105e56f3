/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The header virtio-net puts in front of every frame (virtio 1.x, 5.1.6), as guestabi-net
 * reads and writes it and as the tests' guest driver sends it: 12 bytes with num_buffers
 * (VIRTIO_F_VERSION_1 or VIRTIO_NET_F_MRG_RXBUF), the first 10 without. Little-endian.
 */

#include <assert.h>
#include <stdint.h>

struct gabi_virtio_net_hdr {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;
} __attribute__((packed));
static_assert(sizeof(struct gabi_virtio_net_hdr) == 12, "virtio_net_hdr with num_buffers");

#define GABI_VIRTIO_NET_HDR_F_NEEDS_CSUM 1u
#define GABI_VIRTIO_NET_HDR_F_DATA_VALID 2u
#define GABI_VIRTIO_NET_HDR_GSO_NONE     0u
