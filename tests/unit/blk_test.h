/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * guestabi-blk under test: the device in this process (its epoll loop in a thread, so the
 * unit suite's valgrind pass covers the data path) or the program as a child process, and a
 * virtio-blk guest driver for it built on lib/vhost's front-end, memfd guest memory and
 * split virtqueues.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "blk.h"
#include "vhost_guest.h"

/* The modes the product ships, from the built-in catalog (never spelled out here). */
#define tb_mode_v1 (*test_catalog_mode("upstream.guestabi-blk.v1"))
#define tb_mode_v2 (*test_catalog_mode("upstream.guestabi-blk.v2"))
/* upstream.guestabi-blk.v2 without DEVICE_STATE (what v2 is until lib/vhost has it): 4 queues
 * of 256, discard, write-zeroes, indirect descriptors, EVENT_IDX. */
extern const struct gabi_vhost_mode tb_mode_mq;
/* v1 plus VIRTIO_BLK_F_RO: a read-only device ABI. */
extern const struct gabi_vhost_mode tb_mode_ro;

#define TB_SECTOR 512u

/* ---- the device in this process ----------------------------------------------------------- */

struct tb_dev {
    struct blk k;
    pthread_t thread;
    bool running;
    char dir[64];
    char sock[128];
    char disk[128]; /* the disk file, "" for a RAM disk */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    void (*call_fn)(struct blk *k, void *arg);
    void *call_arg;
    bool call_done;
};

struct tb_disk_spec {
    bool ram;             /* else a file in the test directory */
    uint64_t size;        /* bytes */
    bool readonly;        /* file: created writable first, then opened read-only */
    const char *serial;   /* NULL: none */
    const char *use_file; /* an existing file instead of a new one (kept at stop) */
    const char *loads;    /* the one state version load takes (NULL: "1"); save writes "1" */
};

int tb_dev_start(struct tb_dev *d, const struct gabi_vhost_mode *mode,
                 const struct tb_disk_spec *spec);
void tb_dev_stop(struct tb_dev *d);
/* Run fn(k, arg) on the device's thread, between two events, and wait for it. */
void tb_dev_call(struct tb_dev *d, void (*fn)(struct blk *k, void *arg), void *arg);
/* The disk's bytes as the host sees them (RAM: through the device thread; file: pread). */
int tb_dev_peek(struct tb_dev *d, uint64_t off, void *buf, size_t len);
int tb_dev_poke(struct tb_dev *d, uint64_t off, const void *buf, size_t len);
struct blk_stats tb_dev_stats(struct tb_dev *d);
/* Number of allocated 512-byte blocks of the disk file (st_blocks), for punched holes. */
uint64_t tb_dev_file_blocks(struct tb_dev *d);

/* ---- the program as a child process --------------------------------------------------------- */

struct tb_proc {
    pid_t pid;
    char dir[64];
    char sock[128];
    char disk[128];
};

const char *tb_blk_binary(void);
/* Make a fresh directory for p (sock and disk paths in it, nothing started). */
int tb_proc_init(struct tb_proc *p);
/* Start guestabi-blk with args (NULL-terminated; "@S" and "@D" stand for p's socket and disk
 * paths) and wait (up to 20 s) until it is ready: 0, or -EIO (its output is in `out` when
 * given). */
int tb_proc_start(struct tb_proc *p, const char *const *args, char *out, size_t size);
/* SIGTERM and wait: the exit status (0 for a clean shutdown), or -errno. */
int tb_proc_stop(struct tb_proc *p);
/* What the running (or last) process printed so far, up to size bytes. */
void tb_proc_log(struct tb_proc *p, char *out, size_t size);
/* Remove p's directory (after the last stop). */
void tb_proc_cleanup(struct tb_proc *p);
/* Run guestabi-blk to completion with args ("@S", "@D" as above when p is given); its exit
 * status and up to size bytes of its stdout+stderr in out. */
int tb_proc_run(struct tb_proc *p, const char *const *args, char *out, size_t size);

/* ---- a virtio-blk guest driver ----------------------------------------------------------------
 */

#define TB_MAX_QUEUES 8
#define TB_MEM_SIZE   (32u << 20)
#define TB_DATA_SIZE  (8u << 20)

struct tb_guest {
    struct gabi_vhost_client *c;
    struct gabi_vhost_guestmem *gm;
    struct gabi_vhost_guestq *q[TB_MAX_QUEUES];
    int err_fd[TB_MAX_QUEUES];
    unsigned n_queues;
    uint16_t qsize;
    uint64_t features;
    uint64_t meta;                /* gpa: a 32-byte header+status slot per queue and head */
    uint64_t data;                /* gpa: TB_DATA_SIZE bytes for request data */
    uint64_t spare;               /* gpa: 1 MiB for tests' own tables */
    uint32_t base[TB_MAX_QUEUES]; /* where tb_suspend() stopped each vring */
};

/* Connect to path, negotiate (offered & features, all protocol features offered), share the
 * memory (ADD_MEM_REG where offered), start n_queues vrings of qsize. */
int tb_connect(struct tb_guest *g, const char *path, uint64_t features, unsigned n_queues,
               uint16_t qsize, unsigned qflags);
void tb_disconnect(struct tb_guest *g);
/* Stop every vring (GET_VRING_BASE): the device is suspended. */
int tb_suspend(struct tb_guest *g);
/* Start them again where they stopped. */
int tb_resume(struct tb_guest *g);
void *tb_ptr(struct tb_guest *g, uint64_t gpa, uint64_t len);

/* One request. data_off/len: its data in the guest's data area, split over nseg descriptors
 * (0 or 1: one). After tb_submit: status (0xff when the device wrote none) and used_len. */
struct tb_req {
    uint32_t type;
    uint64_t sector;
    uint64_t data_off;
    uint32_t len;
    unsigned nseg;
    bool indirect;
    uint8_t status;
    uint32_t used_len;
    int head;
};

/* Post n requests on queue q, publish them at once, kick, and wait (up to 10 s) for all of
 * them: 0, -ENOSPC, or -ETIMEDOUT. */
int tb_submit(struct tb_guest *g, unsigned q, struct tb_req *reqs, unsigned n);
/* A read or write of len bytes at sector through the data area (buf copied in or out): the
 * status, or -errno. */
int tb_rw(struct tb_guest *g, unsigned q, uint32_t type, uint64_t sector, void *buf, size_t len,
          unsigned nseg);
/* Any chain, posted as is: n_out readable buffers then n_in writable ones. Waits (up to
 * timeout_ms) for it to be used: 0 with *used_len, or -ETIMEDOUT. */
int tb_raw(struct tb_guest *g, unsigned q, const struct gabi_vhost_gbuf *bufs, unsigned n_out,
           unsigned n_in, bool indirect, uint32_t *used_len, int timeout_ms);
/* Wait (up to 10 s) for the err eventfd of queue q: 1 when signalled. */
int tb_wait_err(struct tb_guest *g, unsigned q);
/* Fill buf with a pattern derived from seed. */
void tb_pattern(void *buf, size_t len, uint32_t seed);
