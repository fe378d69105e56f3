/* SPDX-License-Identifier: MIT */
/*
 * Test support: the front-end requests that take guest memory and a guest driver's virtqueue,
 * built on the front-end's public requests.
 */

#include <errno.h>

#include "vhost/protocol.h"
#include "vhost_guest.h"

static void region_of(const struct gabi_vhost_guestmem *gm, unsigned i,
                      struct vhost_mem_region *ret)
{
    const struct gabi_vhost_region *r = gabi_vhost_guestmem_region(gm, i);

    ret->gpa = r->gpa;
    ret->size = r->size;
    ret->uaddr = r->uaddr;
    ret->mmap_offset = r->mmap_offset;
}

int gabi_vhost_client_set_mem_table(struct gabi_vhost_client *c,
                                    const struct gabi_vhost_guestmem *gm)
{
    struct vhost_mem_table t = {.nregions = gabi_vhost_guestmem_n_regions(gm)};
    int fds[VHOST_MEMORY_BASELINE_NREGIONS];

    if (t.nregions > VHOST_MEMORY_BASELINE_NREGIONS)
        return -E2BIG;
    for (unsigned i = 0; i < t.nregions; i++) {
        region_of(gm, i, &t.regions[i]);
        fds[i] = gabi_vhost_guestmem_fd(gm);
    }
    return gabi_vhost_client_request(c, VHOST_USER_SET_MEM_TABLE, false, &t,
                                     8 + t.nregions * (uint32_t)sizeof(t.regions[0]), fds,
                                     t.nregions, NULL, 0, NULL);
}

int gabi_vhost_client_add_mem_reg(struct gabi_vhost_client *c, const struct gabi_vhost_guestmem *gm,
                                  unsigned region)
{
    struct vhost_mem_single s = {0};
    int fd = gabi_vhost_guestmem_fd(gm);

    if (region >= gabi_vhost_guestmem_n_regions(gm))
        return -EINVAL;
    region_of(gm, region, &s.region);
    return gabi_vhost_client_request(c, VHOST_USER_ADD_MEM_REG, false, &s, sizeof(s), &fd, 1, NULL,
                                     0, NULL);
}

int gabi_vhost_client_rem_mem_reg(struct gabi_vhost_client *c, const struct gabi_vhost_guestmem *gm,
                                  unsigned region)
{
    struct vhost_mem_single s = {0};

    if (region >= gabi_vhost_guestmem_n_regions(gm))
        return -EINVAL;
    region_of(gm, region, &s.region);
    return gabi_vhost_client_request(c, VHOST_USER_REM_MEM_REG, false, &s, sizeof(s), NULL, 0, NULL,
                                     0, NULL);
}

int gabi_vhost_client_start_vring(struct gabi_vhost_client *c, unsigned index,
                                  struct gabi_vhost_guestq *q, uint32_t base, bool log)
{
    struct gabi_vhost_guestmem *gm;
    uint64_t desc, avail, used;
    int r;

    gabi_vhost_guestq_addrs(q, &desc, &avail, &used);
    gm = gabi_vhost_guestq_guestmem(q);
    r = gabi_vhost_client_set_vring_num(c, index, gabi_vhost_guestq_size(q));
    if (r >= 0)
        r = gabi_vhost_client_set_vring_base(c, index, base);
    if (r >= 0)
        r = gabi_vhost_client_set_vring_addr(
            c, index, log ? VHOST_VRING_F_LOG : 0, gabi_vhost_guestmem_uaddr(gm, desc),
            gabi_vhost_guestmem_uaddr(gm, used), gabi_vhost_guestmem_uaddr(gm, avail), used);
    if (r >= 0)
        r = gabi_vhost_client_set_vring_kick(c, index, gabi_vhost_guestq_kick_fd(q));
    if (r >= 0)
        r = gabi_vhost_client_set_vring_call(c, index, gabi_vhost_guestq_call_fd(q));
    if (r >= 0 && (gabi_vhost_client_features(c) & (1ull << GABI_F_PROTOCOL_FEATURES)))
        r = gabi_vhost_client_set_vring_enable(c, index, true);
    return r;
}

int gabi_vhost_client_share_guestmem(struct gabi_vhost_client *c,
                                     const struct gabi_vhost_guestmem *gm)
{
    int r = 0;

    if (!(gabi_vhost_client_protocol_features(c) & (1ull << GABI_PF_CONFIGURE_MEM_SLOTS)))
        return gabi_vhost_client_set_mem_table(c, gm);
    for (unsigned i = 0; i < gabi_vhost_guestmem_n_regions(gm) && r >= 0; i++)
        r = gabi_vhost_client_add_mem_reg(c, gm, i);
    return r;
}
