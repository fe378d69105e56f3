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
 * Where the CPU has AVX-512 and VPCLMULQDQ, buffers of FOLD_MIN bytes or more are folded
 * instead: the message polynomial is reduced 256 bytes at a time by carry-less multiplication
 * (four 512-bit accumulators, each 128-bit lane moved 2048 bits on by x^(2048+63) and x^(2048-1)
 * mod P), the accumulators are folded into one 128-bit value congruent to everything read, and
 * the crc32 instruction finishes from those 16 bytes. It is limited by memory, not by the
 * crc32 instruction's one 8-byte step per cycle and chain.
 *
 * Everything below works on the raw register; the public function adds the usual pre- and
 * post-inversion.
 */

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "vhost/state_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <nmmintrin.h>
#define HAVE_X86 1
#endif

#define POLY        0x82F63B78u

#define LONG_BLOCK  8192 /* three of these per interleaved round: 24 KiB */
#define SHORT_BLOCK 256
#define FOLD_MIN    1024 /* bytes from which folding pays (4 x 64 to load, 4 x 64 per round) */

static uint32_t table[8][256];
static uint32_t shift_long[4][256];
static uint32_t shift_short[4][256];
static bool use_hw;
static bool use_fold;
/* fold constants, each (x^n mod P) bit-reflected into the high half of a 64-bit lane: for
 * moving a 128-bit lane on by 2048, 512, 384, 256 and 128 bits */
static uint64_t fold_2048[2], fold_512[2], fold_lanes[8];
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

/* x^n mod P, bit-reflected (bit i is the coefficient of x^(31 - i)), as the register holds it */
static uint32_t xpow_mod(unsigned n)
{
    uint32_t r = 0x80000000u; /* x^0 */

    while (n--)
        r = (r >> 1) ^ (r & 1 ? POLY : 0);
    return r;
}

/*
 * A 128-bit lane X read from memory is L * x^64 + H, L its first 8 bytes (bit i of a lane is
 * the coefficient of x^(127 - i)). A carry-less product of two bit-reflected 64-bit values is
 * x times the product of their polynomials, so X * x^d = L * x^(d + 64) + H * x^d is congruent
 * to clmul(L, x^(d + 63) mod P) ^ clmul(H, x^(d - 1) mod P), in the place d bits further on.
 */
static void fold_constants(uint64_t k[2], unsigned d)
{
    k[0] = (uint64_t)xpow_mod(d + 63) << 32;
    k[1] = (uint64_t)xpow_mod(d - 1) << 32;
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
    use_fold = use_hw && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("vpclmulqdq") && __builtin_cpu_supports("pclmul");
#endif
    fold_constants(fold_2048, 2048);
    fold_constants(fold_512, 512);
    fold_constants(fold_lanes, 384);
    fold_constants(fold_lanes + 2, 256);
    fold_constants(fold_lanes + 4, 128);
    fold_lanes[6] = fold_lanes[7] = 0; /* the last lane stays where it is */
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

#define FOLD_TARGET "avx512f,vpclmulqdq,pclmul,sse4.2"

/* Each 128-bit lane of x moved on by the distance k holds the constants for, plus y. */
__attribute__((target(FOLD_TARGET))) static inline __m512i fold(__m512i x, __m512i k, __m512i y)
{
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00),
                                     _mm512_clmulepi64_epi128(x, k, 0x11), y, 0x96);
}

__attribute__((target(FOLD_TARGET))) static uint32_t raw_fold(uint32_t c, const uint8_t *p,
                                                              size_t n)
{
    const __m512i k2048 = _mm512_broadcast_i32x4(_mm_loadu_si128((const void *)fold_2048));
    const __m512i k512 = _mm512_broadcast_i32x4(_mm_loadu_si128((const void *)fold_512));
    __m512i a0, a1, a2, a3;
    __m128i x;
    uint64_t c0;

    /* the register enters as the first 4 bytes' partner, as in every CRC step */
    a0 = _mm512_xor_si512(_mm512_loadu_si512(p), _mm512_set_epi64(0, 0, 0, 0, 0, 0, 0, c));
    a1 = _mm512_loadu_si512(p + 64);
    a2 = _mm512_loadu_si512(p + 128);
    a3 = _mm512_loadu_si512(p + 192);
    p += 256;
    n -= 256;
    for (; n >= 256; n -= 256, p += 256) {
        a0 = fold(a0, k2048, _mm512_loadu_si512(p));
        a1 = fold(a1, k2048, _mm512_loadu_si512(p + 64));
        a2 = fold(a2, k2048, _mm512_loadu_si512(p + 128));
        a3 = fold(a3, k2048, _mm512_loadu_si512(p + 192));
    }
    /* four accumulators into one, then its four lanes into one */
    a1 = fold(a0, k512, a1);
    a2 = fold(a1, k512, a2);
    a3 = fold(a2, k512, a3);
    a0 = _mm512_loadu_si512(fold_lanes);
    a0 = _mm512_mask_mov_epi64(fold(a3, a0, _mm512_setzero_si512()), 0xC0, a3);
    x = _mm_xor_si128(
        _mm_xor_si128(_mm512_extracti32x4_epi32(a0, 0), _mm512_extracti32x4_epi32(a0, 1)),
        _mm_xor_si128(_mm512_extracti32x4_epi32(a0, 2), _mm512_extracti32x4_epi32(a0, 3)));
    /* x is congruent to all bytes read: the register is the CRC of its 16 bytes from 0 */
    c0 = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(x));
    c0 = _mm_crc32_u64(c0, (uint64_t)_mm_extract_epi64(x, 1));
    return raw_hw((uint32_t)c0, p, n);
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
    if (use_fold && size >= FOLD_MIN)
        return ~raw_fold(~crc, buf, size);
    if (use_hw)
        return ~raw_hw(~crc, buf, size);
#endif
    return ~raw_sw(~crc, buf, size);
}

uint32_t state_crc32c_sse42(uint32_t crc, const void *buf, size_t size)
{
    pthread_once(&init_once, init);
#ifdef HAVE_X86
    if (use_hw)
        return ~raw_hw(~crc, buf, size);
#endif
    return ~raw_sw(~crc, buf, size);
}

bool state_crc32c_fold(void)
{
    pthread_once(&init_once, init);
    return use_fold;
}
