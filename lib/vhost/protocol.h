/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The vhost-user wire format and the one table of front-end messages. Every request is a
 * row of VHOST_USER_MESSAGES below; the enum, the names, the checks done before a handler
 * runs (payload size, fds, protocol feature, reply) and the dispatch all come from it.
 */

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

#include <guestabi/features.h>
#include <guestabi/vhost.h>

/* ---- header ------------------------------------------------------------------------- */

struct vhost_user_hdr {
    uint32_t request;
    uint32_t flags;
    uint32_t size; /* payload bytes after the header */
} __attribute__((packed));
static_assert(sizeof(struct vhost_user_hdr) == 12, "wire header");

#define VHOST_USER_VERSION      0x1u
#define VHOST_USER_VERSION_MASK 0x3u
#define VHOST_USER_REPLY        0x4u
#define VHOST_USER_NEED_REPLY   0x8u

/* ---- payloads ----------------------------------------------------------------------- */

struct vhost_vring_state {
    uint32_t index;
    uint32_t num;
} __attribute__((packed));
static_assert(sizeof(struct vhost_vring_state) == 8, "vring state");

#define VHOST_VRING_F_LOG 0x1u

struct vhost_vring_addr {
    uint32_t index;
    uint32_t flags;
    uint64_t desc_uaddr;
    uint64_t used_uaddr;
    uint64_t avail_uaddr;
    uint64_t log_gpa;
} __attribute__((packed));
static_assert(sizeof(struct vhost_vring_addr) == 40, "vring address");

struct vhost_mem_region {
    uint64_t gpa;
    uint64_t size;
    uint64_t uaddr;
    uint64_t mmap_offset;
} __attribute__((packed));
static_assert(sizeof(struct vhost_mem_region) == 32, "memory region");

#define VHOST_MEMORY_BASELINE_NREGIONS 8u

struct vhost_mem_table {
    uint32_t nregions;
    uint32_t padding;
    struct vhost_mem_region regions[VHOST_MEMORY_BASELINE_NREGIONS];
} __attribute__((packed));
static_assert(sizeof(struct vhost_mem_table) == 8 + 8 * 32, "memory table");

struct vhost_mem_single {
    uint64_t padding;
    struct vhost_mem_region region;
} __attribute__((packed));
static_assert(sizeof(struct vhost_mem_single) == 40, "single region");

struct vhost_log {
    uint64_t mmap_size;
    uint64_t mmap_offset;
} __attribute__((packed));
static_assert(sizeof(struct vhost_log) == 16, "log");

struct vhost_config {
    uint32_t offset;
    uint32_t size;
    uint32_t flags;
    uint8_t region[GABI_VHOST_MAX_CONFIG_SIZE];
} __attribute__((packed));
#define VHOST_CONFIG_HDR_SIZE 12u
static_assert(sizeof(struct vhost_config) == VHOST_CONFIG_HDR_SIZE + 256, "config");

struct vhost_transfer_state {
    uint32_t direction; /* 0 save, 1 load */
    uint32_t phase;     /* 0 stopped */
} __attribute__((packed));
static_assert(sizeof(struct vhost_transfer_state) == 8, "transfer state");

/* kick/call/err u64: vring index in bits 0-7, bit 8 "no fd". */
#define VHOST_USER_VRING_IDX_MASK 0xffu
#define VHOST_USER_VRING_NOFD     0x100u

union vhost_user_payload {
    uint64_t u64;
    struct vhost_vring_state state;
    struct vhost_vring_addr addr;
    struct vhost_mem_table mem;
    struct vhost_mem_single mem_reg;
    struct vhost_log log;
    struct vhost_config config;
    struct vhost_transfer_state transfer;
    uint8_t raw[sizeof(struct vhost_config)];
};

#define VHOST_USER_MAX_PAYLOAD ((uint32_t)sizeof(union vhost_user_payload))

/* ---- the message table -------------------------------------------------------------- */

