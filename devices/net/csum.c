/* SPDX-License-Identifier: MIT */
/* Internet checksums (RFC 1071) for completing partial checksums in software. */

#include <errno.h>
#include <string.h>

#include "net.h"

uint32_t net_csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
    uint64_t acc = sum;

    while (len >= 8) {
        uint32_t a, b;

        memcpy(&a, p, 4);
        memcpy(&b, p + 4, 4);
        acc += (uint64_t)a + b;
        p += 8;
        len -= 8;
    }
    while (len >= 2) {
        uint16_t w;

        memcpy(&w, p, 2);
        acc += w;
        p += 2;
        len -= 2;
    }
    if (len)
        acc += *p; /* little-endian host: the odd byte is the low half of its word */
    while (acc >> 32)
        acc = (acc & 0xffffffffu) + (acc >> 32);
    return (uint32_t)acc;
}

uint16_t net_csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

int net_csum_complete(uint8_t *frame, size_t len, unsigned start, unsigned offset)
{
    uint16_t csum;

    if (start > len || offset > len - start || len - start - offset < 2)
        return -EINVAL;
    /* the field holds the pseudo-header sum: summing over it completes the checksum */
    csum = (uint16_t)~net_csum_fold(net_csum_add(0, frame + start, len - start));
    if (csum == 0)
        csum = 0xffff; /* UDP: 0 means "no checksum"; 0xffff is the same value */
    memcpy(frame + start + offset, &csum, 2);
    return 0;
}
