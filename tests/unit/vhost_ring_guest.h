/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The guest of test_vhost_ring.c and test_vhost_packed.c: a harness back-end (the loopback)
 * with two queue pairs of 256, a guest driver's rings in two memory regions, and the helpers
 * both drive them with. Static inline: each test program uses what it needs.
 */

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <guestabi/util.h>
#include "test_vhost_harness.h"

#include "tap.h"

#define ALL      ~0ull
#define MEM_SIZE (4u << 20)

struct guest {
    struct harness h;
    struct gabi_vhost_client *c;
    struct gabi_vhost_guestmem *gm;
    struct gabi_vhost_guestq *q[4]; /* rx0 tx0 rx1 tx1 */
    int err_fd[4];
    uint64_t bufs; /* 256 KiB of buffers, page aligned */
};

/* A back-end in mode, a client asking for features, rings made with qflags (started at their
 * fresh base: pair 0, or both with start_all; VHOST_VRING_F_LOG and a dirty log with log). */
static inline int guest_setup(struct guest *g, const struct gabi_vhost_mode *mode,
                              uint64_t features, unsigned qflags, bool start_all, bool log)
{
    memset(g, 0, sizeof(*g));
    if (harness_start(&g->h, mode) < 0)
        return -1;
    g->c = harness_client(&g->h, features, ALL);
    if (!g->c || gabi_vhost_guestmem_new(MEM_SIZE, 2, &g->gm, NULL) < 0 ||
        gabi_vhost_client_set_mem_table(g->c, g->gm) < 0 ||
        (log && gabi_vhost_client_set_log(g->c, MEM_SIZE) < 0))
        return -1;
    for (unsigned i = 0; i < 4; i++) {
        g->err_fd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (gabi_vhost_guestq_new(g->gm, 256, qflags, &g->q[i]) < 0 ||
            gabi_vhost_client_set_vring_err(g->c, i, g->err_fd[i]) < 0)
            return -1;
        if ((start_all || i < 2) && gabi_vhost_client_start_vring(
                                        g->c, i, g->q[i], gabi_vhost_guestq_base(g->q[i]), log) < 0)
            return -1;
    }
    return gabi_vhost_guestmem_alloc(g->gm, 256 << 10, 4096, &g->bufs);
}

static inline void teardown(struct guest *g)
{
    gabi_vhost_client_free(g->c);
    if (g->h.b)
        harness_wait_disconnects(&g->h, 1);
    for (unsigned i = 0; i < 4; i++) {
        gabi_vhost_guestq_free(g->q[i]);
        if (g->err_fd[i] > 0)
            close(g->err_fd[i]);
    }
    gabi_vhost_guestmem_free(g->gm);
    harness_stop(&g->h);
}

static inline uint8_t *ptr(struct guest *g, uint64_t gpa, uint64_t len)
{
    return gabi_vhost_guestmem_ptr(g->gm, gpa, len);
}

/* Wait for one used entry on q (up to 10 s). */
static inline int reap(struct gabi_vhost_guestq *q, uint32_t *id, uint32_t *len)
{
    for (int i = 0; i < 1000; i++) {
        int r = gabi_vhost_guestq_get_used(q, id, len);

        if (r != 0)
            return r;
        if (gabi_vhost_guestq_wait(q, 10) < 0)
            return -EIO;
    }
    return -ETIMEDOUT;
}

/* Post rx chain, tx chain; expect the tx bytes to land in the rx chain. */
static inline void loop_one(struct guest *g, unsigned pair, const struct gabi_vhost_gbuf *tx,
                            unsigned n_tx, bool tx_indirect, const struct gabi_vhost_gbuf *rx,
                            unsigned n_rx, bool rx_indirect, const uint8_t *data, uint32_t size)
{
    struct gabi_vhost_guestq *rq = g->q[2 * pair], *tq = g->q[2 * pair + 1];
    uint8_t got[8192];
    uint32_t id, len, off = 0;
    int rh, th;

    for (unsigned k = 0; k < n_tx; k++) {
        memcpy(ptr(g, tx[k].gpa, tx[k].len), data + off, tx[k].len);
        off += tx[k].len;
    }
    rh = gabi_vhost_guestq_add(rq, rx, 0, n_rx, rx_indirect);
    th = gabi_vhost_guestq_add(tq, tx, n_tx, 0, tx_indirect);
    CHECK(rh >= 0 && th >= 0);
    gabi_vhost_guestq_kick(rq);
    gabi_vhost_guestq_kick(tq);
    CHECK_INT(reap(rq, &id, &len), 1);
    CHECK_INT(id, rh);
    CHECK_INT(len, size);
    off = 0;
    for (unsigned k = 0; k < n_rx && off < len; k++) {
        uint32_t n = MIN(rx[k].len, len - off);

        memcpy(got + off, ptr(g, rx[k].gpa, n), n);
        off += n;
    }
    CHECK(memcmp(got, data, size) == 0);
    CHECK_INT(reap(tq, &id, &len), 1);
    CHECK_INT(id, th);
    CHECK_INT(len, 0);
}

static inline void noop(struct harness *h, void *arg)
{
}

static inline bool readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, 0) == 1;
}

/* Vring 1 broke (up to 10 s) for reason: the device heard it, the log says it, the front-end
 * learns it through the err fd and the status byte (NEEDS_RESET). */
static inline void check_broken(struct guest *g, const char *reason)
{
    char buf[sizeof(g->h.log)];
    struct pollfd p = {.fd = g->err_fd[1], .events = POLLIN};
    uint8_t status = 0;

    CHECK_INT(harness_wait_broken(&g->h, 1), 0);
    harness_copy(&g->h, "broken", buf, sizeof(buf));
    CHECK_CONTAINS(buf, "vring 1: ");
    CHECK_CONTAINS(buf, reason);
    harness_copy(&g->h, "log", buf, sizeof(buf));
    CHECK_CONTAINS(buf, reason);
    /* the front-end learns it through the vring's err fd and the status byte */
    CHECK_INT(poll(&p, 1, 10000), 1);
    CHECK_INT(gabi_vhost_client_get_status(g->c, &status), 0);
    CHECK(status & GABI_VIRTIO_STATUS_NEEDS_RESET);
}