/* Reply policies. ACK: only a u64 ack, when NEED_REPLY is set and REPLY_ACK negotiated.
 * ALWAYS: the handler's reply payload is always sent. */
#define VU_ACK    0
#define VU_ALWAYS 1

/* Protocol feature a message needs, or NOPF. */
#define NOPF  -1
#define PF(x) GABI_PF_##x

/*
 * X(id, NAME, min size, max size, max fds, protocol feature, reply, handler)
 * A handler of NULL: a known request this library does not implement (refused).
 */
#define VHOST_USER_MESSAGES(X)                                                                     \
    X(1, GET_FEATURES, 0, 0, 0, NOPF, VU_ALWAYS, on_get_features)                                  \
    X(2, SET_FEATURES, 8, 8, 0, NOPF, VU_ACK, on_set_features)                                     \
    X(3, SET_OWNER, 0, 0, 0, NOPF, VU_ACK, on_set_owner)                                           \
    X(4, RESET_OWNER, 0, 8, 0, NOPF, VU_ACK, on_reset_owner)                                       \
    X(5, SET_MEM_TABLE, 8, sizeof(struct vhost_mem_table), 8, NOPF, VU_ACK, on_set_mem_table)      \
    X(6, SET_LOG_BASE, 16, 16, 1, PF(LOG_SHMFD), VU_ALWAYS, on_set_log_base)                       \
    X(7, SET_LOG_FD, 0, 8, 1, PF(LOG_SHMFD), VU_ACK, on_set_log_fd)                                \
    X(8, SET_VRING_NUM, 8, 8, 0, NOPF, VU_ACK, on_set_vring_num)                                   \
    X(9, SET_VRING_ADDR, 40, 40, 0, NOPF, VU_ACK, on_set_vring_addr)                               \
    X(10, SET_VRING_BASE, 8, 8, 0, NOPF, VU_ACK, on_set_vring_base)                                \
    X(11, GET_VRING_BASE, 8, 8, 0, NOPF, VU_ALWAYS, on_get_vring_base)                             \
    X(12, SET_VRING_KICK, 8, 8, 1, NOPF, VU_ACK, on_set_vring_kick)                                \
    X(13, SET_VRING_CALL, 8, 8, 1, NOPF, VU_ACK, on_set_vring_call)                                \
    X(14, SET_VRING_ERR, 8, 8, 1, NOPF, VU_ACK, on_set_vring_err)                                  \
    X(15, GET_PROTOCOL_FEATURES, 0, 0, 0, NOPF, VU_ALWAYS, on_get_protocol_features)               \
    X(16, SET_PROTOCOL_FEATURES, 8, 8, 0, NOPF, VU_ACK, on_set_protocol_features)                  \
    X(17, GET_QUEUE_NUM, 0, 0, 0, PF(MQ), VU_ALWAYS, on_get_queue_num)                             \
    X(18, SET_VRING_ENABLE, 8, 8, 0, NOPF, VU_ACK, on_set_vring_enable)                            \
    X(19, SEND_RARP, 8, 8, 0, PF(RARP), VU_ACK, on_send_rarp)                                      \
    X(20, NET_SET_MTU, 8, 8, 0, PF(NET_MTU), VU_ACK, on_net_set_mtu)                               \
    X(21, SET_BACKEND_REQ_FD, 0, 8, 1, PF(BACKEND_REQ), VU_ACK, on_set_backend_req_fd)             \
    X(22, IOTLB_MSG, 0, 0, 0, NOPF, VU_ALWAYS, NULL)                                               \
    X(23, SET_VRING_ENDIAN, 0, 0, 0, PF(CROSS_ENDIAN), VU_ACK, NULL)                               \
    X(24, GET_CONFIG, VHOST_CONFIG_HDR_SIZE, sizeof(struct vhost_config), 0, PF(CONFIG),           \
      VU_ALWAYS, on_get_config)                                                                    \
    X(25, SET_CONFIG, VHOST_CONFIG_HDR_SIZE, sizeof(struct vhost_config), 0, PF(CONFIG), VU_ACK,   \
      on_set_config)                                                                               \
    X(26, CREATE_CRYPTO_SESSION, 0, 0, 0, PF(CRYPTO_SESSION), VU_ALWAYS, NULL)                     \
    X(27, CLOSE_CRYPTO_SESSION, 0, 0, 0, PF(CRYPTO_SESSION), VU_ACK, NULL)                         \
    X(28, POSTCOPY_ADVISE, 0, 0, 0, PF(PAGEFAULT), VU_ALWAYS, NULL)                                \
    X(29, POSTCOPY_LISTEN, 0, 0, 0, PF(PAGEFAULT), VU_ACK, NULL)                                   \
    X(30, POSTCOPY_END, 0, 0, 0, PF(PAGEFAULT), VU_ALWAYS, NULL)                                   \
    X(31, GET_INFLIGHT_FD, 0, 0, 0, PF(INFLIGHT_SHMFD), VU_ALWAYS, NULL)                           \
    X(32, SET_INFLIGHT_FD, 0, 0, 0, PF(INFLIGHT_SHMFD), VU_ACK, NULL)                              \
    X(33, GPU_SET_SOCKET, 0, 0, 0, NOPF, VU_ACK, NULL)                                             \
    X(34, RESET_DEVICE, 0, 0, 0, PF(RESET_DEVICE), VU_ACK, on_reset_device)                        \
    X(35, VRING_KICK, 0, 0, 0, PF(INBAND_NOTIFICATIONS), VU_ACK, NULL)                             \
    X(36, GET_MAX_MEM_SLOTS, 0, 0, 0, PF(CONFIGURE_MEM_SLOTS), VU_ALWAYS, on_get_max_mem_slots)    \
    X(37, ADD_MEM_REG, 40, 40, 1, PF(CONFIGURE_MEM_SLOTS), VU_ACK, on_add_mem_reg)                 \
    X(38, REM_MEM_REG, 40, 40, 1, PF(CONFIGURE_MEM_SLOTS), VU_ACK, on_rem_mem_reg)                 \
    X(39, SET_STATUS, 8, 8, 0, PF(STATUS), VU_ACK, on_set_status)                                  \
    X(40, GET_STATUS, 0, 0, 0, PF(STATUS), VU_ALWAYS, on_get_status)                               \
    X(41, GET_SHARED_OBJECT, 0, 0, 0, PF(SHARED_OBJECT), VU_ALWAYS, NULL)                          \
    X(42, SET_DEVICE_STATE_FD, 8, 8, 1, PF(DEVICE_STATE), VU_ALWAYS, vhost_on_set_device_state_fd) \
    X(43, CHECK_DEVICE_STATE, 0, 0, 0, PF(DEVICE_STATE), VU_ALWAYS, vhost_on_check_device_state)   \
    X(44, GET_SHMEM_CONFIG, 0, 0, 0, NOPF, VU_ALWAYS, NULL)

enum vhost_user_request {
    VHOST_USER_NONE = 0,
#define X(id, name, ...) VHOST_USER_##name = id,
    VHOST_USER_MESSAGES(X)
#undef X
        VHOST_USER_MAX
};

/* A received message: header, payload, and the fds that came with it. A handler takes the
 * fds it keeps (setting the slot to -1); the dispatcher closes the rest. */
struct vhost_msg {
    struct vhost_user_hdr hdr;
    union vhost_user_payload p;
    int fds[GABI_VHOST_MAX_FDS];
    unsigned n_fds;
};

/* A row of the table as data (for checks and names). */
struct vhost_msg_info {
    const char *name;
    uint32_t min_size;
    uint32_t max_size;
    uint8_t max_fds;
    int8_t pf; /* NOPF or a protocol feature bit */
    uint8_t reply;
};

/* NULL for an unknown request code. */
const struct vhost_msg_info *vhost_msg_info(uint32_t request);
