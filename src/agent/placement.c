/* SPDX-License-Identifier: MIT */
/*
 * guestabid on OpenStack Placement: each sync of this host's cached hostcaps runs in a forked
 * child (lib/placement's libcurl calls block; the loop must not), whose one JSON answer comes
 * back through a pipe watched by the loop. See placement.h.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <guestabi/placement.h>

#include "agent.h"
#include "placement.h"
#include <guestabi/util.h>

struct agent_placement {
    char *url, *token;
    unsigned timeout_ms;

    /* the running sync */
    pid_t pid; /* 0: none */
    int pidfd; /* to kill it without mistaking a reused pid; -1 */
    int fd;    /* the read end of its pipe; -1 */
    char *buf; /* what it wrote so far */
    size_t len;
    bool killed; /* past the hard limit */
    uint64_t started_ms;
    const char *why;
    struct gabi_rpc_pending *current[PLACEMENT_MAX_WAITERS]; /* answered when it ends */
    size_t n_current;

    /* the next sync: wanted by a refresh or by requests that came while one ran */
    bool again;
    const char *again_why;
    struct gabi_rpc_pending *next[PLACEMENT_MAX_WAITERS];
    size_t n_next;

    /* after a failure: the next try (0: none) and how many failed in a row */
    uint64_t retry_at_ms;
    unsigned streak;

    /* the last outcome */
    json_t *last; /* the result or {"error": ...}, with time and duration; NULL before any */
    unsigned n_syncs, n_failed;
};

int agent_placement_new(const char *url, const char *token, unsigned timeout_ms,
                        struct agent_placement **ret)
{
    struct agent_placement *pl = calloc(1, sizeof(*pl));

    if (!pl)
        return -ENOMEM;
    pl->pidfd = pl->fd = -1;
    pl->timeout_ms = timeout_ms ? timeout_ms : PLACEMENT_DEFAULT_MS;
    if ((url && !(pl->url = strdup(url))) || (token && !(pl->token = strdup(token)))) {
        agent_placement_free(pl);
        return -ENOMEM;
    }
    *ret = pl;
    return 0;
}

static void child_close(struct agent_placement *pl)
{
    if (pl->fd >= 0)
        close(pl->fd); /* closing removes it from the epoll set */
    if (pl->pidfd >= 0)
        close(pl->pidfd);
    pl->fd = pl->pidfd = -1;
    free(pl->buf);
    pl->buf = NULL;
    pl->len = 0;
    pl->pid = 0;
    pl->killed = false;
}

