/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: guestabi-blk's data path against guest memory the fuzzer writes.
 *
 * Input: [flags][n_avail][guest memory from gpa 0 ...]
 *   flags bit 0: the file disk instead of the RAM disk
 *   n_avail: how many avail entries the guest publishes (mod 32)
 * The rest lands at guest-physical 0 of a 1 MiB memfd (zeroes after it): a split ring of 16
 * at 0x000 (descriptors), 0x100 (avail), 0x140 (used), and whatever the descriptors point at.
 * Each input stops vring 0, writes the memory, restarts the vring at the saved base and has
 * the device process it, as a kick would. Two devices (a 64 KiB RAM disk, a 64 KiB file)
 * serve every request type; nothing may crash or touch memory outside what was mapped.
 */

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "blk.h"
#include "vhost_guest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MEM_SIZE  (1u << 20)
#define QSIZE     16u
#define DESC_GPA  0x000u
#define AVAIL_GPA 0x100u
#define USED_GPA  0x140u
#define DISK_SIZE (64u << 10)

static const struct gabi_vhost_mode mode = {
    .name = "fuzz.guestabi-blk",
    .features = (1ull << GABI_BLK_F_SEG_MAX) | (1ull << GABI_BLK_F_BLK_SIZE) |
                (1ull << GABI_BLK_F_FLUSH) | (1ull << GABI_BLK_F_MQ) |
                (1ull << GABI_BLK_F_DISCARD) | (1ull << GABI_BLK_F_WRITE_ZEROES) |
                GABI_VHOST_TRANSPORT_FEATURES,
    .protocol_features = (1ull << GABI_PF_MQ) | (1ull << GABI_PF_REPLY_ACK) |
                         (1ull << GABI_PF_CONFIG) | (1ull << GABI_PF_LOG_SHMFD),
    .max_queue_pairs = 1,
    .max_queue_size = 256,
};

struct dev {
    struct blk k;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool call, done;
    struct gabi_vhost_client *c;
    struct gabi_vhost_guestmem *gm;
    uint8_t *mem;
    int kick_fd, call_fd;
    uint16_t base;
    bool ok;
};

static struct dev devs[2];

static void on_wake(struct blk *k, void *userdata)
{
    struct dev *d = userdata;

    pthread_mutex_lock(&d->lock);
    if (d->call && !d->done) {
        blk_queue_process(k, 0);
        d->done = true;
        pthread_cond_broadcast(&d->cond);
    }
    pthread_mutex_unlock(&d->lock);
}

static void *loop(void *arg)
{
    struct dev *d = arg;

    for (;;)
        blk_run_once(&d->k, -1);
    return NULL;
}

/* Process vring 0 on the device's thread, and wait for it. */
static void process(struct dev *d)
{
    pthread_mutex_lock(&d->lock);
    d->call = true;
    d->done = false;
    pthread_mutex_unlock(&d->lock);
    blk_wake(&d->k);
    pthread_mutex_lock(&d->lock);
    while (!d->done)
        pthread_cond_wait(&d->cond, &d->lock);
    d->call = false;
    pthread_mutex_unlock(&d->lock);
}

static int start_vring(struct dev *d)
{
    uint64_t uaddr = gabi_vhost_guestmem_uaddr(d->gm, 0);

    if (gabi_vhost_client_set_vring_num(d->c, 0, QSIZE) < 0 ||
        gabi_vhost_client_set_vring_base(d->c, 0, d->base) < 0 ||
        gabi_vhost_client_set_vring_addr(d->c, 0, 0, uaddr + DESC_GPA, uaddr + USED_GPA,
                                         uaddr + AVAIL_GPA, 0) < 0 ||
        gabi_vhost_client_set_vring_kick(d->c, 0, d->kick_fd) < 0 ||
        gabi_vhost_client_set_vring_call(d->c, 0, d->call_fd) < 0 ||
        gabi_vhost_client_set_vring_enable(d->c, 0, true) < 0)
        return -EIO;
    return 0;
}

