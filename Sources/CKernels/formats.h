// Internal: block layouts, exact scalar f16/bf16 conversions and the tables shared by the
// weight-format packers (formats.c) and kernels (matmul_q.c, matmul_half.c).
#pragma once
#include "CKernels.h"
#include "dispatch.h"
#include <string.h>

// Every product and sum in these files is rounded as written: a*b + c is two roundings,
// fmaf()/_mm256_fmadd_ps one. The scalar and SIMD kernels rely on this to agree bit for bit.
#pragma STDC FP_CONTRACT OFF

#define NB_QK 32      // q8, q4 and activation block
#define NB_QK64 64    // nf4 and q2 block
#define NB_NF4_DQ 256 // absmax values per second-level (dynamic map) block
#define NB_NF4_SCALE 4096.0f  // int16 NF4 codebook = round(4096 * value) (nb_nf4_i16)

// ---- f16 / bf16, exact, round to nearest even ------------------------------------

static inline uint32_t nb_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float nb_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/// Half → float, exact. NaNs come out quiet with their payload, as F16C's vcvtph2ps.
static inline float nb_h2f(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    if (exp == 0x1F) return nb_bits_f32(sign | 0x7F800000 | (mant << 13) | (mant ? 0x00400000 : 0));
    if (exp != 0) return nb_bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
    if (mant == 0) return nb_bits_f32(sign);
    uint32_t e = 113;  // subnormal: mant · 2^-24, normalised
    do { mant <<= 1; e--; } while (!(mant & 0x400));
    return nb_bits_f32(sign | (e << 23) | ((mant & 0x3FF) << 13));
}

/// Float → half, round to nearest even; overflow gives ±inf, NaNs stay quiet NaNs with
/// the top payload bits (as F16C's vcvtps2ph).
static inline uint16_t nb_f2h(float f) {
    uint32_t x = nb_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7FFFFFFF;
    if (ax > 0x7F800000) return (uint16_t)(sign | 0x7E00 | ((ax >> 13) & 0x3FF));
    if (ax >= 0x477FF000) return (uint16_t)(sign | 0x7C00);   // ≥ 65520 (or inf) → inf
    if (ax >= 0x38800000) {                                    // normal half (≥ 2^-14)
        uint32_t r = ax - 0x38000000;                          // rebias 127 → 15
        r += 0xFFF + ((r >> 13) & 1);
        return (uint16_t)(sign | (r >> 13));
    }
    if (ax <= 0x33000000) return (uint16_t)sign;               // ≤ 2^-25 → ±0 (tie to even)
    uint32_t mant = (ax & 0x7FFFFF) | 0x800000, shift = 126 - (ax >> 23);  // 14...24
    uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return (uint16_t)(sign | q);
}

static inline float nb_bf2f(uint16_t h) { return nb_bits_f32((uint32_t)h << 16); }

static inline uint16_t nb_f2bf(float f) {
    uint32_t x = nb_f32_bits(f);
    if ((x & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)((x + 0x7FFF + ((x >> 16) & 1)) >> 16);
}

// ---- NF4 ------------------------------------------------------------------------

/// bitsandbytes' NF4 code values (float32), sorted.
extern const float nb_nf4_values[16];
/// round(4096 · value): the codebook the integer kernels multiply with.
extern const int16_t nb_nf4_i16[16];
/// bitsandbytes' create_dynamic_map(signed=True) (float32, sorted, 256 entries).
extern const float nb_dynamic_map[256];

/// Where the parts of an nf4 matrix are, from its start:
///   codes    rows·k/2 bytes; 64-block b (row-major over the flattened matrix) is 32 bytes:
///            byte j < 16 holds element j (low nibble) and j+16 (high), byte 16+j holds
///            elements 32+j and 48+j;
///   qabsmax  one byte per 64-block: index into nb_dynamic_map;
///   scales   one f32 per 256 64-blocks (flattened order): the absmax of (absmax - offset);
///   offset   one f32: the mean of all absmax values.
/// A block's absmax is dynamic_map[qabsmax] · scale + offset (two roundings, as
/// bitsandbytes), and its weights nf4_values[code] · absmax.
typedef struct {
    int64_t blocks, scale_blocks;
    size_t qabsmax, scales, offset, total;
} nb_nf4_layout;

static inline nb_nf4_layout nb_nf4_layout_of(int64_t rows, int64_t k) {
    nb_nf4_layout l;
    l.blocks = rows * (k / NB_QK64);
    l.scale_blocks = (l.blocks + NB_NF4_DQ - 1) / NB_NF4_DQ;
    l.qabsmax = (size_t)(rows * k / 2);
    l.scales = (l.qabsmax + (size_t)l.blocks + 3) & ~(size_t)3;
    l.offset = l.scales + 4 * (size_t)l.scale_blocks;
    l.total = l.offset + 4;
    return l;
}

/// The dequantised absmax of 64-block `b` of an nf4 matrix.
static inline float nb_nf4_absmax(const uint8_t *base, const nb_nf4_layout *l, int64_t b) {
    float scale, offset;
    memcpy(&scale, base + l->scales + 4 * (size_t)(b / NB_NF4_DQ), 4);
    memcpy(&offset, base + l->offset, 4);
    float v = nb_dynamic_map[base[l->qabsmax + (size_t)b]] * scale;
    return v + offset;
}

// ---- dispatch ----------------------------------------------------------------------

/// Whether to take the AVX2 + FMA + F16C paths (AVX-512 machines take them too: the
/// formats have no AVX-512 kernels yet).
static inline int nb_use_avx2(void) {
#if defined(__x86_64__)
    nb_isa isa = nb_active_isa();
    return isa == NB_ISA_AVX2 || isa == NB_ISA_AVX512;
#else
    return 0;
#endif
}

// ---- kernels shared between files --------------------------------------------------

void nb_matmul_half(nb_format fmt, const uint16_t *w, int64_t k, const float *x, float *y, int64_t n_tokens,
                    int64_t ld_y, int64_t row_begin, int64_t row_end);
