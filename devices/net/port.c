/* SPDX-License-Identifier: MIT */
/*
 * One port: the lib/vhost callbacks of its back-end, and the data path. A guest's TX chains
 * are taken in bursts and each frame goes to its destination at once: written to the tap,
 * or copied into the RX chains of the peer port (or of this port, in loopback). RX delivery
 * handles mergeable buffers (num_buffers) and single-chain receive, and completes partial
 * checksums in software for a guest that did not negotiate GUEST_CSUM. Used entries are
 * published once per burst per vring.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <guestabi/util.h>
#include "devmain.h"
#include "net.h"

#define LOG_PORT(p, level, ...) gabi_log(level, (p)->path, __VA_ARGS__)

/* ---- lib/vhost callbacks ------------------------------------------------------------------ */

/* Whether this port waits for RX buffers (tap input and the generator do; frames from a
 * peer port are dropped when there are none). */
static bool rx_waits(const struct net_port *p)
{
    return p->fwd == FWD_TAP || p->fwd == FWD_GENERATE;
}

static int on_watch(struct gabi_vhost_backend *b, int fd, enum gabi_vhost_watch kind,
                    unsigned index, void *userdata)
{
    struct net_port *p = userdata;

    if (kind == GABI_VHOST_WATCH_SOCKET)
        return net_watch(p->net, fd, &p->sock_src, EPOLLIN);
    if (kind == GABI_VHOST_WATCH_STATE_READ || kind == GABI_VHOST_WATCH_STATE_WRITE)
        return net_watch(p->net, fd, &p->state_src,
                         kind == GABI_VHOST_WATCH_STATE_READ ? EPOLLIN : EPOLLOUT);
    /* polled, or an RX vring nobody waits on */
    if (p->net->busy_poll || (net_vring_is_rx(index) && !rx_waits(p)))
        return 0;
    return net_watch(p->net, fd, &p->vring_src[index], EPOLLIN);
}

static void on_unwatch(struct gabi_vhost_backend *b, int fd, void *userdata)
{
    struct net_port *p = userdata;

    net_unwatch(p->net, fd);
}

static void on_log(struct gabi_vhost_backend *b, enum gabi_log_level level, const char *msg,
                   void *userdata)
{
    gabi_log(level, "vhost", "%s", msg);
}

static int on_features(struct gabi_vhost_backend *b, uint64_t f, void *userdata)
{
    struct net_port *p = userdata;
    unsigned hdr_len =
        (f & ((1ull << GABI_F_VERSION_1) | (1ull << GABI_NET_F_MRG_RXBUF))) ? 12 : 10;
    bool guest_csum = f & (1ull << GABI_NET_F_GUEST_CSUM);
    int r;

    if (p->fwd == FWD_TAP) {
        r = net_tap_configure(&p->tap, hdr_len, guest_csum);
        if (r < 0) {
            LOG_PORT(p, GABI_LOG_ERR, "tap %s: cannot set header size %u / offloads: %s",
                     p->tap.name, hdr_len, strerror(-r));
            return r;
        }
    }
    p->hdr_len = hdr_len;
    p->mrg_rxbuf = f & (1ull << GABI_NET_F_MRG_RXBUF);
    p->guest_csum = guest_csum;
    p->host_csum = f & (1ull << GABI_NET_F_CSUM);
    return 0;
}

static void on_started(struct gabi_vhost_backend *b, unsigned index, void *userdata)
{
    struct net_port *p = userdata;

    if (!net_vring_is_rx(index)) {
        p->tx_active[p->n_tx_active++] = index;
        /* A migration's destination starts a vring the guest kept using: chains it posted (and
         * kicked the source for) wait, and with EVENT_IDX it kicks again only past the event
         * index the source left. Take them now, which also re-arms that index (an empty pop
         * does); otherwise the guest's transmit stalls until something else kicks. */
        net_port_tx(p, index);
    }

    /* no kicks where nobody waits for them: the guest saves the exits */
    if (p->net->busy_poll || (net_vring_is_rx(index) && !rx_waits(p)))
        gabi_vhost_vring_notify(gabi_vhost_backend_vring(b, index), false);
    else if (net_vring_is_rx(index) && p->fwd == FWD_TAP)
        net_port_tap_input(p); /* frames may be waiting for these buffers */
    if (net_vring_is_rx(index) && p->fwd == FWD_GENERATE)
        net_port_generate(p);
}

