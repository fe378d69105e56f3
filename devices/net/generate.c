/* SPDX-License-Identifier: MIT */
/*
 * The generator port (--generate SIZE), for benchmarks: the guest's RX buffers are filled
 * with one frame as fast as it posts them, as testpmd's txonly fills a vhost port
 * (net_port_generate() in port.c, beside the RX path it shares); what the guest sends is
 * dropped (net_port_tx, as a sink). This is the frame.
 */

#include <string.h>

#include "net.h"

void net_frame_template(uint8_t *f, size_t len, unsigned port)
{
    static const uint8_t eth[14] = {0x02, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0x08, 0x00};
    size_t ip_len = len - 14, udp_len = len - 34;
    uint8_t *ip = f + 14, *udp = f + 34;
    uint16_t csum;

    memset(f, 0, len);
    memcpy(f, eth, sizeof(eth));
    f[11] = (uint8_t)port;
    ip[0] = 0x45; /* IPv4, 20-byte header */
    ip[2] = (uint8_t)(ip_len >> 8);
    ip[3] = (uint8_t)ip_len;
    ip[8] = 64;                                             /* TTL */
    ip[9] = 17;                                             /* UDP */
    memcpy(ip + 12, "\xc6\x12\x00\x01\xc6\x12\x00\x02", 8); /* 198.18.0.1 -> 198.18.0.2 */
    csum = (uint16_t)~net_csum_fold(net_csum_add(0, ip, 20));
    memcpy(ip + 10, &csum, 2);
    udp[1] = 9;
    udp[3] = 9;
    udp[4] = (uint8_t)(udp_len >> 8);
    udp[5] = (uint8_t)udp_len;
}
