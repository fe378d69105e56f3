/* SPDX-License-Identifier: MIT */
/*
 * A port's state across a migration (DEVICE_STATE, docs/guestabi-net.md "State"): what a
 * switch port of guestabi-net really holds beyond what the front-end sets up again on the
 * destination. That is its administrative link state, the MTU it forwards with, and its
 * per-queue-pair counters. It holds no MAC or VLAN filter table and no rx mode: it never
 * offers the control queue, whose commands QEMU handles itself for vhost-user-net (and
 * migrates in its own device state), and it forwards every frame (no learning).
 *
 * Version 1 of the payload, little-endian:
 *
 *   0   u32 flags          bit 0: link up; other bits 0 (a loader refuses ones it does not
 *                          know)
 *   4   u32 mtu            0 when the front-end never set one
 *   8   u32 n_queue_pairs  counters that follow (the source mode's queue pairs)
 *   12  u32 reserved       0
 *   16  n_queue_pairs x { u64 tx_packets, tx_bytes, tx_dropped, rx_packets, rx_bytes,
 *                         rx_dropped }
 *
 * The version is the catalog's: the program writes its rule's first `writes` entry and loads
 * what gabi_versions_accepts() says of `loads`. This file encodes and decodes version 1 only.
 */

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <guestabi/util.h>
#include "net.h"

#define FLAG_LINK_UP  0x1u
#define KNOWN_FLAGS   FLAG_LINK_UP
#define MAX_LOAD_SIZE (NET_STATE_V1_HEADER + NET_STATE_V1_QUEUE * GABI_VHOST_MAX_QUEUE_PAIRS)

static void put32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, 8);
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return le32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return le64toh(v);
}

static size_t v1_size(unsigned n_q)
{
    return NET_STATE_V1_HEADER + NET_STATE_V1_QUEUE * (size_t)n_q;
}

/* ---- save ------------------------------------------------------------------------------- */

static int save_begin(struct gabi_vhost_backend *b, uint64_t *ret_size, struct gabi_error *reterr,
                      void *userdata)
{
    struct net_port *p = userdata;
    size_t size = v1_size(p->n_q);
    uint8_t *buf = calloc(1, size);

    if (!buf)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    /* a snapshot: the port is suspended, and the buffer stays as it is until save_end */
    put32(buf, p->link_up ? FLAG_LINK_UP : 0);
    put32(buf + 4, (uint32_t)p->mtu);
    put32(buf + 8, p->n_q);
    for (unsigned i = 0; i < p->n_q; i++) {
        uint8_t *q = buf + NET_STATE_V1_HEADER + NET_STATE_V1_QUEUE * i;

        put64(q, p->q[i].tx_packets);
        put64(q + 8, p->q[i].tx_bytes);
        put64(q + 16, p->q[i].tx_dropped);
        put64(q + 24, p->q[i].rx_packets);
        put64(q + 32, p->q[i].rx_bytes);
        put64(q + 40, p->q[i].rx_dropped);
    }
    free(p->save_buf);
    p->save_buf = buf;
    *ret_size = size;
    return 0;
}

static int save_get(struct gabi_vhost_backend *b, uint64_t offset, size_t max, void *scratch,
                    size_t scratch_size, struct gabi_vhost_state_seg *ret,
                    struct gabi_error *reterr, void *userdata)
{
    struct net_port *p = userdata;

    /* copied, not vmspliced: the snapshot is freed at save_end, and a pipe may still refer to
     * vmspliced pages until the reader has taken them */
    *ret = (struct gabi_vhost_state_seg){
        .type = GABI_VHOST_STATE_SEG_COPY, .mem = p->save_buf + offset, .fd = -1, .size = max};
    return 0;
}

static void save_end(struct gabi_vhost_backend *b, int result, void *userdata)
{
    struct net_port *p = userdata;

    free(p->save_buf);
    p->save_buf = NULL;
}

/* ---- load -------------------------------------------------------------------------------- */

static void versions_text(const struct gabi_versions *vs, char *buf, size_t size)
{
    size_t len = 0;

    buf[0] = '\0';
    if (!vs->list) {
        snprintf(buf, size, "%s to %s", vs->minimum ? vs->minimum : "?",
                 vs->version ? vs->version : "?");
        return;
    }
    for (size_t i = 0; i < vs->n && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "", vs->list[i]);
}

static int load_accept(struct gabi_vhost_backend *b, const struct gabi_vhost_state_info *info,
                       struct gabi_error *reterr, void *userdata)
{
    struct net_port *p = userdata;
    char list[256];

    /* the catalog decides which versions load; this build can only decode version 1 */
    if (!gabi_versions_accepts(p->net->state_loads, info->state_version)) {
        versions_text(p->net->state_loads, list, sizeof(list));
        return gabi_error_set(reterr, -EPROTONOSUPPORT, NULL,
                              "guestabi-net loads versions %s (its catalog rule)", list);
    }
    if (strcmp(info->state_version, NET_STATE_VERSION) != 0)
        return gabi_error_set(reterr, -EPROTONOSUPPORT, NULL,
                              "the catalog says it loads version %s, but this guestabi-net only "
                              "decodes version " NET_STATE_VERSION,
                              info->state_version);
    return 0;
}

static int load_begin(struct gabi_vhost_backend *b, const struct gabi_vhost_state_info *info,
                      struct gabi_error *reterr, void *userdata)
{
    struct net_port *p = userdata;