static void on_stopped(struct gabi_vhost_backend *b, unsigned index, void *userdata)
{
    struct net_port *p = userdata;

    for (unsigned i = 0; i < p->n_tx_active; i++) {
        if (p->tx_active[i] == index) {
            p->tx_active[i] = p->tx_active[--p->n_tx_active];
            break;
        }
    }
    p->tx_pending[index] = false;
}

static int on_set_mtu(struct gabi_vhost_backend *b, uint64_t mtu, void *userdata)
{
    struct net_port *p = userdata;

    if (p->fwd == FWD_TAP && net_tap_set_mtu(&p->tap, (unsigned)mtu) < 0)
        return -EINVAL;
    p->mtu = mtu;
    return 0;
}

static void tap_pause(struct net_port *p, bool pause);

static void on_enabled(struct gabi_vhost_backend *b, unsigned index, bool enabled, void *userdata)
{
    struct net_port *p = userdata;

    if (!enabled || !gabi_vhost_vring_ready(gabi_vhost_backend_vring(b, index)))
        return;
    /* chains the guest posted while the vring was stopped or disabled go now */
    if (!net_vring_is_rx(index))
        net_port_tx(p, index);
    else if (p->fwd == FWD_TAP)
        net_port_tap_input(p);
}

static void on_disconnected(struct gabi_vhost_backend *b, const char *reason, void *userdata)
{
    struct net_port *p = userdata;
    struct net_qstats t;

    p->hdr_len = 12;
    p->mrg_rxbuf = p->guest_csum = p->host_csum = false;
    p->mtu = 0;
    for (unsigned i = 0; i < gabi_vhost_backend_n_vrings(b); i++)
        p->tx_pending[i] = false;
    if (p->fwd == FWD_TAP)
        tap_pause(p, false); /* nobody to keep the host's frames for: they are dropped */
    net_port_totals(p, &t);
    LOG_PORT(p, GABI_LOG_INFO,
             "disconnected: %s (rx %" PRIu64 " tx %" PRIu64 " dropped %" PRIu64 "/%" PRIu64 ")",
             reason, t.rx_packets, t.tx_packets, t.rx_dropped, t.tx_dropped);
}

/* The library logs at debug level only: what an operator must see, the device says. */
static void on_broken(struct gabi_vhost_backend *b, unsigned index, const char *reason,
                      void *userdata)
{
    struct net_port *p = userdata;

    LOG_PORT(p, GABI_LOG_ERR, "vring %u broken: %s", index, reason);
}

static void on_state_finished(struct gabi_vhost_backend *b, enum gabi_vhost_state_direction dir,
                              enum gabi_vhost_state_outcome outcome, const struct gabi_error *err,
                              void *userdata)
{
    const struct net_port *p = userdata;

    devmain_log_state_finished(p->path, dir, outcome, err);
}

void net_port_totals(const struct net_port *p, struct net_qstats *ret)
{
    memset(ret, 0, sizeof(*ret));
    for (unsigned i = 0; i < p->n_q; i++) {
        ret->tx_packets += p->q[i].tx_packets;
        ret->tx_bytes += p->q[i].tx_bytes;
        ret->tx_dropped += p->q[i].tx_dropped;
        ret->rx_packets += p->q[i].rx_packets;
        ret->rx_bytes += p->q[i].rx_bytes;
        ret->rx_dropped += p->q[i].rx_dropped;
    }
}

void net_port_set_link(struct net_port *p, bool up)
{
    if (p->link_up == up)
        return;
    p->link_up = up;
    LOG_PORT(p, GABI_LOG_INFO, "link %s", up ? "up" : "down");
    if (up && p->fwd == FWD_TAP)
        net_port_tap_input(p);
}

const struct gabi_vhost_ops net_port_ops = {
    .watch = on_watch,
    .unwatch = on_unwatch,
    .disconnected = on_disconnected,
    .features_changed = on_features,
    .vring_started = on_started,
    .vring_stopped = on_stopped,
    .vring_enabled = on_enabled,
    .vring_broken = on_broken,
    .state_finished = on_state_finished,
    .set_mtu = on_set_mtu,
    .log = on_log,
};

