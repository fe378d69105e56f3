/* SPDX-License-Identifier: MIT */
/*
 * The virtio-blk data path: chains are popped in bursts, each request is checked and served
 * at once (RAM: memcpy; file: one preadv/pwritev), and the burst's used entries are published
 * together with one used-index update and at most one interrupt. A write-through disk (the
 * guest did not negotiate FLUSH) is made durable once per burst, before the burst completes.
 *
 * What a request may look like is checked before anything is touched: a 16-byte header in
 * the device-readable part and a status byte at the end of the device-writable part; IN and
 * GET_ID data only writable, OUT / DISCARD / WRITE_ZEROES data only readable; whole sectors
 * inside the disk; at most SEG_MAX data segments; discard and write-zeroes ranges within the
 * config-space limits. Anything else fails with IOERR (malformed) or UNSUPP (a request type
 * or flag not offered or not negotiated). A chain without a writable byte for its status
 * cannot be answered at all: it breaks its vring. The header and range lists are copied out
 * of guest memory once; the guest changing them meanwhile changes nothing.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "blk.h"
#include <guestabi/util.h>

#define LOG_REQ(k, ...) gabi_log(GABI_LOG_WARNING, (k)->socket, __VA_ARGS__)

/* One request, as parsed from its chain. */
struct req {
    struct blk_outhdr hdr;
    struct iovec data[BLK_MAX_IOV]; /* the data part: readable or writable side */
    unsigned n_data;
    size_t data_len;
    size_t extra; /* bytes on the other side beyond header / status: must be 0 */
    bool no_header;
    uint8_t *status;
};

/* Segments [first, first+n) of e, skipping `skip` bytes at the front and `trim` at the end. */
static void take_iov(struct req *rq, const struct gabi_vhost_elem *e, unsigned first, unsigned n,
                     size_t skip, size_t trim)
{
    size_t total = 0;

    for (unsigned i = first; i < first + n; i++)
        total += e->iov[i].iov_len;
    total = total >= skip + trim ? total - skip - trim : 0;
    rq->n_data = 0;
    rq->data_len = total;
    for (unsigned i = first; i < first + n && total > 0; i++) {
        size_t len = e->iov[i].iov_len;
        uint8_t *base = e->iov[i].iov_base;

        if (skip >= len) {
            skip -= len;
            continue;
        }
        base += skip;
        len -= skip;
        skip = 0;
        len = MIN(len, total);
        rq->data[rq->n_data].iov_base = base;
        rq->data[rq->n_data].iov_len = len;
        rq->n_data++;
        total -= len;
    }
}

static bool is_write_type(uint32_t type)
{
    return type == VIRTIO_BLK_T_OUT || type == VIRTIO_BLK_T_DISCARD ||
           type == VIRTIO_BLK_T_WRITE_ZEROES;
}

/* Header and status of chain e: false when there is no byte for the status. */
static bool parse(const struct gabi_vhost_elem *e, struct req *rq)
{
    const struct iovec *last;

    memset(&rq->hdr, 0, sizeof(rq->hdr));
    rq->n_data = 0;
    rq->data_len = 0;
    rq->extra = 0;
    rq->no_header = false;
    if (e->in_len == 0)
        return false;
    last = &e->iov[e->n_out + e->n_in - 1];
    rq->status = (uint8_t *)last->iov_base + last->iov_len - 1;
    if (e->out_len < sizeof(rq->hdr)) {
        rq->no_header = true;
        return true;
    }
    gabi_vhost_elem_read(e, 0, &rq->hdr, sizeof(rq->hdr));
    if (is_write_type(rq->hdr.type)) {
        take_iov(rq, e, 0, e->n_out, sizeof(rq->hdr), 0);
        rq->extra = e->in_len - 1;
    } else {
        take_iov(rq, e, e->n_out, e->n_in, 0, 1);
        rq->extra = e->out_len - sizeof(rq->hdr);
    }
    return true;
}

/* Whether [sector, sector + n) is inside the disk. */
static bool range_ok(const struct blk *k, uint64_t sector, uint64_t n)
{
    uint64_t cap = k->disk.size >> BLK_SECTOR_SHIFT;

    return sector <= cap && n <= cap - sector;
}

static bool negotiated(const struct blk *k, unsigned bit)
{
    return k->features & (1ull << bit);
}