struct agent_placement *agent_placement_free(struct agent_placement *pl)
{
    if (!pl)
        return NULL;
    if (pl->pid > 0) {
        if (pl->pidfd >= 0)
            pidfd_send_signal(pl->pidfd, SIGKILL, NULL, 0);
        /* reaped here or by ports_reap(): either way it is gone */
        while (waitpid(pl->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    child_close(pl);
    for (size_t i = 0; i < pl->n_current; i++)
        gabi_rpc_pending_free(pl->current[i]);
    for (size_t i = 0; i < pl->n_next; i++)
        gabi_rpc_pending_free(pl->next[i]);
    json_decref(pl->last);
    free(pl->url);
    free(pl->token);
    free(pl);
    return NULL;
}

/* ---- the child ------------------------------------------------------------------------------ */

static void write_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t k = write(fd, s, n);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return;
        s += k;
        n -= (size_t)k;
    }
}

/* Sync and write {"ok": true, ...} or {"ok": false, "errno", "reason"} to fd; never returns. */
static void __attribute__((noreturn))
child_run(const struct agent *a, const struct agent_placement *pl, int fd)
{
    struct gabi_placement_conn conn = {
        .url = pl->url, .token = pl->token, .timeout_ms = (long)pl->timeout_ms};
    struct gabi_placement_sync_result res = {0};
    struct gabi_placement_host *ph = NULL;
    struct gabi_placement *p = NULL;
    struct gabi_error err = {0};
    sigset_t none;
    json_t *doc;
    char *text;
    int r;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* the agent blocks SIGTERM for its signalfd */
    prctl(PR_SET_PDEATHSIG, SIGKILL);      /* never outlives the agent, as back-ends do */
    /* none of the agent's sockets, clients or database stay open because of the child */
    if (fd > 3)
        close_range(3, (unsigned)fd - 1, 0);
    close_range((unsigned)fd + 1, ~0u, 0);
    r = gabi_placement_host_from_hostcaps(a->cat, a->caps, &ph, &err);
    if (r >= 0)
        r = gabi_placement_new(&conn, &p, &err);
    if (r >= 0)
        r = gabi_placement_sync(p, ph, &res, &err);
    if (r < 0) {
        char msg[GABI_ERROR_WHERE_MAX + GABI_ERROR_MESSAGE_MAX + 8];

        doc = json_pack("{s:b, s:s, s:s}", "ok", 0, "errno", strerrorname_np(-r) ?: "EIO", "reason",
                        gabi_error_format(&err, msg, sizeof(msg)));
    } else {
        json_t *traits = json_array();

        for (size_t i = 0; i < ph->n_traits; i++)
            json_array_append_new(traits, json_string(ph->traits[i]));
        doc = json_pack("{s:b, s:s, s:s, s:b, s:I, s:o, s:I, s:I, s:I, s:b, s:I}", "ok", 1, "host",
                        ph->name, "provider", res.uuid, "created", res.created, "generation",
                        (json_int_t)res.generation, "traits", traits, "added",
                        (json_int_t)res.n_added, "removed", (json_int_t)res.n_removed, "kept",
                        (json_int_t)res.n_kept, "inventory_set", res.inventory_set, "conflicts",
                        (json_int_t)res.n_conflicts);
    }
    text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (text)
        write_all(fd, text, strlen(text));
    _exit(text ? 0 : 1);
}

/* ---- the loop's side ------------------------------------------------------------------------ */

static uint64_t hard_limit_ms(const struct agent_placement *pl)
{
    return (uint64_t)pl->timeout_ms * PLACEMENT_HARD_FACTOR;
}

static void answer_all(struct agent *a, struct gabi_rpc_pending **list, size_t *n,
                       const json_t *result, const struct gabi_error *err)
{
    for (size_t i = 0; i < *n; i++)
        gabi_rpc_pending_reply(a->rpc, list[i], result ? json_deep_copy(result) : NULL, err);
    *n = 0;
}

static void start(struct agent *a, const char *why)
{
    struct agent_placement *pl = a->placement;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = PLACEMENT_TOKEN};
    struct gabi_error err = {0};
    int fds[2];
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC) < 0) {
        gabi_error_set(&err, -errno, NULL, "pipe: %s", strerror(errno));
        goto fail;
    }
    pid = fork();
    if (pid < 0) {
        gabi_error_set(&err, -errno, NULL, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        goto fail;
    }
    if (pid == 0) {
        close(fds[0]);
        child_run(a, pl, fds[1]);
    }
    close(fds[1]);
    pl->pid = pid;
    pl->fd = fds[0];
    pl->pidfd = (int)pidfd_open(pid, 0); /* not reaped yet: it is ours */
    pl->started_ms = agent_now_ms();
    pl->why = why;
    pl->retry_at_ms = 0; /* this sync is the retry */
    fcntl(pl->fd, F_SETFL, O_NONBLOCK);
    if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, pl->fd, &ev) < 0) {
        gabi_error_set(&err, -errno, NULL, "epoll: %s", strerror(errno));
        if (pl->pidfd >= 0)
            pidfd_send_signal(pl->pidfd, SIGKILL, NULL, 0);
        child_close(pl);
        goto fail;
    }
    agent_log(GABI_LOG_DEBUG, "placement", "sync (%s) started: pid %d", why, (int)pid);
    return;
fail:
    agent_log(GABI_LOG_ERR, "placement", "cannot start a sync: %s", err.message);
    err.code = -EREMOTEIO;
    answer_all(a, pl->current, &pl->n_current, NULL, &err);
    pl->retry_at_ms = agent_now_ms() + PLACEMENT_RETRY_MIN_MS;
}

/* Start the next sync when one is wanted and none runs. */
static void maybe_start(struct agent *a)
{
    struct agent_placement *pl = a->placement;

    if (pl->pid || !pl->again)
        return;
    pl->again = false;
    memcpy(pl->current, pl->next, pl->n_next * sizeof(pl->next[0]));
    pl->n_current = pl->n_next;
    pl->n_next = 0;
    start(a, pl->again_why);
}