/* ---- copying between scatter lists ------------------------------------------------------ */

/* A cursor over iovecs. */
struct cursor {
    const struct iovec *iov;
    unsigned n, i;
    size_t off;
};

static size_t cursor_copy(struct cursor *dst, struct cursor *src, size_t len)
{
    size_t done = 0;

    while (done < len && dst->i < dst->n && src->i < src->n) {
        size_t d = dst->iov[dst->i].iov_len - dst->off, s = src->iov[src->i].iov_len - src->off;
        size_t k = MIN(MIN(d, s), len - done);

        memcpy((uint8_t *)dst->iov[dst->i].iov_base + dst->off,
               (const uint8_t *)src->iov[src->i].iov_base + src->off, k);
        done += k;
        dst->off += k;
        src->off += k;
        if (dst->off == dst->iov[dst->i].iov_len) {
            dst->i++;
            dst->off = 0;
        }
        if (src->off == src->iov[src->i].iov_len) {
            src->i++;
            src->off = 0;
        }
    }
    return done;
}

/* ---- RX: frames into the guest --------------------------------------------------------------- */

struct gabi_vhost_vring *net_port_rx_vring(struct net_port *p, unsigned q)
{
    struct gabi_vhost_vring *vr = gabi_vhost_backend_vring(p->b, 2 * q);

    if (!vr || !gabi_vhost_vring_ready(vr) || !gabi_vhost_vring_enabled(vr))
        vr = gabi_vhost_backend_vring(p->b, 0);
    if (!gabi_vhost_vring_ready(vr) || !gabi_vhost_vring_enabled(vr))
        return NULL;
    return vr;
}

/* The header the guest receives: the sender's offload fields as far as this guest takes
 * them. Returns false when the frame must be completed in software first. */
static bool rx_header(const struct net_port *p, const struct gabi_virtio_net_hdr *in,
                      struct gabi_virtio_net_hdr *out)
{
    memset(out, 0, sizeof(*out));
    out->num_buffers = 1;
    if (!(in->flags & GABI_VIRTIO_NET_HDR_F_NEEDS_CSUM)) {
        /* checksum already verified by the host (tap): worth saying to a guest that asked */
        if (p->guest_csum)
            out->flags = in->flags & GABI_VIRTIO_NET_HDR_F_DATA_VALID;
        return true;
    }
    if (!p->guest_csum)
        return false;
    out->flags = GABI_VIRTIO_NET_HDR_F_NEEDS_CSUM;
    out->csum_start = in->csum_start;
    out->csum_offset = in->csum_offset;
    return true;
}

/* Copy n bytes. A small frame (up to a few cache lines) goes in overlapping 16-byte moves,
 * inline: a call into memcpy costs as much as the copy itself there. */
static inline void copy_frame(uint8_t *d, const uint8_t *s, size_t n)
{
    if (n > 128 || n < 16) {
        memcpy(d, s, n);
        return;
    }
    for (size_t i = 0; i + 16 < n; i += 16)
        memcpy(d + i, s + i, 16);
    memcpy(d + n - 16, s + n - 16, 16);
}

/* Put a receive header (len: 12 or 10 bytes) into the guest's buffer, storing only when the
 * buffer does not hold those bytes already. Drivers recycle their receive buffers and the
 * header nearly always reads the same (no offload, one buffer); a store, even of equal bytes,
 * takes the cache line from the driver's core, which then waits for it when it reads the
 * header (measured: the most expensive load of DPDK's virtio receive path, a third of its
 * time at 64 bytes), where a load leaves the line shared and costs only the back-end, which
 * has time to spare. The written length still covers the header (dirty logging and the
 * driver see no difference). */
static inline void put_header(uint8_t *d, const void *h, size_t len)
{
    if (likely(len == 12)) {
        if (memcmp(d, h, 12) != 0)
            memcpy(d, h, 12);
    } else if (memcmp(d, h, 10) != 0) {
        memcpy(d, h, 10);
    }
}

/* Write the header out, then the frame, across chains elems[0..n) (which have room for both,
 * the header in the first); written[k]: the bytes chain k got. */
