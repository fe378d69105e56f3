/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM for a front-end: one sealed memfd, mapped shared, described to the back-end as
 * n regions that are adjacent in guest-physical space (as QEMU splits RAM into regions).
 */

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>

#include <guestabi/util.h>
#include "vhost/ring.h"
#include "vhost_guest.h"

#define MAX_REGIONS GABI_VHOST_MAX_MEM_SLOTS

struct gabi_vhost_guestmem {
    int fd;
    uint8_t *base;
    uint64_t size;
    uint64_t next; /* bump allocator */
    unsigned n_regions;
    struct gabi_vhost_region regions[MAX_REGIONS];
};

int gabi_vhost_guestmem_new(uint64_t size, unsigned n_regions, struct gabi_vhost_guestmem **ret,
                            struct gabi_error *reterr)
{
    struct gabi_vhost_guestmem *gm;
    uint64_t chunk;

    if (n_regions == 0 || n_regions > MAX_REGIONS)
        return gabi_error_set(reterr, -EINVAL, NULL, "1 to %u regions", MAX_REGIONS);
    if (size == 0 || size % 4096 || size > (1ull << 40))
        return gabi_error_set(
            reterr, -EINVAL, NULL,
            "guest memory size 0x%" PRIx64 " is not a multiple of 4096 up to 1 TiB", size);
    chunk = size / n_regions & ~4095ull;
    if (chunk == 0)
        return gabi_error_set(reterr, -EINVAL, NULL, "regions smaller than a page");
    gm = calloc(1, sizeof(*gm));
    if (!gm)
        return gabi_error_set(reterr, -ENOMEM, NULL, "out of memory");
    gm->fd = memfd_create("guestabi-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (gm->fd < 0 || ftruncate(gm->fd, (off_t)size) < 0 ||
        fcntl(gm->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        int e = errno;

        gabi_vhost_guestmem_free(gm);
        return gabi_error_set(reterr, -e, NULL, "memfd: %s", strerror(e));
    }
    gm->base = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, gm->fd, 0);
    if (gm->base == MAP_FAILED) {
        int e = errno;

        gm->base = NULL;
        gabi_vhost_guestmem_free(gm);
        return gabi_error_set(reterr, -e, NULL, "mmap: %s", strerror(e));
    }
    gm->size = size;
    gm->next = 0x1000; /* gpa 0 stays unused: a zero address is always a bug */
    gm->n_regions = n_regions;
    for (unsigned i = 0; i < n_regions; i++) {
        uint64_t start = i * chunk;

        gm->regions[i] = (struct gabi_vhost_region){
            .gpa = start,
            .size = i + 1 == n_regions ? size - start : chunk,
            .uaddr = (uint64_t)(uintptr_t)(gm->base + start),
            .mmap_offset = start,
        };
    }
    *ret = gm;
    return 0;
}

struct gabi_vhost_guestmem *gabi_vhost_guestmem_free(struct gabi_vhost_guestmem *gm)
{
    if (!gm)
        return NULL;
    if (gm->base)
        munmap(gm->base, (size_t)gm->size);
    close_and_clear(&gm->fd);
    free(gm);
    return NULL;
}

int gabi_vhost_guestmem_fd(const struct gabi_vhost_guestmem *gm)
{
    return gm->fd;
}

uint64_t gabi_vhost_guestmem_size(const struct gabi_vhost_guestmem *gm)
{
    return gm->size;
}

unsigned gabi_vhost_guestmem_n_regions(const struct gabi_vhost_guestmem *gm)
{
    return gm->n_regions;
}

const struct gabi_vhost_region *gabi_vhost_guestmem_region(const struct gabi_vhost_guestmem *gm,
                                                           unsigned i)
{
    return i < gm->n_regions ? &gm->regions[i] : NULL;
}

void *gabi_vhost_guestmem_ptr(const struct gabi_vhost_guestmem *gm, uint64_t gpa, uint64_t len)
{
    if (gpa >= gm->size || len > gm->size - gpa)
        return NULL;
    return gm->base + gpa;
}

uint64_t gabi_vhost_guestmem_uaddr(const struct gabi_vhost_guestmem *gm, uint64_t gpa)
{
    return gpa < gm->size ? (uint64_t)(uintptr_t)(gm->base + gpa) : 0;
}

int gabi_vhost_guestmem_alloc(struct gabi_vhost_guestmem *gm, uint64_t size, uint64_t align,
                              uint64_t *ret_gpa)
{
    uint64_t at;

    if (align == 0 || (align & (align - 1)))
        return -EINVAL;
    at = (gm->next + align - 1) & ~(align - 1);
    if (at < gm->next || size > gm->size || at > gm->size - size)
        return -ENOMEM;
    gm->next = at + size;
    *ret_gpa = at;
    return 0;
}
