/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * guestabi-blk: a vhost-user-blk back-end on lib/vhost serving a local disk: a file (or block
 * device) or a memfd RAM disk. disk.c is the storage (and the disk as device state: memory or
 * file extents), request.c the virtio-blk data path, device.c the lib/vhost callbacks, config
 * space and the epoll loop, main.c the program (options, catalog mode).
 *
 * Every popped chain is finished before the loop returns: no request is ever in flight when
 * the front-end stops a vring, changes the memory table or disconnects.
 */

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <guestabi/vhost_vring.h>

/* ---- virtio-blk (virtio 1.2, 5.2) --------------------------------------------------------- */

#define BLK_SECTOR                512u
#define BLK_SECTOR_SHIFT          9u

#define VIRTIO_BLK_T_IN           0u
#define VIRTIO_BLK_T_OUT          1u
#define VIRTIO_BLK_T_FLUSH        4u
#define VIRTIO_BLK_T_GET_ID       8u
#define VIRTIO_BLK_T_DISCARD      11u
#define VIRTIO_BLK_T_WRITE_ZEROES 13u

#define VIRTIO_BLK_S_OK           0u
#define VIRTIO_BLK_S_IOERR        1u
#define VIRTIO_BLK_S_UNSUPP       2u

#define VIRTIO_BLK_ID_BYTES       20u

/* Discard / write-zeroes range flags. */
#define VIRTIO_BLK_WZ_F_UNMAP 1u

struct blk_outhdr {
    uint32_t type;
    uint32_t ioprio;
    uint64_t sector;
};
static_assert(sizeof(struct blk_outhdr) == 16, "virtio_blk_outhdr");

struct blk_range {
    uint64_t sector;
    uint32_t num_sectors;
    uint32_t flags;
};
static_assert(sizeof(struct blk_range) == 16, "virtio_blk_discard_write_zeroes");

/* struct virtio_blk_config, up to the secure-erase fields (zoned ones are not offered). */
struct blk_config {
    uint64_t capacity; /* in 512-byte sectors */
    uint32_t size_max;
    uint32_t seg_max;
    uint16_t cylinders;
    uint8_t heads;
    uint8_t sectors;
    uint32_t blk_size;
    uint8_t physical_block_exp;
    uint8_t alignment_offset;
    uint16_t min_io_size;
    uint32_t opt_io_size;
    uint8_t wce;
    uint8_t unused;
    uint16_t num_queues;
    uint32_t max_discard_sectors;
    uint32_t max_discard_seg;
    uint32_t discard_sector_alignment;
    uint32_t max_write_zeroes_sectors;
    uint32_t max_write_zeroes_seg;
    uint8_t write_zeroes_may_unmap;
    uint8_t unused1[3];
    uint32_t max_secure_erase_sectors;
    uint32_t max_secure_erase_seg;
    uint32_t secure_erase_sector_alignment;
} __attribute__((packed));
static_assert(sizeof(struct blk_config) == 72, "virtio_blk_config");

/*
 * The config-space values guestabi-blk shows every guest, in every mode (part of the ABI: a
 * destination must show the same): segments per request, the logical block size, and the
 * discard / write-zeroes limits.
 *
 * SEG_MAX: lib/vhost takes chains of at most GABI_VHOST_ELEM_MAX_SEGS (64) segments; a
 * request is a header, data segments and a status byte.
 */
#define BLK_SEG_MAX           (GABI_VHOST_ELEM_MAX_SEGS - 2u)
#define BLK_BLOCK_SIZE        512u
#define BLK_MAX_DISCARD_SECT  4194303u /* 2 GiB - 512: as QEMU's block layer */
#define BLK_MAX_DISCARD_SEG   32u
#define BLK_DISCARD_ALIGNMENT 8u /* sectors: 4 KiB, the page / file-system block */

/* The virtio-blk feature bits guestabi-blk implements (the library adds the transport). RO is
 * added for --readonly only. */