static void rx_write(const struct net_port *p, const struct gabi_vhost_elem *elems, unsigned n,
                     const struct gabi_virtio_net_hdr *out, const struct iovec *frame,
                     unsigned n_frame, size_t len, uint32_t *written)
{
    const struct iovec *first = &elems[0].iov[elems[0].n_out];
    struct cursor src = {frame, n_frame, 0, 0};

    /* the usual case: one buffer takes header and frame */
    if (n == 1 && n_frame == 1 && elems[0].n_in && first->iov_len >= p->hdr_len + len) {
        uint8_t *d = first->iov_base;

        put_header(d, out, p->hdr_len);
        copy_frame(d + p->hdr_len, frame->iov_base, len);
        written[0] = (uint32_t)(p->hdr_len + len);
        return;
    }
    for (unsigned k = 0; k < n; k++) {
        struct cursor dst = {elems[k].iov + elems[k].n_out, elems[k].n_in, 0, 0};
        size_t done = 0;

        if (k == 0)
            done = gabi_vhost_elem_write(&elems[0], 0, out, p->hdr_len);
        if (dst.n && done) {
            /* skip what the header took */
            dst.off = done;
            while (dst.i < dst.n && dst.off >= dst.iov[dst.i].iov_len) {
                dst.off -= dst.iov[dst.i].iov_len;
                dst.i++;
            }
        }
        done += cursor_copy(&dst, &src, len);
        written[k] = (uint32_t)done;
    }
}

int net_port_rx(struct net_port *p, struct gabi_vhost_vring *vr,
                const struct gabi_virtio_net_hdr *hdr, const struct iovec *frame, unsigned n_frame,
                size_t len)
{
    struct gabi_vhost_elem *elems = p->net->rx_elems;
    uint32_t written[NET_MAX_RX_BUFS];
    struct gabi_virtio_net_hdr out;
    struct iovec linear;
    struct cursor src;
    size_t total = p->hdr_len + len, room = 0;
    unsigned n = 0;
    struct net_qstats *qs = &p->q[vr ? gabi_vhost_vring_index(vr) / 2 : 0];
    int r;

    if (!vr || !p->link_up) {
        qs->rx_dropped++;
        return vr ? -ENETDOWN : -ENOTCONN;
    }
    if (!rx_header(p, hdr, &out)) {
        /* the guest cannot take a partial checksum: complete it in a linear copy */
        struct cursor dst = {&linear, 1, 0, 0};

        linear = (struct iovec){p->net->frame, NET_MAX_FRAME};
        src = (struct cursor){frame, n_frame, 0, 0};
        if (len > NET_MAX_FRAME || cursor_copy(&dst, &src, len) != len ||
            net_csum_complete(p->net->frame, len, hdr->csum_start, hdr->csum_offset) < 0) {
            qs->rx_dropped++;
            return -EINVAL;
        }
        linear.iov_len = len;
        frame = &linear;
        n_frame = 1;
    }
    /* gather enough chains: one without mergeable buffers, as many as needed with them */
    while (room < total) {
        if (n == (p->mrg_rxbuf ? NET_MAX_RX_BUFS : 1u) ||
            (r = gabi_vhost_vring_pop(vr, &elems[n])) <= 0) {
            gabi_vhost_vring_unpop(vr, n);
            qs->rx_dropped++;
            return -ENOBUFS;
        }
        room += elems[n].in_len;
        n++;
        if (elems[0].in_len < p->hdr_len) { /* the header must fit the first buffer */
            gabi_vhost_vring_unpop(vr, n);
            qs->rx_dropped++;
            return -EINVAL;
        }
    }
    out.num_buffers = (uint16_t)n;
    rx_write(p, elems, n, &out, frame, n_frame, len, written);
    gabi_vhost_vring_push_burst(vr, elems, written, n);
    qs->rx_packets++;
    qs->rx_bytes += len;
    return 0;
}

/* One burst of generated frames into vr: how many frames; *ret_full when a whole burst of
 * chains was popped and used (there may be more). */
