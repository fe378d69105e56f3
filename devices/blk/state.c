/* SPDX-License-Identifier: MIT */
/*
 * The disk as device state (DEVICE_STATE, docs/state-stream.md): a VM with a local disk
 * migrates with it. State version 1 is the raw image: every byte of the disk in order, the
 * payload's size the disk's.
 *
 * Save hands the disk out as it is, never copied in user space: as FILE segments of the RAM
 * disk's memfd or of the disk file, spliced from the page cache (a RAM disk is not read
 * through its mapping, see save_get). The device is suspended while it runs (lib/vhost accepts
 * a transfer only then, and a vring that starts cancels it), so the image stays still.
 *
 * Load goes into a scratch disk of the same kind and size (a new memfd; a new file beside the
 * disk file, spliced into) and makes it live only in commit, after every byte and both
 * checksums were verified: the RAM disk's mapping is swapped, the file is made durable and
 * renamed over the disk's path. A failed or cancelled load drops the scratch and leaves the
 * disk as it was. A block device has no place for a scratch image: it refuses loads.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk.h"
#include <guestabi/util.h>

#define LOG_STATE(k, level, ...) gabi_log(level, (k)->socket, __VA_ARGS__)

/* ---- save ---------------------------------------------------------------------------------- */

static int save_begin(struct gabi_vhost_backend *b, uint64_t *ret_size, struct gabi_error *reterr,
                      void *userdata)
{
    struct blk *k = userdata;

    /* the transfer hands out a file's pages by splice, from regular files only */
    if (k->disk.is_blockdev)
        return gabi_error_set(reterr, -EOPNOTSUPP, NULL,
                              "%s is a block device: its contents are not saved as device state",
                              k->disk.path);
    *ret_size = k->disk.size;
    LOG_STATE(k, GABI_LOG_INFO, "saving the disk: %" PRIu64 " bytes", k->disk.size);
    return 0;
}

static int save_get(struct gabi_vhost_backend *b, uint64_t offset, size_t max, void *scratch,
                    size_t scratch_size, struct gabi_vhost_state_seg *ret,
                    struct gabi_error *reterr, void *userdata)
{
    struct blk *k = userdata;
    struct blk_extent e;

    blk_disk_extent(&k->disk, offset, max, &e);
    if (e.size == 0)
        return gabi_error_set(reterr, -EINVAL, NULL,
                              "offset %" PRIu64 " is beyond the %" PRIu64 "-byte disk", offset,
                              k->disk.size);
    /* a RAM disk too goes out from its memfd's page cache, not through its mapping: pages a
     * mapping has not touched yet (a disk loaded moments ago, a sparse one) would each take a
     * page fault there, and a hole would be allocated; splice and pread take them as they are */
    *ret = (struct gabi_vhost_state_seg){.type = GABI_VHOST_STATE_SEG_FILE,
                                         .fd = e.mem ? k->disk.fd : e.fd,
                                         .offset = e.mem ? offset : e.file_offset,
                                         .size = (size_t)e.size};
    return 0;
}

static void save_end(struct gabi_vhost_backend *b, int result, void *userdata)
{
    struct blk *k = userdata;

    if (result < 0)
        LOG_STATE(k, GABI_LOG_WARNING, "saving the disk failed: %s", strerror(-result));
    else
        LOG_STATE(k, GABI_LOG_INFO, "disk saved");
}

/* ---- load ---------------------------------------------------------------------------------- */

static int load_accept(struct gabi_vhost_backend *b, const struct gabi_vhost_state_info *info,
                       struct gabi_error *reterr, void *userdata)
{
    struct blk *k = userdata;
    char why[256] = "";

    if (k->state_accept &&
        k->state_accept(info->state_version, why, sizeof(why), k->state_userdata) == 0)
        return 0;
    return gabi_error_set(reterr, -EPROTONOSUPPORT, NULL, "%s state version %s: %s",
                          GABI_BLK_STATE_TYPE, info->state_version,
                          why[0] ? why : "not loaded here");
}

static void drop_scratch(struct blk *k)
{
    blk_disk_close(&k->scratch);
    if (k->scratch_path) {
        unlink(k->scratch_path);
        free(k->scratch_path);
        k->scratch_path = NULL;
    }
}

/* A scratch file beside the disk file (same file system: rename is atomic). */
static int scratch_file(struct blk *k, struct gabi_error *reterr)
{
    _cleanup_free_ char *copy = strdup(k->disk.path);
    struct blk_disk *s = &k->scratch;
    struct stat st;
    char *dir, *base;
    int r;

    if (!copy)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    dir = dirname(copy);
    base = strrchr(k->disk.path, '/');
    base = base ? base + 1 : k->disk.path;
    if (asprintf(&k->scratch_path, "%s/.%s.gabi-load-XXXXXX", dir, base) < 0) {
        k->scratch_path = NULL;
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    }
    memset(s, 0, sizeof(*s));
    s->fd = mkostemp(k->scratch_path, O_CLOEXEC);
    if (s->fd < 0) {
        r = -errno;
        free(k->scratch_path);
        k->scratch_path = NULL;
        return gabi_error_set(reterr, r, NULL, "scratch file beside %s: %s", k->disk.path,
                              strerror(-r));
    }
    /* it takes the disk's place: its permissions too (its owner where we may) */
    if (fstat(k->disk.fd, &st) == 0) {
        if (fchown(s->fd, st.st_uid, st.st_gid) < 0) {
            /* not root: the file stays ours */
        }
        fchmod(s->fd, st.st_mode & 07777);
    }
    if (flock(s->fd, LOCK_EX | LOCK_NB) < 0 || ftruncate(s->fd, (off_t)k->disk.size) < 0) {
        r = -errno;
        drop_scratch(k);
        return gabi_error_set(reterr, r, NULL, "scratch file beside %s: %s", k->disk.path,
                              strerror(-r));
    }
    s->kind = BLK_DISK_FILE;
    s->size = k->disk.size;
    return 0;
}

