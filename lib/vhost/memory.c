/* SPDX-License-Identifier: MIT */
/*
 * The back-end's view of guest memory: regions mapped from the front-end's fds, kept sorted
 * by guest-physical address. Every region is checked against its file before it is mapped,
 * so an access inside a region never runs past the end of the file.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "vhost/internal.h"

static bool overlaps(uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size)
{
    return a < b + b_size && b < a + a_size;
}

int vhost_mem_add(struct vhost_mem *m, unsigned max, const struct vhost_mem_region *reg, int fd,
                  struct gabi_error *reterr)
{
    struct vhost_region *r;
    struct stat st;
    uint64_t map_size;
    void *map;
    unsigned pos;
    int guard;

    if (m->n >= max || m->n >= GABI_VHOST_MAX_MEM_SLOTS) {
        return gabi_error_set(reterr, -ENOSPC, NULL, "more than %u memory regions",
                              MIN(max, GABI_VHOST_MAX_MEM_SLOTS));
    }
    if (reg->size == 0 || reg->gpa + reg->size < reg->gpa || reg->uaddr + reg->size < reg->uaddr ||
        __builtin_add_overflow(reg->mmap_offset, reg->size, &map_size) ||
        map_size > (uint64_t)SIZE_MAX / 2) {
        return gabi_error_set(reterr, -EINVAL, NULL,
                              "memory region gpa 0x%" PRIx64 " size 0x%" PRIx64 " uaddr 0x%" PRIx64
                              " offset 0x%" PRIx64 " is empty or wraps around",
                              reg->gpa, reg->size, reg->uaddr, reg->mmap_offset);
    }
    for (unsigned i = 0; i < m->n; i++) {
        if (overlaps(reg->gpa, reg->size, m->r[i].gpa, m->r[i].size) ||
            overlaps(reg->uaddr, reg->size, m->r[i].uaddr, m->r[i].size)) {
            return gabi_error_set(reterr, -EINVAL, NULL,
                                  "memory region gpa 0x%" PRIx64 "+0x%" PRIx64
                                  " overlaps region gpa 0x%" PRIx64 "+0x%" PRIx64,
                                  reg->gpa, reg->size, m->r[i].gpa, m->r[i].size);
        }
    }
    if (fd < 0 || fstat(fd, &st) < 0) {
        return gabi_error_set(reterr, -EBADF, NULL, "memory region fd is not usable");
    }
    /* Mapping past the end of the file would fault (SIGBUS) on the first guest access. */
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < map_size) {
        return gabi_error_set(
            reterr, -EINVAL, NULL,
            "memory region needs 0x%" PRIx64 " bytes of a regular file, its fd has %s0x%" PRIx64,
            map_size, S_ISREG(st.st_mode) ? "" : "no regular file, size ", (uint64_t)st.st_size);
    }
    map = vhost_guard_map(fd, (size_t)map_size, &guard);
    if (map == MAP_FAILED) {
        int e = errno;

        return gabi_error_set(reterr, -e, NULL,
                              "cannot map memory region of 0x%" PRIx64 " bytes: %s", map_size,
                              strerror(e));
    }
    for (pos = 0; pos < m->n && m->r[pos].gpa < reg->gpa; pos++)
        ;
    memmove(&m->r[pos + 1], &m->r[pos], (m->n - pos) * sizeof(m->r[0]));
    m->n++;
    r = &m->r[pos];
    *r = (struct vhost_region){
        .gpa = reg->gpa,
        .size = reg->size,
        .uaddr = reg->uaddr,
        .mmap_offset = reg->mmap_offset,
        .host = (uint8_t *)map + reg->mmap_offset,
        .map = map,
        .map_size = (size_t)map_size,
        .guard = guard,
    };
    return 0;
}

static void region_unmap(struct vhost_region *r)
{
    if (r->map)
        vhost_guard_unmap(r->map, r->map_size, r->guard);
    r->map = NULL;
}

int vhost_mem_remove(struct vhost_mem *m, const struct vhost_mem_region *reg)
{
    for (unsigned i = 0; i < m->n; i++) {
        if (m->r[i].gpa == reg->gpa && m->r[i].size == reg->size && m->r[i].uaddr == reg->uaddr) {
            region_unmap(&m->r[i]);
            memmove(&m->r[i], &m->r[i + 1], (m->n - i - 1) * sizeof(m->r[0]));
            m->n--;
            return 0;
        }
    }
    return -ENOENT;
}

void vhost_mem_clear(struct vhost_mem *m)
{
    for (unsigned i = 0; i < m->n; i++)
        region_unmap(&m->r[i]);
    m->n = 0;
}

void *vhost_mem_uaddr(const struct vhost_mem *m, uint64_t uaddr, uint64_t len)
{
    for (unsigned i = 0; i < m->n; i++) {
        const struct vhost_region *r = &m->r[i];
        uint64_t off = uaddr - r->uaddr;

        if (uaddr >= r->uaddr && off < r->size && len <= r->size - off)
            return r->host + off;
    }
    return NULL;
}