static unsigned generate_burst(struct net_port *p, struct gabi_vhost_vring *vr, bool *ret_full)
{
    struct gabi_vhost_elem *elems = p->net->rx_elems;
    uint32_t written[NET_BURST];
    const struct iovec frame = {p->gen_frame + NET_HDR_MAX, p->gen_len};
    struct net_qstats *qs = &p->q[gabi_vhost_vring_index(vr) / 2];
    const uint8_t *src;
    size_t total = p->hdr_len + p->gen_len;
    unsigned k = 0, frames = 0;
    int n;

    *ret_full = false;
    if (p->gen_hdr_len != p->hdr_len) {
        /* the header every frame gets (num_buffers 1, when it has the field) */
        struct gabi_virtio_net_hdr h = {.num_buffers = 1};

        memcpy(p->gen_frame + NET_HDR_MAX - p->hdr_len, &h, p->hdr_len);
        p->gen_hdr_len = p->hdr_len;
    }
    src = p->gen_frame + NET_HDR_MAX - p->hdr_len;
    n = gabi_vhost_vring_pop_burst(vr, elems, NET_BURST);
    if (n <= 0)
        return 0;
    while (k < (unsigned)n) {
        const struct gabi_vhost_elem *e = &elems[k];
        struct gabi_virtio_net_hdr out = {.num_buffers = 1};
        size_t room = 0;
        unsigned m = 0;

        if (likely(e->n_out == 0 && e->n_in && e->iov[0].iov_len >= total)) {
            uint8_t *d = e->iov[0].iov_base;

            put_header(d, src, p->hdr_len);
            copy_frame(d + p->hdr_len, src + p->hdr_len, p->gen_len);
            written[k++] = (uint32_t)total;
            frames++;
            continue;
        }
        /* several buffers (or one in pieces); without MRG_RXBUF the frame takes one chain */
        if (e->in_len < p->hdr_len)
            break; /* not even the header fits: the guest's buffers are unusable */
        while (room < total && k + m < (unsigned)n && (m == 0 || p->mrg_rxbuf))
            room += elems[k + m++].in_len;
        if (room < total)
            break; /* the rest comes with the next chains (or never, for too small a chain) */
        out.num_buffers = (uint16_t)m;
        rx_write(p, e, m, &out, &frame, 1, p->gen_len, &written[k]);
        k += m;
        frames++;
    }
    /* a whole burst used: there may be more. One that stopped at a chain it cannot use now
     * waits for the guest's next kick, never comes straight back to the same chains. */
    *ret_full = n == NET_BURST && k == (unsigned)n;
    gabi_vhost_vring_unpop(vr, (unsigned)n - k);
    gabi_vhost_vring_push_burst(vr, elems, written, k);
    qs->rx_packets += frames;
    qs->rx_bytes += frames * p->gen_len;
    return frames;
}

unsigned net_port_generate(struct net_port *p)
{
    unsigned n_vrings = gabi_vhost_backend_n_vrings(p->b), total = 0;

    p->gen_pending = false;
    for (unsigned i = 0; i < n_vrings; i += 2) {
        struct gabi_vhost_vring *vr = gabi_vhost_backend_vring(p->b, i);
        unsigned frames;
        bool full;

        /* link down: no frames (none to drop either) */
        if (!p->link_up || !gabi_vhost_vring_ready(vr) || !gabi_vhost_vring_enabled(vr))
            continue;
        frames = generate_burst(p, vr, &full);
        if (!p->net->busy_poll) {
            /* out of buffers: ask for the RX kick; buffers that came meanwhile: once more */
            if (!full && gabi_vhost_vring_notify(vr, true))
                frames += generate_burst(p, vr, &full);
            if (full) {
                /* we come back without a kick */
                gabi_vhost_vring_notify(vr, false);
                p->gen_pending = true;
                p->net->any_pending = true;
            }
        }
        if (frames)
            gabi_vhost_vring_flush(vr);
        total += frames;
    }
    return total;
}

void net_port_flush_rx(struct net_port *p)
{
    for (unsigned i = 0; i < gabi_vhost_backend_n_vrings(p->b); i += 2) {
        struct gabi_vhost_vring *vr = gabi_vhost_backend_vring(p->b, i);

        if (gabi_vhost_vring_ready(vr))
            gabi_vhost_vring_flush(vr);
    }
}

/* ---- TX: frames from the guest ------------------------------------------------------------- */

/* Check a TX chain's header and take the fields a receiver may need (flags, csum_start,
 * csum_offset; the others are zero); *len: the frame's length. */