static int load_begin(struct gabi_vhost_backend *b, const struct gabi_vhost_state_info *info,
                      struct gabi_error *reterr, void *userdata)
{
    struct blk *k = userdata;
    char why[256];
    int r;

    drop_scratch(k);
    if (k->disk.readonly)
        return gabi_error_set(reterr, -EROFS, NULL, "the disk is read-only: it takes no state");
    if (info->payload_size != k->disk.size)
        return gabi_error_set(reterr, -EINVAL, NULL,
                              "a %" PRIu64 "-byte disk image does not fit this %" PRIu64
                              "-byte disk (give the destination the source's size)",
                              info->payload_size, k->disk.size);
    if (k->disk.kind == BLK_DISK_RAM) {
        r = blk_disk_open_ram(&k->scratch, k->disk.size, why, sizeof(why));
        if (r < 0)
            return gabi_error_set(reterr, r, NULL, "scratch %s", why);
    } else if (k->disk.is_blockdev) {
        return gabi_error_set(reterr, -EOPNOTSUPP, NULL,
                              "%s is a block device: no room for a scratch image to load into",
                              k->disk.path);
    } else if ((r = scratch_file(k, reterr)) < 0) {
        return r;
    }
    LOG_STATE(k, GABI_LOG_INFO, "loading a disk image of %" PRIu64 " bytes (state version %s)",
              info->payload_size, info->state_version);
    return 0;
}

static int load_dest(struct gabi_vhost_backend *b, uint64_t offset, size_t max,
                     struct gabi_vhost_state_seg *ret, struct gabi_error *reterr, void *userdata)
{
    struct blk *k = userdata;
    struct blk_extent e;

    if (k->scratch.kind == BLK_DISK_NONE)
        return gabi_error_set(reterr, -EINVAL, NULL, "no scratch disk");
    blk_disk_extent(&k->scratch, offset, max, &e);
    if (e.size == 0)
        return gabi_error_set(reterr, -EINVAL, NULL, "offset %" PRIu64 " is beyond the disk",
                              offset);
    /* A RAM disk's memfd is a file too: written as one (spliced from the pipe) its pages are
     * allocated already filled, where a first touch through the mapping would clear each
     * page before the copy overwrites it. */
    *ret = (struct gabi_vhost_state_seg){.type = GABI_VHOST_STATE_SEG_FILE,
                                         .fd = k->scratch.fd,
                                         .offset = offset,
                                         .size = (size_t)e.size};
    return 0;
}

static int load_commit(struct gabi_vhost_backend *b, struct gabi_error *reterr, void *userdata)
{
    struct blk *k = userdata;
    struct blk_disk *s = &k->scratch;
    int r;

    if (s->kind == BLK_DISK_FILE) {
        /* durable before it replaces the disk: what the guest had flushed stays flushed */
        r = blk_disk_flush(s);
        if (r < 0)
            return gabi_error_set(reterr, r, NULL, "fdatasync of the loaded image: %s",
                                  strerror(-r));
        if (rename(k->scratch_path, k->disk.path) < 0) {
            r = -errno;
            return gabi_error_set(reterr, r, NULL, "rename %s to %s: %s", k->scratch_path,
                                  k->disk.path, strerror(-r));
        }
        free(k->scratch_path);
        k->scratch_path = NULL;
        s->path = k->disk.path; /* the path stays the disk's (no allocation that could fail) */
        k->disk.path = NULL;
    }
    /* the scratch disk becomes the disk */
    s->readonly = k->disk.readonly;
    blk_disk_close(&k->disk);
    k->disk = *s;
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    LOG_STATE(k, GABI_LOG_INFO, "disk image loaded");
    return 0;
}

static void load_abort(struct gabi_vhost_backend *b, void *userdata)
{
    struct blk *k = userdata;

    if (k->scratch.kind != BLK_DISK_NONE)
        LOG_STATE(k, GABI_LOG_WARNING, "disk image load aborted: the disk is unchanged");
    drop_scratch(k);
}

void blk_state_ops_init(struct blk *k, const char *version)
{
    k->state_ops = (struct gabi_vhost_state_ops){
        .device_type = GABI_BLK_STATE_TYPE,
        .version = version,
        .max_load_size = 0, /* load_begin takes exactly the disk's size */
        .save_begin = save_begin,
        .save_get = save_get,
        .save_end = save_end,
        .load_accept = load_accept,
        .load_begin = load_begin,
        .load_dest = load_dest,
        .load_commit = load_commit,
        .load_abort = load_abort,
    };
}

void blk_state_fini(struct blk *k)
{
    drop_scratch(k);
}