void agent_placement_trigger(struct agent *a, const char *why)
{
    struct agent_placement *pl = a->placement;

    if (!pl || !pl->url)
        return;
    if (!pl->again)
        pl->again_why = why;
    pl->again = true;
    maybe_start(a);
}

/* The child's answer is complete (EOF): record it, answer the waiters, tell subscribers. */
static void finish(struct agent *a)
{
    struct agent_placement *pl = a->placement;
    uint64_t took = agent_now_ms() - pl->started_ms;
    struct gabi_error err = {0};
    json_t *doc = NULL;
    json_error_t jerr;
    bool ok;

    if (pl->len)
        doc = json_loadb(pl->buf, pl->len, 0, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        if (pl->killed)
            doc = json_pack("{s:b, s:s, s:o}", "ok", 0, "errno", "ETIMEDOUT", "reason",
                            json_sprintf("the sync did not end within %llu ms (4 times "
                                         "--placement-timeout-ms) and was killed; its requests "
                                         "were answered, slowly: check Placement's load",
                                         (unsigned long long)hard_limit_ms(pl)));
        else
            doc = json_pack("{s:b, s:s, s:s}", "ok", 0, "errno", "ECHILD", "reason",
                            "the sync process ended without an answer");
    }
    while (waitpid(pl->pid, NULL, WNOHANG) < 0 && errno == EINTR)
        ; /* or ports_reap() reaps it */
    child_close(pl);
    if (!doc) {
        gabi_error_set(&err, -EREMOTEIO, "placement", "out of memory");
        answer_all(a, pl->current, &pl->n_current, NULL, &err);
        maybe_start(a);
        return;
    }
    ok = json_is_true(json_object_get(doc, "ok"));
    json_object_set_new(doc, "trigger", json_string(pl->why));
    json_object_set_new(doc, "time", json_integer((json_int_t)time(NULL)));
    json_object_set_new(doc, "duration_ms", json_integer((json_int_t)took));
    json_object_set_new(doc, "url", json_string(pl->url));
    pl->n_syncs++;
    json_decref(pl->last);
    pl->last = doc;
    if (ok) {
        agent_log(GABI_LOG_INFO, "placement",
                  "synced %s (%s) to %s in %llu ms: %lld added, %lld "
                  "removed",
                  json_string_value(json_object_get(doc, "host")), pl->why, pl->url,
                  (unsigned long long)took,
                  (long long)json_integer_value(json_object_get(doc, "added")),
                  (long long)json_integer_value(json_object_get(doc, "removed")));
        answer_all(a, pl->current, &pl->n_current, doc, NULL);
        agent_event(a, "placement.synced", json_deep_copy(doc));
        pl->streak = 0;
    } else {
        uint64_t backoff = PLACEMENT_RETRY_MIN_MS;

        for (unsigned i = 0; i < pl->streak && backoff < PLACEMENT_RETRY_MAX_MS; i++)
            backoff *= 2;
        pl->streak++;
        pl->retry_at_ms = agent_now_ms() + MIN(backoff, (uint64_t)PLACEMENT_RETRY_MAX_MS);
        pl->n_failed++;
        gabi_error_set(&err, -EREMOTEIO, "placement", "%s",
                       json_string_value(json_object_get(doc, "reason")) ?: "");
        agent_log(GABI_LOG_WARNING, "placement", "sync (%s) failed: %s; trying again in %llu ms",
                  pl->why, err.message, (unsigned long long)(pl->retry_at_ms - agent_now_ms()));
        answer_all(a, pl->current, &pl->n_current, NULL, &err);
        agent_event(a, "placement.failed", json_deep_copy(doc));
    }
    maybe_start(a);
}

void agent_placement_event(struct agent *a, uint32_t events)
{
    struct agent_placement *pl = a->placement;

    (void)events;
    if (!pl || pl->fd < 0)
        return;
    for (;;) {
        char chunk[16384];
        ssize_t k = read(pl->fd, chunk, sizeof(chunk));

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno == EAGAIN)
            return;
        if (k <= 0)
            break; /* EOF (or an error): the child is done */
        if (pl->len + (size_t)k > PLACEMENT_MAX_RESULT) {
            pl->len = 0; /* not an answer: treated as none */
            break;
        }
        char *b = realloc(pl->buf, pl->len + (size_t)k);
        if (!b)
            break;
        pl->buf = b;
        memcpy(pl->buf + pl->len, chunk, (size_t)k);
        pl->len += (size_t)k;
    }
    finish(a);
}