#define BLK_DEVICE_FEATURES                                                                        \
    ((1ull << GABI_BLK_F_SEG_MAX) | (1ull << GABI_BLK_F_BLK_SIZE) | (1ull << GABI_BLK_F_FLUSH) |   \
     (1ull << GABI_BLK_F_MQ) | (1ull << GABI_BLK_F_DISCARD) | (1ull << GABI_BLK_F_WRITE_ZEROES))

#define BLK_BURST     64u /* chains per vring per pass */
#define BLK_MAX_IOV   GABI_VHOST_ELEM_MAX_SEGS
#define BLK_ZERO_SIZE (256u << 10) /* zero buffer for writing zeroes where punching fails */
#define BLK_PASS      4u           /* passes per vring before other work gets a turn */

/* ---- the disk (disk.c) --------------------------------------------------------------------- */

enum blk_disk_kind {
    BLK_DISK_NONE = 0,
    BLK_DISK_FILE, /* a regular file or a block device: preadv/pwritev */
    BLK_DISK_RAM,  /* a memfd, mapped: memcpy */
};

struct blk_disk {
    enum blk_disk_kind kind;
    int fd;        /* the file, or the memfd */
    uint8_t *mem;  /* RAM: the mapping of size bytes */
    uint64_t size; /* bytes, a multiple of 512 */
    bool readonly;
    bool is_blockdev;
    char *path; /* FILE: as given */
};

/* Open the file at path as the disk. size 0: it must exist, its size (rounded down to
 * sectors) is the disk's. Otherwise it is created if missing and grown to size (a multiple of
 * 512) if smaller; a larger file is refused (its tail would vanish from the guest's view).
 * -errno with the reason in why. */
int blk_disk_open_file(struct blk_disk *d, const char *path, uint64_t size, bool readonly,
                       char *why, size_t why_size);
/* A zero-filled memfd RAM disk of size bytes (a multiple of 512). */
int blk_disk_open_ram(struct blk_disk *d, uint64_t size, char *why, size_t why_size);
void blk_disk_close(struct blk_disk *d);

/* Data between the disk at byte offset `off` and iov (the range is inside the disk: the
 * caller checked). 0 or -errno. */
int blk_disk_read(struct blk_disk *d, uint64_t off, const struct iovec *iov, unsigned n_iov,
                  size_t len);
int blk_disk_write(struct blk_disk *d, uint64_t off, const struct iovec *iov, unsigned n_iov,
                   size_t len);
/* Make written data durable (fdatasync for files; nothing for RAM). */
int blk_disk_flush(struct blk_disk *d);
/* Deallocate [off, off+len): reads return zeroes afterwards (files: punched; RAM: pages
 * released, partial pages cleared). */
int blk_disk_discard(struct blk_disk *d, uint64_t off, uint64_t len);
/* Zero [off, off+len); unmap: deallocating is allowed. */
int blk_disk_write_zeroes(struct blk_disk *d, uint64_t off, uint64_t len, bool unmap);

/* The disk as a source or sink of device state: the extent holding bytes [off, off+max)
 * (one piece: the whole rest for both kinds). RAM: mem is set; FILE: fd and file_offset. */
struct blk_extent {
    void *mem;
    int fd;
    uint64_t file_offset;
    uint64_t size;
};
void blk_disk_extent(const struct blk_disk *d, uint64_t off, uint64_t max, struct blk_extent *ret);

/* ---- the device (device.c, request.c) ---------------------------------------------------- */

struct blk;

/* What an epoll event is about (epoll_data.ptr points at one). */
enum blk_source_kind {
    BLK_SRC_SOCKET,
    BLK_SRC_KICK,
    BLK_SRC_STATE,
    BLK_SRC_SIGNAL,
    BLK_SRC_WAKE,
    BLK_SRC_CONTROL, /* the control socket (control.c) */
};

struct blk_source {
    enum blk_source_kind kind;
    unsigned index; /* vring */
};

