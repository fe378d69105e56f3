/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Names of everything the ABI is made of, in one place: device classes, virtio feature bits
 * (by their spec names), vhost-user protocol feature bits, and the host-kernel capabilities
 * that kernel-dependent virtio features rely on. The engine, the vhost-user library and the
 * probe all read these tables; nobody else spells a bit number.
 */

#include <stddef.h>
#include <stdint.h>

enum gabi_device_class {
    GABI_CLASS_NONE = 0,
    GABI_CLASS_NET,  /* "virtio-net" */
    GABI_CLASS_BLK,  /* "virtio-blk" */
    GABI_CLASS_MDEV, /* "mdev": a mediated device; no virtio features */
    GABI_CLASS_COUNT,
};

const char *gabi_class_name(enum gabi_device_class cls);
/* Returns the class, or -ENOENT. */
int gabi_class_from_name(const char *name);
/* Whether devices of this class carry virtio features and run compat modes. */
int gabi_class_is_virtio(enum gabi_device_class cls);

/* ---- virtio features (GET/SET_FEATURES bits) ------------------------------------------- */

/* The spec name of `bit` for `cls` (transport bits are shared by every virtio class),
 * or NULL when the bit has no name. */
const char *gabi_feature_name(enum gabi_device_class cls, unsigned bit);
/* Look a spec name up for `cls`: 0 and *ret_bit, -ENOENT if no class has that name,
 * -EXDEV if it names a bit of another class (e.g. a VIRTIO_BLK_F_ name for virtio-net). */
int gabi_feature_from_name(enum gabi_device_class cls, const char *name, unsigned *ret_bit);
/* Calls fn for each known name of `cls` (for suggestions and listings). */
void gabi_feature_foreach(enum gabi_device_class cls,
                          void (*fn)(const char *name, unsigned bit, void *userdata),
                          void *userdata);

/* vhost-user transport bits inside the feature mask. */
#define GABI_F_LOG_ALL           26u
#define GABI_F_INDIRECT_DESC     28u
#define GABI_F_EVENT_IDX         29u
#define GABI_F_PROTOCOL_FEATURES 30u
#define GABI_F_VERSION_1         32u
#define GABI_F_ACCESS_PLATFORM   33u
#define GABI_F_RING_PACKED       34u
#define GABI_F_IN_ORDER          35u

/* virtio-net bits the code needs by number. */
#define GABI_NET_F_CSUM           0u
#define GABI_NET_F_GUEST_CSUM     1u
#define GABI_NET_F_MTU            3u
#define GABI_NET_F_MAC            5u
#define GABI_NET_F_GUEST_TSO4     7u
#define GABI_NET_F_GUEST_TSO6     8u
#define GABI_NET_F_GUEST_ECN      9u
#define GABI_NET_F_GUEST_UFO      10u
#define GABI_NET_F_HOST_TSO4      11u
#define GABI_NET_F_HOST_TSO6      12u
#define GABI_NET_F_HOST_ECN       13u
#define GABI_NET_F_HOST_UFO       14u
#define GABI_NET_F_MRG_RXBUF      15u
#define GABI_NET_F_STATUS         16u
#define GABI_NET_F_CTRL_VQ        17u
#define GABI_NET_F_CTRL_RX        18u
#define GABI_NET_F_CTRL_VLAN      19u
#define GABI_NET_F_GUEST_ANNOUNCE 21u
#define GABI_NET_F_MQ             22u
#define GABI_NET_F_CTRL_MAC_ADDR  23u
#define GABI_NET_F_GUEST_USO4     54u
#define GABI_NET_F_GUEST_USO6     55u
#define GABI_NET_F_HOST_USO       56u
#define GABI_NET_F_STANDBY        62u

/* virtio-blk bits the code needs by number. */
#define GABI_BLK_F_SIZE_MAX     1u
#define GABI_BLK_F_SEG_MAX      2u
#define GABI_BLK_F_RO           5u
#define GABI_BLK_F_BLK_SIZE     6u
#define GABI_BLK_F_FLUSH        9u
#define GABI_BLK_F_CONFIG_WCE   11u
#define GABI_BLK_F_MQ           12u
#define GABI_BLK_F_DISCARD      13u
#define GABI_BLK_F_WRITE_ZEROES 14u

/* ---- vhost-user protocol features (GET/SET_PROTOCOL_FEATURES bits) --------------------- */