static char dir[64];

/* The devices run until the process ends; their sockets and directory go with it. */
static void cleanup(void)
{
    char sock[128];

    for (int i = 0; i < 2; i++) {
        snprintf(sock, sizeof(sock), "%s/sock%d", dir, i);
        unlink(sock);
    }
    rmdir(dir);
}

static int setup(struct dev *d, bool file)
{
    char sock[128], path[128], why[256];
    struct blk_options o = {.mode = &mode, .serial = "fuzz"};
    struct blk_disk disk;
    struct gabi_error err = {0};

    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "/tmp/gabi-fuzz-blk-XXXXXX");
        if (!mkdtemp(dir))
            return -errno;
        atexit(cleanup);
    }
    snprintf(sock, sizeof(sock), "%s/sock%d", dir, file);
    snprintf(path, sizeof(path), "%s/disk", dir);
    unlink(path);
    if ((file ? blk_disk_open_file(&disk, path, DISK_SIZE, false, why, sizeof(why))
              : blk_disk_open_ram(&disk, DISK_SIZE, why, sizeof(why))) < 0)
        return -EIO;
    if (file)
        unlink(path); /* the open file is the disk */
    o.socket = sock;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    if (blk_init(&d->k, &disk, &o, &err) < 0)
        return -EIO;
    d->k.on_wake = on_wake;
    d->k.wake_userdata = d;
    if (pthread_create(&d->thread, NULL, loop, d) != 0)
        return -EIO;
    d->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    d->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (gabi_vhost_client_connect(sock, 10000, &d->c, &err) < 0 ||
        gabi_vhost_client_negotiate(d->c, ~0ull, ~0ull, NULL, NULL) < 0 ||
        gabi_vhost_guestmem_new(MEM_SIZE, 1, &d->gm, &err) < 0 ||
        gabi_vhost_client_set_mem_table(d->c, d->gm) < 0 || start_vring(d) < 0)
        return -EIO;
    d->mem = gabi_vhost_guestmem_ptr(d->gm, 0, MEM_SIZE);
    d->ok = true;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dev *d;
    uint32_t base = 0;
    uint16_t n;

    if (size < 2)
        return 0;
    d = &devs[data[0] & 1];
    if (!d->ok && setup(d, data[0] & 1) < 0) {
        fprintf(stderr, "fuzz_blk: set-up failed\n");
        abort();
    }
    n = data[1] % 32;
    data += 2;
    size -= 2;
    /* stop the vring (the device flushes and lets go), then rewrite its memory */
    if (gabi_vhost_client_get_vring_base(d->c, 0, &base) < 0)
        abort();
    d->base = (uint16_t)base;
    memset(d->mem, 0, MEM_SIZE);
    memcpy(d->mem, data, size < MEM_SIZE ? size : MEM_SIZE);
    /* the avail index: the base plus n, whatever the input wrote there */
    {
        uint16_t idx = (uint16_t)(d->base + n);

        memcpy(d->mem + AVAIL_GPA + 2, &idx, 2);
    }
    if (start_vring(d) < 0)
        abort();
    process(d);
    if (getenv("FUZZ_BLK_DEBUG")) {
        const struct blk_stats *st = &d->k.stats;
        const char *broken = gabi_vhost_vring_broken(gabi_vhost_backend_vring(d->k.b, 0));

        fprintf(stderr,
                "fuzz_blk: reads %llu writes %llu flushes %llu ids %llu discards %llu "
                "zeroes %llu ioerr %llu unsupp %llu%s%s\n",
                (unsigned long long)st->reads, (unsigned long long)st->writes,
                (unsigned long long)st->flushes, (unsigned long long)st->get_ids,
                (unsigned long long)st->discards, (unsigned long long)st->write_zeroes,
                (unsigned long long)st->ioerr, (unsigned long long)st->unsupp,
                broken ? "; broken: " : "", broken ? broken : "");
    }
    return 0;
}