    if (info->payload_size < NET_STATE_V1_HEADER)
        return gabi_error_set(reterr, -EBADMSG, NULL,
                              "%" PRIu64 " bytes are not a version 1 port state",
                              info->payload_size);
    free(p->load_buf);
    p->load_buf = malloc((size_t)info->payload_size);
    if (!p->load_buf)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    p->load_size = (size_t)info->payload_size;
    return 0;
}

static int load_write(struct gabi_vhost_backend *b, uint64_t offset, const void *buf, size_t size,
                      struct gabi_error *reterr, void *userdata)
{
    struct net_port *p = userdata;

    /* the reader hands the payload over in order and never beyond the declared size */
    memcpy(p->load_buf + offset, buf, size);
    return 0;
}

static int load_commit(struct gabi_vhost_backend *b, struct gabi_error *reterr, void *userdata)
{
    struct net_port *p = userdata;
    const uint8_t *s = p->load_buf;
    uint32_t flags = get32(s), mtu = get32(s + 4), n_q = get32(s + 8);
    uint64_t fe_mtu = gabi_vhost_backend_mtu(b);

    /* everything is checked before anything changes */
    if (flags & ~KNOWN_FLAGS)
        return gabi_error_set(reterr, -EBADMSG, NULL, "unknown port flags 0x%" PRIx32, flags);
    if (get32(s + 12) != 0)
        return gabi_error_set(reterr, -EBADMSG, NULL, "reserved field is not 0");
    if (n_q == 0 || n_q > GABI_VHOST_MAX_QUEUE_PAIRS || p->load_size != v1_size(n_q))
        return gabi_error_set(reterr, -EBADMSG, NULL,
                              "%zu bytes do not hold counters for %" PRIu32 " queue pairs",
                              p->load_size, n_q);
    if (n_q > p->n_q)
        return gabi_error_set(reterr, -ERANGE, NULL,
                              "the source port had %" PRIu32 " queue pairs, this one has %u (mode "
                              "%s)",
                              n_q, p->n_q, p->net->mode->name);
    if (mtu && (mtu < 68 || mtu > 65535))
        return gabi_error_set(reterr, -EBADMSG, NULL, "MTU %" PRIu32 " is out of range", mtu);
    if (mtu && fe_mtu && fe_mtu != mtu)
        return gabi_error_set(reterr, -EINVAL, NULL,
                              "the source port forwarded with MTU %" PRIu32
                              ", this one's front-end set %" PRIu64
                              ": the VMs are not configured alike",
                              mtu, fe_mtu);
    if (mtu && !fe_mtu && p->fwd == FWD_TAP && net_tap_set_mtu(&p->tap, mtu) < 0)
        return gabi_error_set(reterr, -EIO, NULL, "tap %s refuses MTU %" PRIu32, p->tap.name, mtu);

    memset(p->q, 0, sizeof(*p->q) * p->n_q);
    for (unsigned i = 0; i < n_q; i++) {
        const uint8_t *q = s + NET_STATE_V1_HEADER + NET_STATE_V1_QUEUE * i;

        p->q[i] = (struct net_qstats){
            .tx_packets = get64(q),
            .tx_bytes = get64(q + 8),
            .tx_dropped = get64(q + 16),
            .rx_packets = get64(q + 24),
            .rx_bytes = get64(q + 32),
            .rx_dropped = get64(q + 40),
        };
    }
    if (mtu)
        p->mtu = mtu;
    net_port_set_link(p, flags & FLAG_LINK_UP);
    free(p->load_buf);
    p->load_buf = NULL;
    gabi_log(GABI_LOG_INFO, p->path,
             "state loaded: link %s, MTU %" PRIu32 ", %" PRIu32 " queue pairs",
             p->link_up ? "up" : "down", mtu, n_q);
    return 0;
}

static void load_abort(struct gabi_vhost_backend *b, void *userdata)
{
    struct net_port *p = userdata;

    free(p->load_buf);
    p->load_buf = NULL;
}

static const struct gabi_vhost_state_ops template = {
    .device_type = NET_STATE_TYPE,
    .max_load_size = MAX_LOAD_SIZE,
    .save_begin = save_begin,
    .save_get = save_get,
    .save_end = save_end,
    .load_accept = load_accept,
    .load_begin = load_begin,
    .load_write = load_write,
    .load_commit = load_commit,
    .load_abort = load_abort,
};

int net_state_setup(struct net *n, const struct gabi_device_type *rule, char *why, size_t size)
{
    const char *writes;

    if (!rule) {
        snprintf(why, size,
                 "the catalog has no device type " NET_STATE_TYPE
                 " (the state versions it writes and loads)");
        return -ENOENT;
    }
    writes =
        rule->writes.list ? (rule->writes.n ? rule->writes.list[0] : NULL) : rule->writes.version;
    if (!writes || strcmp(writes, NET_STATE_VERSION) != 0) {
        snprintf(why, size,
                 "the catalog's " NET_STATE_TYPE " rule writes version %s; this guestabi-net "
                 "encodes version " NET_STATE_VERSION,
                 writes ? writes : "(none)");
        return -EPROTONOSUPPORT;
    }
    n->state_ops = template;
    n->state_ops.version = writes;
    n->state_loads = &rule->loads;
    return 0;
}