static inline bool tx_check(const struct net_port *p, const struct gabi_vhost_elem *e,
                            struct gabi_virtio_net_hdr *hdr, size_t *len)
{
    uint8_t buf[NET_HDR_MAX];
    const uint8_t *h = buf;
    size_t l = (size_t)e->out_len - p->hdr_len;

    if (unlikely(e->out_len < p->hdr_len + 14u || l > NET_MAX_FRAME))
        return false;
    /* the header is in the first buffer, as every driver puts it */
    if (likely(e->iov[0].iov_len >= p->hdr_len))
        h = e->iov[0].iov_base;
    else if (gabi_vhost_elem_read(e, 0, buf, p->hdr_len) != p->hdr_len)
        return false;
    if (h[1] != GABI_VIRTIO_NET_HDR_GSO_NONE) /* gso_type: never offered */
        return false;
    *hdr = (struct gabi_virtio_net_hdr){
        .flags = h[0] & GABI_VIRTIO_NET_HDR_F_NEEDS_CSUM}; /* DATA_VALID is the device's
                                                            * word, not a sender's */
    if (hdr->flags) {
        if (!p->host_csum)
            return false;
        memcpy(&hdr->csum_start, h + 6, 2);
        memcpy(&hdr->csum_offset, h + 8, 2);
    }
    *len = l;
    return !p->mtu || l <= p->mtu + 18u; /* Ethernet header and a VLAN tag */
}

/* The frame behind the header of a checked TX chain, as iovecs. */
static unsigned tx_frame(const struct net_port *p, const struct gabi_vhost_elem *e,
                         struct iovec *frame)
{
    size_t skip = p->hdr_len;
    unsigned k = 0, n = 0;

    for (; k < e->n_out && skip >= e->iov[k].iov_len; k++)
        skip -= e->iov[k].iov_len;
    for (; k < e->n_out; k++) {
        frame[n].iov_base = (uint8_t *)e->iov[k].iov_base + skip;
        frame[n].iov_len = e->iov[k].iov_len - skip;
        skip = 0;
        n++;
    }
    return n;
}

/* The tap's vnet header size is the guest's; the header it gets is the one tx_check() took,
 * never the guest's buffer again (the guest could rewrite it after the check). */
static int tx_to_tap(struct net_port *p, const struct gabi_vhost_elem *e,
                     const struct gabi_virtio_net_hdr *hdr, size_t len)
{
    struct iovec v[1 + GABI_VHOST_ELEM_MAX_SEGS];
    unsigned n_frame;
    ssize_t n;

    v[0] = (struct iovec){(void *)hdr, p->hdr_len};
    n_frame = tx_frame(p, e, v + 1);
    do {
        n = writev(p->tap.fd, v, (int)(1 + n_frame));
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)(p->hdr_len + len) ? 0 : -EIO;
}

unsigned net_port_tx(struct net_port *p, unsigned index)
{
    struct gabi_vhost_vring *vr = gabi_vhost_backend_vring(p->b, index);
    struct net_port *dst = p->fwd == FWD_LOOPBACK ? p : p->fwd == FWD_PEER ? p->peer : NULL;
    struct gabi_vhost_elem *elems = p->net->tx_elems;
    struct net_qstats *qs = &p->q[index / 2];
    struct gabi_vhost_vring *rx;
    uint64_t bytes = 0;
    unsigned dropped = 0;
    bool delivered = false;
    int n;

    /* a disabled vring keeps its chains until it is enabled: a resume loses nothing */
    if (!vr || !gabi_vhost_vring_ready(vr) || !gabi_vhost_vring_enabled(vr))
        return 0;
    p->tx_pending[index] = false;
    n = gabi_vhost_vring_pop_burst(vr, elems, NET_BURST);
    if (n <= 0)
        return 0;
    if (n == NET_BURST) {
        p->tx_pending[index] = true;
        p->net->any_pending = true;
    }
    for (int i = 0; i < n; i++)
        bytes += elems[i].out_len > p->hdr_len ? elems[i].out_len - p->hdr_len : 0;
    if (!p->link_up) {
        dropped = (unsigned)n;
    } else if (!dst && p->fwd != FWD_TAP) {
        /* a sink: taken, checked, dropped */
        for (int i = 0; i < n; i++) {
            struct gabi_virtio_net_hdr hdr;
            size_t len;

            dropped += !tx_check(p, &elems[i], &hdr, &len);
        }
    } else {
        /* the same queue pair on the receiving side, or its first one */
        rx = dst ? net_port_rx_vring(dst, index / 2) : NULL;
        for (int i = 0; i < n; i++) {
            struct iovec frame[GABI_VHOST_ELEM_MAX_SEGS];
            struct gabi_virtio_net_hdr hdr;
            size_t len;

            if (!tx_check(p, &elems[i], &hdr, &len))
                dropped++;
            else if (dst)
                delivered |=
                    net_port_rx(dst, rx, &hdr, frame, tx_frame(p, &elems[i], frame), len) == 0;
            else if (tx_to_tap(p, &elems[i], &hdr, len) < 0)
                dropped++;
        }
    }
    qs->tx_packets += (unsigned)n;
    qs->tx_bytes += bytes;
    qs->tx_dropped += dropped;
    gabi_vhost_vring_push_burst(vr, elems, NULL, (unsigned)n);
    gabi_vhost_vring_flush(vr);
    if (delivered)
        net_port_flush_rx(dst);
    return (unsigned)n;
}

