/* SPDX-License-Identifier: MIT */
/* What every guestabi back-end program shares (devmain.h). */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <guestabi/util.h>
#include "devmain.h"

#define LOG_BURST   50 /* lines a peer may cause at once, then ... */
#define LOG_PER_SEC 10 /* ... this many per second */

/* ---- modes -------------------------------------------------------------------------------- */

bool devmain_mode_runnable(const struct devmain *d, const struct gabi_catalog *cat,
                           const struct gabi_mode *m, char *why, size_t size)
{
    uint64_t extra = m->features & ~(GABI_VHOST_TRANSPORT_FEATURES | d->features);
    uint64_t pextra = m->protocol_features & ~GABI_VHOST_PROTOCOL_FEATURES;

    if (m->cls != d->cls) {
        snprintf(why, size, "is a %s mode", gabi_class_name(m->cls));
        return false;
    }
    if (extra) {
        const char *f = gabi_feature_name(d->cls, (unsigned)__builtin_ctzll(extra));

        snprintf(why, size, "needs %s, which %s does not implement", f ? f : "?", d->prog);
        return false;
    }
    if (pextra) {
        const char *f = gabi_protocol_feature_name((unsigned)__builtin_ctzll(pextra));

        snprintf(why, size, "needs %s, which %s does not implement", f ? f : "?", d->prog);
        return false;
    }
    if (m->max_queue_pairs == 0 || m->max_queue_pairs > GABI_VHOST_MAX_QUEUE_PAIRS ||
        m->max_queue_size == 0 || m->max_queue_size > GABI_VHOST_MAX_QUEUE_SIZE ||
        (m->max_queue_size & (m->max_queue_size - 1))) {
        snprintf(why, size, "has %" PRIu32 " %s of %" PRIu32 " (at most %u of %u)",
                 m->max_queue_pairs, d->queues_word, m->max_queue_size, GABI_VHOST_MAX_QUEUE_PAIRS,
                 GABI_VHOST_MAX_QUEUE_SIZE);
        return false;
    }
    return !d->runnable || d->runnable(cat, m, why, size, d->userdata);
}

void devmain_list_modes(const struct devmain *d, const struct gabi_catalog *cat)
{
    for (size_t i = 0; i < gabi_catalog_n_modes(cat); i++) {
        const struct gabi_mode *m = gabi_catalog_mode(cat, i);
        char why[256];

        /* queues_word is plural ("queue pairs", "queues"): one is written without its 's' */
        if (devmain_mode_runnable(d, cat, m, why, sizeof(why)))
            printf("%s\t%" PRIu32 " %.*s of %" PRIu32 "\t%s\n", m->name, m->max_queue_pairs,
                   (int)strlen(d->queues_word) - (m->max_queue_pairs == 1), d->queues_word,
                   m->max_queue_size, m->description ? m->description : "");
    }
}

int devmain_pick_mode(const struct devmain *d, const struct gabi_catalog *cat, const char *name,
                      struct gabi_vhost_mode *ret)
{
    const struct gabi_mode *m = NULL;
    struct gabi_error err = {0};
    char why[256];

    if (name) {
        if (gabi_catalog_require_mode(cat, name, &m, &err) < 0) {
            fprintf(stderr, "%s: %s\n", d->prog, err.message);
            return -ENOENT;
        }
        if (!devmain_mode_runnable(d, cat, m, why, sizeof(why))) {
            fprintf(stderr, "%s: mode %s %s\n", d->prog, m->name, why);
            return -EOPNOTSUPP;
        }
    } else {
        /* the catalog lists modes newest first within a class */
        for (size_t i = 0; i < gabi_catalog_n_modes(cat) && !m; i++)
            if (devmain_mode_runnable(d, cat, gabi_catalog_mode(cat, i), why, sizeof(why)))
                m = gabi_catalog_mode(cat, i);
        if (!m) {
            fprintf(stderr, "%s: the catalog has no %s mode it can run\n", d->prog,
                    gabi_class_name(d->cls));
            return -ENOENT;
        }
    }
    *ret = (struct gabi_vhost_mode){
        .name = m->name,
        .features = m->features,
        .protocol_features = m->protocol_features,
        .max_queue_pairs = m->max_queue_pairs,
        .max_queue_size = m->max_queue_size,
    };
    return 0;
}

/* ---- logging, rate-limited ---------------------------------------------------------------- */

static struct {
    double tokens;
    struct timespec last;
    unsigned suppressed;
} rate = {.tokens = LOG_BURST};

void devmain_log_ratelimited(enum gabi_log_level level, const char *module, const char *msg,
                             void *userdata)
{
    const char *prog = userdata;
    struct timespec now;
    double dt;

    clock_gettime(CLOCK_MONOTONIC, &now);
    dt = (double)(now.tv_sec - rate.last.tv_sec) + (now.tv_nsec - rate.last.tv_nsec) / 1e9;
    rate.last = now;
    rate.tokens = MIN((double)LOG_BURST, rate.tokens + dt * LOG_PER_SEC);
    if (level > GABI_LOG_ERR && rate.tokens < 1) {
        rate.suppressed++;
        return;
    }
    rate.tokens -= 1;
    if (rate.suppressed) {
        fprintf(stderr, "%s: %u log lines suppressed\n", prog, rate.suppressed);
        rate.suppressed = 0;
    }
    gabi_log_stderr(level, module, msg, NULL);
}

void devmain_init(const char *prog)
{
    struct gabi_error err = {0};

    gabi_log_set_handler(devmain_log_ratelimited, (void *)prog);
    gabi_log_set_max_level(GABI_LOG_INFO);
    if (gabi_vhost_guard_sigbus(&err) < 0)
        fprintf(stderr, "%s: %s: %s (running without it)\n", prog, err.where, err.message);
}

void devmain_log_state_finished(const char *prefix, enum gabi_vhost_state_direction dir,
                                enum gabi_vhost_state_outcome outcome, const struct gabi_error *err)
{
    const char *what = dir == GABI_VHOST_STATE_SAVE ? "save" : "load";

    if (outcome == GABI_VHOST_STATE_SUCCEEDED)
        gabi_log(GABI_LOG_INFO, prefix, "device state %s succeeded", what);
    else
        gabi_log(GABI_LOG_WARNING, prefix, "device state %s failed (%s): %s", what,
                 gabi_vhost_state_outcome_name(outcome), err->message);
}
