/*
 * SipHash-2-4 (Aumasson and Bernstein), the core shared by _siphash.c (siphash24() for Python)
 * and rrl.h (the native engine's server-cookie check); gslb/server/siphash.py is the reference.
 * The result is the reference implementation's 64-bit value; its bytes are little-endian.
 */
#ifndef GSLB_SIPHASH24_H
#define GSLB_SIPHASH24_H
#include <stddef.h>
#include <stdint.h>

#define SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIP_ROUND                                                                                  \
    do {                                                                                           \
        v0 += v1; v1 = SIP_ROTL(v1, 13); v1 ^= v0; v0 = SIP_ROTL(v0, 32);                          \
        v2 += v3; v3 = SIP_ROTL(v3, 16); v3 ^= v2;                                                 \
        v0 += v3; v3 = SIP_ROTL(v3, 21); v3 ^= v0;                                                 \
        v2 += v1; v1 = SIP_ROTL(v1, 17); v1 ^= v2; v2 = SIP_ROTL(v2, 32);                          \
    } while (0)

static inline uint64_t sip_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline uint64_t siphash24(const unsigned char *key, const unsigned char *in, size_t len)
{
    uint64_t k0 = sip_le64(key), k1 = sip_le64(key + 8);
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    size_t end = len - (len % 8);
    for (size_t i = 0; i < end; i += 8) {
        uint64_t m = sip_le64(in + i);
        v3 ^= m;
        SIP_ROUND;
        SIP_ROUND;
        v0 ^= m;
    }
    uint64_t b = ((uint64_t)len) << 56;
    for (size_t i = 0; i < len % 8; i++)
        b |= ((uint64_t)in[end + i]) << (8 * i);
    v3 ^= b;
    SIP_ROUND;
    SIP_ROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIP_ROUND;
    SIP_ROUND;
    SIP_ROUND;
    SIP_ROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

#endif
