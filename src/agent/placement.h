/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * guestabid publishes its host to OpenStack Placement (docs/placement.md, "The agent"): at
 * start, after every host.caps refresh and on placement.sync. lib/placement's client blocks,
 * so each sync runs in a forked child that syncs the cached hostcaps and writes its result as
 * one JSON document to a pipe the loop watches; one sync at a time (requests that arrive
 * meanwhile share the next one), each request bounded by the timeout and the child killed
 * after PLACEMENT_HARD_FACTOR times it. A failed sync is tried again after a back-off.
 */

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include <guestabi/rpc.h>

struct agent;

#define PLACEMENT_TOKEN        3u /* epoll token of the running sync's pipe */
#define PLACEMENT_DEFAULT_MS   30000u
#define PLACEMENT_HARD_FACTOR  4u         /* the child is killed after this many timeouts */
#define PLACEMENT_MAX_WAITERS  64u        /* placement.sync requests waiting at once */
#define PLACEMENT_RETRY_MIN_MS 1000u      /* a failed sync is tried again after this, */
#define PLACEMENT_RETRY_MAX_MS 300000u    /* doubling up to this */
#define PLACEMENT_MAX_RESULT   (1u << 20) /* bytes of one child's answer */

struct agent_placement;

/* url NULL: publishing is off (placement.sync answers why). The strings are copied. */
int agent_placement_new(const char *url, const char *token, unsigned timeout_ms,
                        struct agent_placement **ret);
/* Kills a running child and forgets waiting requests; call before the RPC server goes. */
struct agent_placement *agent_placement_free(struct agent_placement *pl);

/* Sync now, or once the running sync ends (why: "start", "refresh", "request"). */
void agent_placement_trigger(struct agent *a, const char *why);
void agent_placement_event(struct agent *a, uint32_t events);
int agent_placement_timeout_ms(struct agent *a); /* -1: nothing due */
void agent_placement_tick(struct agent *a);      /* the hard limit, a retry due */

int agent_m_placement_sync(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                           struct gabi_error *reterr, void *userdata);
int agent_m_placement_status(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                             struct gabi_error *reterr, void *userdata);