int agent_placement_timeout_ms(struct agent *a)
{
    struct agent_placement *pl = a->placement;
    uint64_t now = agent_now_ms(), due;

    if (!pl || (pl->pid && pl->killed) || (!pl->pid && !pl->retry_at_ms))
        return -1;
    due = pl->pid ? pl->started_ms + hard_limit_ms(pl) : pl->retry_at_ms;
    return due <= now ? 0 : (int)MIN(due - now, (uint64_t)INT32_MAX);
}

void agent_placement_tick(struct agent *a)
{
    struct agent_placement *pl = a->placement;

    if (pl && !pl->pid && pl->retry_at_ms && agent_now_ms() >= pl->retry_at_ms) {
        pl->retry_at_ms = 0;
        agent_placement_trigger(a, "retry");
        return;
    }
    if (!pl || !pl->pid || pl->killed || agent_now_ms() < pl->started_ms + hard_limit_ms(pl))
        return;
    agent_log(GABI_LOG_WARNING, "placement", "sync (%s) still running after %llu ms: killed",
              pl->why, (unsigned long long)hard_limit_ms(pl));
    pl->killed = true;
    if (pl->pidfd >= 0)
        pidfd_send_signal(pl->pidfd, SIGKILL, NULL, 0);
    else
        kill(pl->pid, SIGKILL); /* no pidfd (an old kernel): not reaped yet, since no EOF */
    /* its pipe reaches EOF now: finish() answers */
}

/* ---- the methods ---------------------------------------------------------------------------- */

int agent_m_placement_sync(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                           struct gabi_error *reterr, void *userdata)
{
    static const char *const keys[] = {NULL};
    struct agent *a = userdata;
    struct agent_placement *pl = a->placement;
    struct gabi_rpc_pending *pending;
    int r;

    (void)ret;
    if ((r = gabi_rpc_param_only(params, keys, reterr)) < 0)
        return r;
    if (!pl || !pl->url)
        return gabi_error_set(reterr, -EOPNOTSUPP, "placement",
                              "publishing to Placement is off: start guestabid with "
                              "--placement-url URL (or OS_PLACEMENT_ENDPOINT set)");
    if (pl->n_current + pl->n_next >= PLACEMENT_MAX_WAITERS)
        return gabi_error_set(reterr, -E2BIG, "placement",
                              "%u placement.sync requests wait already", PLACEMENT_MAX_WAITERS);
    pending = gabi_rpc_call_defer(call);
    if (!pending)
        return gabi_error_set(reterr, -EINVAL, "method",
                              "placement.sync answers when its sync ends: send it on its own, "
                              "not inside a batch");
    /* a sync that already runs may have read Placement before this request: wait for the next */
    pl->next[pl->n_next++] = pending;
    agent_placement_trigger(a, "request");
    return 0;
}

int agent_m_placement_status(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                             struct gabi_error *reterr, void *userdata)
{
    static const char *const keys[] = {NULL};
    struct agent *a = userdata;
    struct agent_placement *pl = a->placement;
    int r;

    (void)call;
    if ((r = gabi_rpc_param_only(params, keys, reterr)) < 0)
        return r;
    *ret = json_pack("{s:b, s:s?, s:I, s:I, s:b, s:I, s:I, s:O?}", "enabled", pl && pl->url, "url",
                     pl ? pl->url : NULL, "timeout_ms", (json_int_t)(pl ? pl->timeout_ms : 0),
                     "hard_limit_ms", (json_int_t)(pl ? hard_limit_ms(pl) : 0), "running",
                     pl && pl->pid, "syncs", (json_int_t)(pl ? pl->n_syncs : 0), "failed",
                     (json_int_t)(pl ? pl->n_failed : 0), "last", pl ? pl->last : NULL);
    if (*ret && pl && pl->pid)
        json_object_set_new(*ret, "running_ms",
                            json_integer((json_int_t)(agent_now_ms() - pl->started_ms)));
    if (*ret && pl && !pl->pid && pl->retry_at_ms) {
        uint64_t now = agent_now_ms();

        json_object_set_new(
            *ret, "retry_in_ms",
            json_integer((json_int_t)(pl->retry_at_ms > now ? pl->retry_at_ms - now : 0)));
    }
    return *ret ? 0 : gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
}
