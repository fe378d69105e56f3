/* SPDX-License-Identifier: MIT */
#pragma once

/* failover.c: the pool of this host's VFs, reservations in SQLite, binds to vfio-pci. */

#include "agent.h"

#define FAILOVER_TTL_S     600u  /* a reservation never bound expires after (--failover-ttl-s) */
#define FAILOVER_SETTLE_MS 1000u /* a driver link must change within (--failover-settle-ms) */

/* Open (create) the failover_vfs table in STATE_DIR/guestabid.db and drop expired rows. */
int failover_open(struct agent *a, struct gabi_error *reterr);
void failover_close(struct agent *a);

/* This host's hostcaps with each failover VF's in_use from the reservations and vfio-pci, as
 * host.caps and abi.check give them. */
int failover_hostcaps(struct agent *a, struct gabi_hostcaps **ret, struct gabi_error *reterr);

int failover_reserve(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                     struct gabi_error *reterr, void *userdata);
int failover_bind(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                  struct gabi_error *reterr, void *userdata);
int failover_release(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                     struct gabi_error *reterr, void *userdata);
int failover_list(struct gabi_rpc_call *call, json_t *params, json_t **ret,
                  struct gabi_error *reterr, void *userdata);