enum gabi_protocol_feature {
    GABI_PF_MQ = 0,
    GABI_PF_LOG_SHMFD = 1,
    GABI_PF_RARP = 2,
    GABI_PF_REPLY_ACK = 3,
    GABI_PF_NET_MTU = 4,
    GABI_PF_BACKEND_REQ = 5,
    GABI_PF_CROSS_ENDIAN = 6,
    GABI_PF_CRYPTO_SESSION = 7,
    GABI_PF_PAGEFAULT = 8,
    GABI_PF_CONFIG = 9,
    GABI_PF_BACKEND_SEND_FD = 10,
    GABI_PF_HOST_NOTIFIER = 11,
    GABI_PF_INFLIGHT_SHMFD = 12,
    GABI_PF_RESET_DEVICE = 13,
    GABI_PF_INBAND_NOTIFICATIONS = 14,
    GABI_PF_CONFIGURE_MEM_SLOTS = 15,
    GABI_PF_STATUS = 16,
    GABI_PF_XEN_MMAP = 17,
    GABI_PF_SHARED_OBJECT = 18,
    GABI_PF_DEVICE_STATE = 19,
    GABI_PF_COUNT,
};

/* "VHOST_USER_PROTOCOL_F_MQ" for bit 0, NULL for an unnamed bit. */
const char *gabi_protocol_feature_name(unsigned bit);
/* 0 and *ret_bit, or -ENOENT. */
int gabi_protocol_feature_from_name(const char *name, unsigned *ret_bit);

/* ---- host-kernel capabilities ---------------------------------------------------------- */

/*
 * What a host kernel may or may not do that changes which virtio features a VM can be given.
 * A platform lists the capabilities it needs; the probe finds which ones a host has.
 */
enum gabi_kcap {
    GABI_KCAP_TAP_VNET_HDR = 0, /* IFF_VNET_HDR */
    GABI_KCAP_TAP_CSUM,         /* TUN_F_CSUM */
    GABI_KCAP_TAP_TSO4,         /* TUN_F_TSO4 */
    GABI_KCAP_TAP_TSO6,         /* TUN_F_TSO6 */
    GABI_KCAP_TAP_TSO_ECN,      /* TUN_F_TSO_ECN */
    GABI_KCAP_TAP_UFO,          /* TUN_F_UFO */
    GABI_KCAP_TAP_USO4,         /* TUN_F_USO4 (Linux 6.2) */
    GABI_KCAP_TAP_USO6,         /* TUN_F_USO6 (Linux 6.2) */
    GABI_KCAP_VHOST_NET,        /* /dev/vhost-net */
    GABI_KCAP_COUNT,
};

/* "tap.uso4" etc. */
const char *gabi_kcap_name(enum gabi_kcap cap);
/* Returns the capability, or -ENOENT. */
int gabi_kcap_from_name(const char *name);
/* The TUN_F_* flag a tap offload capability is probed with, 0 for the others. */
unsigned gabi_kcap_tun_flag(enum gabi_kcap cap);

/* The kernel capabilities (bit per enum gabi_kcap) a virtio-net feature needs when the
 * device's packets go through a tap (QEMU's tap peer checks), 0 for a feature that needs none. */
uint32_t gabi_kcap_needed_by_net_feature(unsigned bit);

/* ---- hypervisor properties -------------------------------------------------------------- */

/*
 * A kernel-dependent virtio-net feature reaches a VM only if the hypervisor can switch it on:
 * QEMU's virtio-net devices have one property per feature ("host_uso" for
 * VIRTIO_NET_F_HOST_USO). The table names, per feature, that property and the first QEMU
 * release that has it (docs/catalog.md cites each).
 */
struct gabi_hv_property {
    const char *name;  /* "host_uso" */
    unsigned bit;      /* VIRTIO_NET_F_* bit it switches */
    const char *since; /* first QEMU release with it: "8.2" */
};

/* The table, in feature-bit order: *ret_n entries. */
const struct gabi_hv_property *gabi_hv_properties(size_t *ret_n);
/* The property for a virtio-net feature bit, or NULL when no property switches it. */
const struct gabi_hv_property *gabi_hv_property_for_feature(unsigned bit);
/* The property of that name, or NULL. */
const struct gabi_hv_property *gabi_hv_property_find(const char *name);

/* ---- suggestions for unknown names ----------------------------------------------------- */

#define GABI_SUGGEST_MAX 3

/* Collects the known names nearest to a misspelt one (edit distance), best first. */
struct gabi_suggest {
    const char *wanted;
    const char *best[GABI_SUGGEST_MAX];
    unsigned dist[GABI_SUGGEST_MAX];
    size_t n_best;
};

void gabi_suggest_init(struct gabi_suggest *s, const char *wanted);
void gabi_suggest_add(struct gabi_suggest *s, const char *candidate);
/* "; did you mean A, B or C?" into buf ("" when nothing is close); returns buf. */
const char *gabi_suggest_format(const struct gabi_suggest *s, char *buf, size_t size);
