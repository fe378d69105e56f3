/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A back-end for tests: lib/vhost driven by its own epoll loop in a thread, with a small
 * loopback device (chains taken from TX vring 2i+1 are copied into RX vring 2i), so that our
 * front-end can talk to it over a real unix socket. Everything the test reads from the
 * back-end's side goes through the harness lock.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <guestabi/vhost.h>

struct harness {
    struct gabi_vhost_backend *b;
    pthread_t thread;
    bool running;
    int epfd;
    int stop_fd;
    char dir[64];
    char path[128];

    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* recorded by the device callbacks (under lock) */
    char log[16384];
    unsigned n_connected, n_disconnected;
    char last_disconnect[512];
    unsigned n_broken;
    char broken[512];
    uint64_t n_looped, n_dropped;
    uint8_t rarp_mac[6];
    unsigned n_rarp;
    uint64_t features_seen;
    unsigned n_started, n_stopped, n_resets;
    uint8_t config[64];
};

/* Every virtio-net feature and protocol feature lib/vhost implements: 2 pairs of 256. */
extern const struct gabi_vhost_mode harness_mode_all;
/* The catalog's upstream.guestabi-net.v1 and .v2, spelled out. */
extern const struct gabi_vhost_mode harness_mode_v1;
extern const struct gabi_vhost_mode harness_mode_v2;

/* Start a back-end in mode listening on a fresh socket in a temporary directory. */
int harness_start(struct harness *h, const struct gabi_vhost_mode *mode);
void harness_stop(struct harness *h);
/* Wait (up to 10 s) until n disconnects have been seen: 0, or -ETIMEDOUT. */
int harness_wait_disconnects(struct harness *h, unsigned n);
/* Wait (up to 10 s) until n broken vrings have been seen. */
int harness_wait_broken(struct harness *h, unsigned n);
/* Copy of the log / the last disconnect reason / broken reason (under the lock). */
void harness_copy(struct harness *h, const char *what, char *buf, size_t size);
/* Run fn(h, arg) on the back-end thread, between two dispatches, and wait for it. */
void harness_call(struct harness *h, void (*fn)(struct harness *h, void *arg), void *arg);

/* Open fds of this process (the back-end runs in it too). */
unsigned harness_count_fds(void);

/* A connected client, negotiated: features/pf are the wanted masks. */
struct gabi_vhost_client *harness_client(struct harness *h, uint64_t features, uint64_t pf);
