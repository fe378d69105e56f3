/* SPDX-License-Identifier: MIT */
/*
 * CRC32C (Castagnoli polynomial 0x1EDC6F41, bit-reflected 0x82F63B78), as iSCSI, ext4 and
 * SSE4.2 define it.
 *
 * With SSE4.2 the crc32 instruction does 8 bytes per step; one dependent chain is bound by the
 * instruction's latency (3 cycles), so long buffers are split into three equal blocks whose
 * CRCs run interleaved and are joined afterwards: the CRC register is linear over GF(2), so
 * crc(A || B) = shift_|B|(crc(A)) ^ crc0(B), where shift_n is "feed n zero bytes" (a 32x32 bit
 * matrix, applied through four 256-entry tables) and crc0 starts from 0. Without SSE4.2, eight
 * tables do 8 bytes per step ("slicing by 8").
 *
 * Everything below works on the raw register; the public function adds the usual pre- and
 * post-inversion.
 */

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "vhost/state_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define HAVE_X86 1
#endif

#define POLY        0x82F63B78u

#define LONG_BLOCK  8192 /* three of these per interleaved round: 24 KiB */
#define SHORT_BLOCK 256

static uint32_t table[8][256];
static uint32_t shift_long[4][256];
static uint32_t shift_short[4][256];
static bool use_hw;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* m is a 32x32 matrix over GF(2) stored by columns: m[i] is the image of bit i. */
static uint32_t gf2_apply(const uint32_t m[32], uint32_t v)
{
    uint32_t r = 0;

    for (int i = 0; v; i++, v >>= 1)
        if (v & 1)
            r ^= m[i];
    return r;
}

static void gf2_square(uint32_t out[32], const uint32_t m[32])
{
    for (int i = 0; i < 32; i++)
        out[i] = gf2_apply(m, m[i]);
}

/* Tables applying "feed 2^log2_bytes zero bytes" to a register, one per register byte. */
static void make_shift_tables(uint32_t t[4][256], unsigned log2_bytes)
{
    uint32_t a[32], b[32];

    /* one zero bit: the register shifts right and the polynomial comes in for the low bit */
    a[0] = POLY;
    for (int i = 1; i < 32; i++)
        a[i] = 1u << (i - 1);
    for (unsigned k = 0; k < log2_bytes + 3; k++) {
        gf2_square(b, a);
        memcpy(a, b, sizeof(a));
    }
    for (int k = 0; k < 4; k++)
        for (uint32_t v = 0; v < 256; v++)
            t[k][v] = gf2_apply(a, v << (8 * k));
}

static void init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;

        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (c & 1 ? POLY : 0);
        table[0][i] = c;
    }
    for (int k = 1; k < 8; k++)
        for (int i = 0; i < 256; i++)
            table[k][i] = (table[k - 1][i] >> 8) ^ table[0][table[k - 1][i] & 0xff];
    make_shift_tables(shift_long, 13); /* 8192 = 2^13 */
    make_shift_tables(shift_short, 8); /* 256 = 2^8 */
#ifdef HAVE_X86
    __builtin_cpu_init();
    use_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static uint32_t raw_sw(uint32_t c, const uint8_t *p, size_t n)
{
    while (n && ((uintptr_t)p & 7)) {
        c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
        n--;
    }
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t v = load64(p) ^ c;

        c = table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^ table[5][(v >> 16) & 0xff] ^
            table[4][(v >> 24) & 0xff] ^ table[3][(v >> 32) & 0xff] ^ table[2][(v >> 40) & 0xff] ^
            table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
    }
    while (n--)
        c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return c;
}

static inline uint32_t shift(const uint32_t t[4][256], uint32_t c)
{
    return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
}

#ifdef HAVE_X86
#define CRC_BLOCKS3(block, shift_table)                                                            \
    while (n >= 3 * (block)) {                                                                     \
        uint64_t c1 = 0, c2 = 0;                                                                   \
        const uint8_t *end = p + (block);                                                          \
        do {                                                                                       \
            c0 = _mm_crc32_u64(c0, load64(p));                                                     \
            c1 = _mm_crc32_u64(c1, load64(p + (block)));                                           \
            c2 = _mm_crc32_u64(c2, load64(p + 2 * (block)));                                       \
            p += 8;                                                                                \
        } while (p < end);                                                                         \
        c0 = shift(shift_table, (uint32_t)c0) ^ (uint32_t)c1;                                      \
        c0 = shift(shift_table, (uint32_t)c0) ^ (uint32_t)c2;                                      \
        p += 2 * (block);                                                                          \
        n -= 3 * (block);                                                                          \
    }

__attribute__((target("sse4.2"))) static uint32_t raw_hw(uint32_t c, const uint8_t *p, size_t n)
{
    uint64_t c0;

    while (n && ((uintptr_t)p & 7)) {
        c = _mm_crc32_u8(c, *p++);
        n--;
    }
    c0 = c;
    CRC_BLOCKS3(LONG_BLOCK, shift_long)
    CRC_BLOCKS3(SHORT_BLOCK, shift_short)
    for (; n >= 8; n -= 8, p += 8)
        c0 = _mm_crc32_u64(c0, load64(p));
    c = (uint32_t)c0;
    while (n--)
        c = _mm_crc32_u8(c, *p++);
    return c;
}
#endif

uint32_t state_crc32c_sw(uint32_t crc, const void *buf, size_t size)
{
    pthread_once(&init_once, init);
    return ~raw_sw(~crc, buf, size);
}

bool state_crc32c_hw(void)
{
    pthread_once(&init_once, init);
    return use_hw;
}

uint32_t gabi_vhost_state_crc32c(uint32_t crc, const void *buf, size_t size)
{
    pthread_once(&init_once, init);
#ifdef HAVE_X86
    if (use_hw)
        return ~raw_hw(~crc, buf, size);
#endif
    return ~raw_sw(~crc, buf, size);
}