struct blk_stats {
    uint64_t reads, writes, flushes, get_ids, discards, write_zeroes;
    uint64_t bytes_read, bytes_written;
    uint64_t ioerr, unsupp;
};

/* The device-state type of the disk (the catalog's device-type rule of that name says which
 * versions are written and loaded). */
#define GABI_BLK_STATE_TYPE "guestabi-blk"

/* Whether the device loads this state version: 0, or -errno with a reason in why. */
typedef int (*blk_state_accept_fn)(const char *version, char *why, size_t why_size, void *userdata);

struct blk_options {
    const char *socket;                 /* listen here */
    const struct gabi_vhost_mode *mode; /* copied by lib/vhost */
    const char *serial;                 /* GET_ID: up to 20 bytes, NULL: none */
    /* Device state (modes with DEVICE_STATE): the version save writes (the catalog rule's
     * newest `writes`) and who decides what load takes (the rule's `loads`). NULL: none (a
     * DEVICE_STATE mode is then refused). */
    const char *state_version;
    blk_state_accept_fn state_accept;
    void *state_userdata;
};

struct blk {
    int epfd;
    bool stop;
    struct blk_disk disk; /* owned: closed by blk_fini() */
    struct gabi_vhost_backend *b;
    struct gabi_vhost_mode mode;
    char *socket;
    uint8_t serial[VIRTIO_BLK_ID_BYTES];
    uint8_t config[GABI_VHOST_MAX_CONFIG_SIZE];

    struct blk_source sock_src;
    struct blk_source *vring_src; /* one per vring */
    bool *pending;                /* per vring: work left after a pass */
    bool any_pending;

    /* from the negotiated features */
    uint64_t features;
    bool writeback; /* FLUSH negotiated: else every write is made durable before it completes */

    /* blk_wake() from any thread: on_wake(k) runs on the loop's thread, between events */
    int wake_fd;
    struct blk_source wake_src;
    void (*on_wake)(struct blk *k, void *userdata);
    void *wake_userdata;

    /* device state (state.c) */
    struct gabi_vhost_state_ops state_ops;
    char state_version[GABI_VHOST_STATE_VERSION_SIZE];
    blk_state_accept_fn state_accept;
    void *state_userdata;
    struct blk_source state_src;
    struct blk_disk scratch; /* a load's image until commit */
    char *scratch_path;      /* its name beside the disk file, until renamed */

    struct gabi_vhost_elem *elems; /* BLK_BURST scratch chains */
    struct blk_stats stats;

    struct devctl *control; /* --control: the stats socket, or NULL */
    struct blk_source control_src;
};

/* Set k up around an open disk (taken, even on failure): the back-end in opts->mode,
 * listening on opts->socket, with its own epoll fd. -errno with *reterr. */
int blk_init(struct blk *k, struct blk_disk *disk, const struct blk_options *opts,
             struct gabi_error *reterr);
/* Wait up to timeout_ms (-1: forever; 0 while work is pending) and handle what happened. */
int blk_run_once(struct blk *k, int timeout_ms);
void blk_fini(struct blk *k);
/* control.c: a control socket at path ("stats"): 0 or -errno with why. Closed by blk_fini(). */
int blk_control_open(struct blk *k, const char *path, char *why, size_t size);
/* Make the loop call k->on_wake (async-signal and thread safe). */
void blk_wake(struct blk *k);
/* Watch fd in k's loop for events (EPOLLIN, EPOLLOUT), tagging them with src. */
int blk_watch(struct blk *k, int fd, struct blk_source *src, uint32_t events);
void blk_unwatch(struct blk *k, int fd);

/* request.c: process vring `index` (a kick, or pending work). */
void blk_queue_process(struct blk *k, unsigned index);
/* The config space for the disk and mode (device.c calls it at init). */
void blk_config_fill(struct blk *k);

/* state.c: the disk as device state (k->state_ops, for gabi_vhost_backend_config.state). */
void blk_state_ops_init(struct blk *k, const char *version);
/* Drop a load's scratch disk, if any. */
void blk_state_fini(struct blk *k);
