/* SPDX-License-Identifier: MIT */
/*
 * The disk: a file or block device read and written with preadv/pwritev, or a memfd RAM disk
 * read and written with memcpy (no system call per request). Discard and write-zeroes punch
 * holes or zero ranges where the file system can, and write zeroes where it cannot, so that
 * a discarded or zeroed range always reads back as zeroes.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk.h"
#include <guestabi/util.h>

#define RAM_PUNCH_MIN (64u << 10) /* smaller RAM ranges are cleared with memset */
#define PAGE          4096u

static void disk_reset(struct blk_disk *d)
{
    memset(d, 0, sizeof(*d));
    d->fd = -1;
}

int blk_disk_open_file(struct blk_disk *d, const char *path, uint64_t size, bool readonly,
                       char *why, size_t why_size)
{
    int flags = (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    struct stat st;
    uint64_t have;

    disk_reset(d);
    if (size % BLK_SECTOR) {
        snprintf(why, why_size, "size %" PRIu64 " is not a multiple of %u", size, BLK_SECTOR);
        return -EINVAL;
    }
    if (size && !readonly)
        flags |= O_CREAT;
    d->fd = open(path, flags, 0600);
    if (d->fd < 0) {
        int r = -errno;

        snprintf(why, why_size, "%s: %s%s", path, strerror(errno),
                 errno == ENOENT && !size ? " (give --size to create it)" : "");
        return r;
    }
    /* one writer per disk: two back-ends on one file would corrupt it */
    if (flock(d->fd, (readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
        int r = -errno;

        snprintf(why, why_size, "%s: %s", path,
                 errno == EWOULDBLOCK ? "in use by another process" : strerror(errno));
        blk_disk_close(d);
        return r == -EWOULDBLOCK ? -EBUSY : r;
    }
    if (fstat(d->fd, &st) < 0)
        goto errno_fail;
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(d->fd, BLKGETSIZE64, &have) < 0)
            goto errno_fail;
        d->is_blockdev = true;
        if (size && size != have) {
            snprintf(why, why_size, "%s: a block device of %" PRIu64 " bytes, not %" PRIu64, path,
                     have, size);
            blk_disk_close(d);
            return -EINVAL;
        }
    } else if (S_ISREG(st.st_mode)) {
        have = (uint64_t)st.st_size;
        if (size && have > size) {
            snprintf(why, why_size,
                     "%s: %" PRIu64 " bytes, larger than --size %" PRIu64
                     " (shrinking would lose data)",
                     path, have, size);
            blk_disk_close(d);
            return -EFBIG;
        }
        if (size && have < size) {
            if (readonly) {
                snprintf(why, why_size, "%s: %" PRIu64 " bytes, cannot grow it read-only", path,
                         have);
                blk_disk_close(d);
                return -EROFS;
            }
            if (ftruncate(d->fd, (off_t)size) < 0)
                goto errno_fail;
            have = size;
        }
    } else {
        snprintf(why, why_size, "%s: neither a regular file nor a block device", path);
        blk_disk_close(d);
        return -EINVAL;
    }
    d->size = have & ~(uint64_t)(BLK_SECTOR - 1);
    if (d->size == 0) {
        snprintf(why, why_size, "%s: empty (give --size)", path);
        blk_disk_close(d);
        return -EINVAL;
    }
    /* the file's real name: a load renames its image over it, not over a symlink */
    d->path = realpath(path, NULL);
    if (!d->path) {
        blk_disk_close(d);
        snprintf(why, why_size, "out of memory");
        return -ENOMEM;
    }
    d->kind = BLK_DISK_FILE;
    d->readonly = readonly;
    return 0;

errno_fail : {
    int r = -errno;

    snprintf(why, why_size, "%s: %s", path, strerror(errno));
    blk_disk_close(d);
    return r;
}
}

int blk_disk_open_ram(struct blk_disk *d, uint64_t size, char *why, size_t why_size)
{
    void *p;

    disk_reset(d);
    if (size == 0 || size % BLK_SECTOR || size > (uint64_t)SIZE_MAX / 2) {
        snprintf(why, why_size, "RAM disk size %" PRIu64 " is not a positive multiple of %u", size,
                 BLK_SECTOR);
        return -EINVAL;
    }
    d->fd = memfd_create("guestabi-blk", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (d->fd < 0 || ftruncate(d->fd, (off_t)size) < 0 ||
        fcntl(d->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
        goto fail;
    p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd, 0);
    if (p == MAP_FAILED)
        goto fail;
    d->mem = p;
    d->size = size;
    d->kind = BLK_DISK_RAM;
    return 0;
fail : {
    int r = -errno;

    snprintf(why, why_size, "RAM disk of %" PRIu64 " bytes: %s", size, strerror(errno));
    blk_disk_close(d);
    return r;
}
}

void blk_disk_close(struct blk_disk *d)
{
    if (d->mem)
        munmap(d->mem, (size_t)d->size);
    close_and_clear(&d->fd);
    free(d->path);
    disk_reset(d);
}

/* ---- data ----------------------------------------------------------------------------------- */

/* Exactly len bytes between the disk at off and the iovecs: iovecs beyond len are cut (never
 * read into or written from); iovecs holding fewer bytes are refused. */
static int disk_rw(struct blk_disk *d, bool write, uint64_t off, const struct iovec *iov,
                   unsigned n_iov, size_t len)
{
    struct iovec v[BLK_MAX_IOV];
    unsigned i = 0, n = 0;
    size_t total = 0;

    if (n_iov > BLK_MAX_IOV)
        return -EINVAL;
    for (; n < n_iov && total < len; n++) {
        v[n] = iov[n];
        v[n].iov_len = MIN(v[n].iov_len, len - total);
        total += v[n].iov_len;
    }
    if (total < len)
        return -EINVAL;
    if (d->kind == BLK_DISK_RAM) {
        uint8_t *at = d->mem + off;

        for (i = 0; i < n; at += v[i].iov_len, i++)
            memcpy(write ? at : v[i].iov_base, write ? v[i].iov_base : at, v[i].iov_len);
        return 0;
    }
    while (len > 0) {
        ssize_t r = write ? pwritev(d->fd, v + i, (int)(n - i), (off_t)off)
                          : preadv(d->fd, v + i, (int)(n - i), (off_t)off);
        size_t done;

        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EIO; /* the file shrank under us */
        done = (size_t)r;
        len -= MIN(done, len);
        off += done;
        while (done > 0 && i < n) {
            size_t k = MIN(done, v[i].iov_len);

            v[i].iov_base = (uint8_t *)v[i].iov_base + k;
            v[i].iov_len -= k;
            done -= k;
            if (v[i].iov_len == 0)
                i++;
        }
    }
    return 0;
}

int blk_disk_read(struct blk_disk *d, uint64_t off, const struct iovec *iov, unsigned n_iov,
                  size_t len)
{
    return disk_rw(d, false, off, iov, n_iov, len);
}

int blk_disk_write(struct blk_disk *d, uint64_t off, const struct iovec *iov, unsigned n_iov,
                   size_t len)
{
    return d->readonly ? -EROFS : disk_rw(d, true, off, iov, n_iov, len);
}

int blk_disk_flush(struct blk_disk *d)
{
    if (d->kind != BLK_DISK_FILE || d->readonly)
        return 0;
    while (fdatasync(d->fd) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}

/* Write zeroes the slow way (a file system that punches nothing). */
static int file_write_zeroes(struct blk_disk *d, uint64_t off, uint64_t len)
{
    static const uint8_t zeroes[BLK_ZERO_SIZE];

    while (len > 0) {
        struct iovec v = {(void *)zeroes, (size_t)MIN(len, (uint64_t)sizeof(zeroes))};
        int r = disk_rw(d, true, off, &v, 1, v.iov_len);

        if (r < 0)
            return r;
        off += v.iov_len;
        len -= v.iov_len;
    }
    return 0;
}

static int try_fallocate(int fd, int mode, uint64_t off, uint64_t len)
{
    while (fallocate(fd, mode, (off_t)off, (off_t)len) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}

static bool unsupported(int r)
{
    return r == -EOPNOTSUPP || r == -ENOSYS || r == -EINVAL || r == -ENODEV;
}

/* RAM: clear [off, off+len), releasing the whole pages of large ranges. */
static int ram_zero(struct blk_disk *d, uint64_t off, uint64_t len)
{
    uint64_t a = (off + PAGE - 1) & ~(uint64_t)(PAGE - 1), e = (off + len) & ~(uint64_t)(PAGE - 1);

    if (len < RAM_PUNCH_MIN || a >= e ||
        try_fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, a, e - a) < 0) {
        memset(d->mem + off, 0, (size_t)len);
        return 0;
    }
    memset(d->mem + off, 0, (size_t)(a - off));
    memset(d->mem + e, 0, (size_t)(off + len - e));
    return 0;
}

int blk_disk_discard(struct blk_disk *d, uint64_t off, uint64_t len)
{
    int r;

    if (d->readonly)
        return -EROFS;
    if (len == 0)
        return 0;
    if (d->kind == BLK_DISK_RAM)
        return ram_zero(d, off, len);
    r = try_fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
    if (r < 0 && unsupported(r))
        r = file_write_zeroes(d, off, len);
    return r;
}

int blk_disk_write_zeroes(struct blk_disk *d, uint64_t off, uint64_t len, bool unmap)
{
    int r = -EOPNOTSUPP;

    if (d->readonly)
        return -EROFS;
    if (len == 0)
        return 0;
    if (d->kind == BLK_DISK_RAM)
        return ram_zero(d, off, len);
    /* without unmap the range stays allocated: zeroed in place, or written */
    if (unmap)
        r = try_fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
    if (r < 0 && unsupported(r))
        r = try_fallocate(d->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, len);
    if (r < 0 && unsupported(r))
        r = file_write_zeroes(d, off, len);
    return r;
}

void blk_disk_extent(const struct blk_disk *d, uint64_t off, uint64_t max, struct blk_extent *ret)
{
    uint64_t n = off < d->size ? MIN(max, d->size - off) : 0;

    *ret = (struct blk_extent){.fd = -1, .size = n};
    if (d->kind == BLK_DISK_RAM) {
        ret->mem = d->mem + off;
    } else {
        ret->fd = d->fd;
        ret->file_offset = off;
    }
}