static uint8_t do_rw(struct blk *k, struct req *rq, bool write)
{
    uint64_t off;
    int r;

    if (rq->data_len % BLK_SECTOR || !range_ok(k, rq->hdr.sector, rq->data_len / BLK_SECTOR))
        return VIRTIO_BLK_S_IOERR;
    if (rq->data_len == 0)
        return VIRTIO_BLK_S_OK;
    off = rq->hdr.sector << BLK_SECTOR_SHIFT;
    if (write) {
        r = blk_disk_write(&k->disk, off, rq->data, rq->n_data, rq->data_len);
        k->stats.writes++;
        k->stats.bytes_written += rq->data_len;
    } else {
        r = blk_disk_read(&k->disk, off, rq->data, rq->n_data, rq->data_len);
        k->stats.reads++;
        k->stats.bytes_read += rq->data_len;
    }
    if (r < 0 && r != -EROFS)
        LOG_REQ(k, "%s of %zu bytes at sector %" PRIu64 ": %s", write ? "write" : "read",
                rq->data_len, rq->hdr.sector, strerror(-r));
    return r < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
}

static uint8_t do_get_id(struct blk *k, struct req *rq)
{
    size_t n = MIN(rq->data_len, (size_t)VIRTIO_BLK_ID_BYTES), done = 0;

    k->stats.get_ids++;
    for (unsigned i = 0; i < rq->n_data && done < n; i++) {
        size_t c = MIN(rq->data[i].iov_len, n - done);

        memcpy(rq->data[i].iov_base, k->serial + done, c);
        done += c;
    }
    return VIRTIO_BLK_S_OK;
}

/* DISCARD and WRITE_ZEROES: a list of ranges, all checked before any is applied. */
static uint8_t do_ranges(struct blk *k, struct req *rq, bool zeroes)
{
    struct blk_range ranges[BLK_MAX_DISCARD_SEG];
    unsigned n, got = 0;

    if (rq->data_len == 0 || rq->data_len % sizeof(struct blk_range))
        return VIRTIO_BLK_S_IOERR;
    if (rq->data_len / sizeof(struct blk_range) > BLK_MAX_DISCARD_SEG)
        return VIRTIO_BLK_S_UNSUPP;
    n = (unsigned)(rq->data_len / sizeof(struct blk_range));
    for (unsigned i = 0; i < rq->n_data; i++) {
        memcpy((uint8_t *)ranges + got, rq->data[i].iov_base, rq->data[i].iov_len);
        got += (unsigned)rq->data[i].iov_len;
    }
    for (unsigned i = 0; i < n; i++) {
        const struct blk_range *g = &ranges[i];

        if ((g->flags & ~VIRTIO_BLK_WZ_F_UNMAP) || (!zeroes && (g->flags & VIRTIO_BLK_WZ_F_UNMAP)))
            return VIRTIO_BLK_S_UNSUPP;
        if (g->num_sectors > BLK_MAX_DISCARD_SECT || !range_ok(k, g->sector, g->num_sectors))
            return VIRTIO_BLK_S_IOERR;
    }
    if (k->disk.readonly)
        return VIRTIO_BLK_S_IOERR;
    for (unsigned i = 0; i < n; i++) {
        uint64_t off = ranges[i].sector << BLK_SECTOR_SHIFT;
        uint64_t len = (uint64_t)ranges[i].num_sectors << BLK_SECTOR_SHIFT;
        int r = zeroes ? blk_disk_write_zeroes(&k->disk, off, len,
                                               ranges[i].flags & VIRTIO_BLK_WZ_F_UNMAP)
                       : blk_disk_discard(&k->disk, off, len);

        if (r < 0) {
            LOG_REQ(k, "%s of %" PRIu64 " bytes at sector %" PRIu64 ": %s",
                    zeroes ? "write-zeroes" : "discard", len, ranges[i].sector, strerror(-r));
            return VIRTIO_BLK_S_IOERR;
        }
    }
    if (zeroes)
        k->stats.write_zeroes++;
    else
        k->stats.discards++;
    return VIRTIO_BLK_S_OK;
}

static bool known_type(uint32_t type)
{
    return type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_OUT || type == VIRTIO_BLK_T_FLUSH ||
           type == VIRTIO_BLK_T_GET_ID || type == VIRTIO_BLK_T_DISCARD ||
           type == VIRTIO_BLK_T_WRITE_ZEROES;
}

