/* SPDX-License-Identifier: MIT */
/*
 * What every guestabi back-end program shares: choosing its compat mode from the catalog
 * (the modes this device can run, --list-modes, --mode NAME or the newest) and a log that a
 * misbehaving peer cannot flood.
 */
#ifndef GABI_DEVMAIN_H
#define GABI_DEVMAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <guestabi/abi.h>
#include <guestabi/log.h>
#include <guestabi/vhost_backend.h>

/* One back-end program, as far as its modes go. */
struct devmain {
    const char *prog;           /* "guestabi-net": the prefix of its messages */
    enum gabi_device_class cls; /* the device class of the modes it runs */
    uint64_t features;          /* device features it implements (transport ones are implied) */
    const char *queues_word;    /* "queue pairs" (net) or "queues" (blk) */
    /* The device's own conditions on a mode (after the class, the features, the protocol
     * features and the queue bounds were found fine): NULL, or false with `why` filled in
     * ("needs ...", "has ..."; printed after "mode NAME "). */
    bool (*runnable)(const struct gabi_catalog *cat, const struct gabi_mode *m, char *why,
                     size_t size, void *userdata);
    void *userdata;
};

/* Whether the program (lib/vhost and the device) implements everything mode `m` offers. */
bool devmain_mode_runnable(const struct devmain *d, const struct gabi_catalog *cat,
                           const struct gabi_mode *m, char *why, size_t size);
/* Prints the modes it can run, newest first: "NAME\tN <queues_word> of SIZE\tDESCRIPTION". */
void devmain_list_modes(const struct devmain *d, const struct gabi_catalog *cat);
/* The mode named `name`, or the newest runnable one when `name` is NULL; on failure the reason
 * is printed on stderr and a negative errno returned. */
int devmain_pick_mode(const struct devmain *d, const struct gabi_catalog *cat, const char *name,
                      struct gabi_vhost_mode *ret);

/* A gabi_log handler (userdata: the program's name) that passes errors always and other lines
 * at up to 10 a second after a burst of 50, then says how many it suppressed. */
void devmain_log_ratelimited(enum gabi_log_level level, const char *module, const char *msg,
                             void *userdata);
/* What a back-end program does first: its log through devmain_log_ratelimited at INFO, and the
 * SIGBUS guard (gabi_vhost_guard_sigbus) so that a front-end shrinking a mapped file breaks
 * queues instead of killing the process. */
void devmain_init(const char *prog);
/* Logs how a device-state transfer ended, for the operator: INFO when it succeeded, WARNING
 * with the reason otherwise (a gabi_vhost_ops.state_finished body; prefix: the socket). */
void devmain_log_state_finished(const char *prefix, enum gabi_vhost_state_direction dir,
                                enum gabi_vhost_state_outcome outcome,
                                const struct gabi_error *err);

#endif