/* ---- tap input ---------------------------------------------------------------------------- */

static void tap_pause(struct net_port *p, bool pause)
{
    struct epoll_event ev = {.events = pause ? 0 : EPOLLIN, .data.ptr = &p->tap.src};

    if (p->tap_blocked == pause || p->net->busy_poll)
        return;
    p->tap_blocked = pause;
    epoll_ctl(p->net->epfd, EPOLL_CTL_MOD, p->tap.fd, &ev);
}

void net_port_tap_input(struct net_port *p)
{
    uint8_t *buf = p->net->frame;
    unsigned done = 0;

    while (done < NET_BURST) {
        struct gabi_vhost_vring *vr = net_port_rx_vring(p, 0);
        struct gabi_virtio_net_hdr hdr = {0};
        struct iovec frame;
        ssize_t n;

        if (!vr && gabi_vhost_backend_connected(p->b) && p->link_up) {
            /* a guest whose receive vring is stopped (suspended, or not started yet): the
             * frames wait in the tap for it, as they do when it has no buffers */
            tap_pause(p, true);
            break;
        }
        if (!vr || !p->link_up) {
            /* no guest (or no link) to take them: the host's frames are dropped */
            while (done++ < NET_BURST && read(p->tap.fd, buf, NET_HDR_MAX + NET_MAX_FRAME) > 0)
                p->q[0].rx_dropped++;
            break;
        }
        if (!gabi_vhost_vring_has_avail(vr)) {
            /* no buffers: frames wait in the tap until the guest posts some; its RX kick
             * resumes us (ask for it, then look again: buffers may have come meanwhile) */
            if (p->net->busy_poll || !gabi_vhost_vring_notify(vr, true)) {
                tap_pause(p, true);
                break;
            }
            continue;
        }
        tap_pause(p, false);
        do {
            n = read(p->tap.fd, buf, NET_HDR_MAX + NET_MAX_FRAME);
        } while (n < 0 && errno == EINTR);
        if (n <= 0)
            break;
        done++;
        if ((size_t)n < p->hdr_len + 14u) {
            p->q[0].rx_dropped++;
            continue;
        }
        memcpy(&hdr, buf, p->hdr_len);
        if (hdr.gso_type != GABI_VIRTIO_NET_HDR_GSO_NONE) {
            p->q[0].rx_dropped++;
            continue;
        }
        frame.iov_base = buf + p->hdr_len;
        frame.iov_len = (size_t)n - p->hdr_len;
        /* the frame is in the scratch buffer: linearised checksum work needs its own copy */
        if ((hdr.flags & GABI_VIRTIO_NET_HDR_F_NEEDS_CSUM) && !p->guest_csum) {
            if (net_csum_complete(frame.iov_base, frame.iov_len, hdr.csum_start, hdr.csum_offset) <
                0) {
                p->q[0].rx_dropped++;
                continue;
            }
            hdr.flags = 0;
        }
        net_port_rx(p, vr, &hdr, &frame, 1, frame.iov_len);
    }
    net_port_flush_rx(p);
}