static uint8_t serve(struct blk *k, struct req *rq)
{
    const struct blk_outhdr *h = &rq->hdr;

    if (rq->no_header)
        return VIRTIO_BLK_S_IOERR;
    if (!known_type(h->type))
        return VIRTIO_BLK_S_UNSUPP; /* whatever its layout */
    if (rq->extra)
        return VIRTIO_BLK_S_IOERR; /* data on the wrong side */
    if (rq->n_data > BLK_SEG_MAX)
        return VIRTIO_BLK_S_IOERR;
    switch (h->type) {
    case VIRTIO_BLK_T_IN:
        return do_rw(k, rq, false);
    case VIRTIO_BLK_T_OUT:
        if (k->disk.readonly)
            return VIRTIO_BLK_S_IOERR;
        return do_rw(k, rq, true);
    case VIRTIO_BLK_T_FLUSH:
        if (!negotiated(k, GABI_BLK_F_FLUSH))
            return VIRTIO_BLK_S_UNSUPP;
        if (rq->data_len)
            return VIRTIO_BLK_S_IOERR;
        k->stats.flushes++;
        return blk_disk_flush(&k->disk) < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
    case VIRTIO_BLK_T_GET_ID:
        return do_get_id(k, rq);
    case VIRTIO_BLK_T_DISCARD:
        if (!negotiated(k, GABI_BLK_F_DISCARD))
            return VIRTIO_BLK_S_UNSUPP;
        return do_ranges(k, rq, false);
    case VIRTIO_BLK_T_WRITE_ZEROES:
        if (!negotiated(k, GABI_BLK_F_WRITE_ZEROES))
            return VIRTIO_BLK_S_UNSUPP;
        return do_ranges(k, rq, true);
    }
    return VIRTIO_BLK_S_UNSUPP;
}

/* One burst: up to BLK_BURST chains served and published. Returns how many were popped. */
static unsigned burst(struct blk *k, struct gabi_vhost_vring *vr)
{
    uint8_t *written[BLK_BURST]; /* status bytes of writes awaiting durability */
    unsigned n = 0, n_written = 0;
    struct req rq;

    while (n < BLK_BURST) {
        struct gabi_vhost_elem *e = &k->elems[n];
        uint8_t st;

        if (gabi_vhost_vring_pop(vr, e) != 1)
            break;
        n++;
        if (!parse(e, &rq)) {
            gabi_vhost_vring_set_broken(vr, "virtio-blk request without a writable status byte");
            return n;
        }
        st = serve(k, &rq);
        if (st == VIRTIO_BLK_S_IOERR)
            k->stats.ioerr++;
        else if (st == VIRTIO_BLK_S_UNSUPP)
            k->stats.unsupp++;
        *rq.status = st;
        if (st == VIRTIO_BLK_S_OK && is_write_type(rq.hdr.type))
            written[n_written++] = rq.status;
    }
    /* write-through: durable before the guest hears of it */
    if (n_written && !k->writeback && blk_disk_flush(&k->disk) < 0) {
        for (unsigned i = 0; i < n_written; i++)
            *written[i] = VIRTIO_BLK_S_IOERR;
        k->stats.ioerr += n_written;
    }
    /* QEMU's rule for the used length: the whole device-writable part */
    for (unsigned i = 0; i < n; i++)
        gabi_vhost_vring_push(vr, &k->elems[i], k->elems[i].in_len);
    gabi_vhost_vring_flush(vr);
    return n;
}

void blk_queue_process(struct blk *k, unsigned index)
{
    struct gabi_vhost_vring *vr = gabi_vhost_backend_vring(k->b, index);

    k->pending[index] = false;
    if (!vr || !gabi_vhost_vring_ready(vr) || !gabi_vhost_vring_enabled(vr))
        return;
    /* no kicks while we are at it */
    gabi_vhost_vring_notify(vr, false);
    for (unsigned pass = 0; pass < BLK_PASS; pass++) {
        if (burst(k, vr) < BLK_BURST) {
            if (!gabi_vhost_vring_ready(vr))
                return;
            /* empty: ask for kicks again, unless chains arrived meanwhile */
            if (!gabi_vhost_vring_notify(vr, true))
                return;
        }
    }
    /* more work: come back after a look at everything else */
    k->pending[index] = true;
    k->any_pending = true;
}
