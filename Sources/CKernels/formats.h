// Internal: block layouts, exact scalar f16/bf16 conversions and the tables shared by the
// weight-format packers (formats.c) and kernels (matmul_q.c, matmul_half.c).
#pragma once
#include "CKernels.h"
#include "dispatch.h"
#include <string.h>

// Every product and sum in these files is rounded as written: a*b + c is two roundings,
// fmaf()/_mm256_fmadd_ps one. The scalar and SIMD kernels rely on this to agree bit for bit.
#pragma STDC FP_CONTRACT OFF

#define NB_QK 32      // q8, q4, q4_0, q5_0, q5_1 and activation block
#define NB_QKK 256    // K-quant super-block and nb_q8k
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

/// Whether to take the AVX2 + FMA + F16C paths (the avxvnni and avx512 levels take them too
/// where a kernel has no version of its own at that level).
static inline int nb_use_avx2(void) {
#if defined(__x86_64__)
    return nb_isa_has_avx2(nb_active_isa());
#else
    return 0;
#endif
}

/// The table's kernel slot for the active level: 0 scalar, 1 AVX2, 2 AVX2 + AVX-VNNI, 3 AVX-512
/// (taken only with AVX-512 VNNI, which those kernels use; an AVX-512 CPU without it takes
/// slot 2 if it has AVX-VNNI, else 1).
int nb_kernel_level(void);
/// One block of 32 as quantize_row_q8_0_ref makes it, with d left in f32: codes into qs,
/// returns d (AVX2 where the level has it: the same codes and d; the q8 KV cache's rows).
float nb_q8_block_f32(const float *x, int8_t *qs);

// ---- the format table -----------------------------------------------------------------

/// A kernel: nb_matmul's contract for one format (xq holds the format's activation kind).
typedef void (*nb_matmul_fn)(const void *w, int64_t rows, int64_t k, const float *x, const void *xq, float *y,
                             int64_t n_tokens, int64_t ld_y, int64_t row_begin, int64_t row_end);
/// n_blocks whole blocks to f32.
typedef void (*nb_unpack_fn)(const void *blocks, float *out, int64_t n_blocks);

typedef struct {
    nb_format_info info;
    /// f32 rows → blocks (nb_pack's contract); NULL: not packable.
    void (*pack)(const float *src, int64_t rows, int64_t k, void *dst);
    /// Blocks → f32; NULL for nf4, whose scales live in side arrays (nb_unpack_row).
    nb_unpack_fn unpack;
    /// [0] scalar, [1] AVX2, [2] AVX2 + AVX-VNNI, [3] AVX-512 + VNNI; NULL: the level below.
    /// f32/f16/bf16 have one entry that dispatches itself (their SIMD paths agree with scalar
    /// to rounding).
    nb_matmul_fn matmul[4];
    /// The interleaved layout (CKernels.h, "interleaved weights"): f16 scale fields and
    /// code bytes per block, the block's leading fields and its qs; il_qbytes 0: the format
    /// has none. nf4 (0, 32): its codes, with the absmax codes in place of fields.
    /// il_field_at: where in the block the fields are (q6_K: its d at the end, 208); the
    /// code bytes are the rest of the block, in order.
    int il_fields, il_qbytes, il_field_at;
} nb_format_row;

/// Where the parts of one 16-row group of an interleaved matrix are.
typedef struct {
    int64_t nb;           // the format's blocks per row
    int sub;              // 32-element parts per block (q2: 2, the K-quants 8, else 1): nb_q8a blocks
    size_t scale_bytes;   // per block: 32 · fields (nf4: 16)
    size_t code_bytes;    // per block: 16 · code bytes
    int per;              // blocks per run: as many as fill a 64-byte line with their scales
    size_t head;          // a run's scales, padded to whole lines; its codes follow
    size_t run;           // bytes per whole run: head + per · code_bytes
    size_t group;         // bytes per group
    int field_at, code_at;  // where the fields and the code bytes start in a GGML block
} nb_il_geometry;

/// The geometry of `fmt`'s groups at row length k; 0 when it has no interleaved layout or
/// k is not whole blocks.
static inline int nb_il_geometry_of(nb_format fmt, int64_t k, nb_il_geometry *g);

extern const nb_format_row nb_formats[NB_FMT_COUNT];

/// Where block b's scale fields and its codes start in a group (CKernels.h, "interleaved
/// weights"). The kernels walk the blocks in order instead: after block b's codes comes the
/// next run.
static inline size_t nb_il_scales_at(const nb_il_geometry *g, int64_t b) {
    return (size_t)(b / g->per) * g->run + (size_t)(b % g->per) * g->scale_bytes;
}
static inline size_t nb_il_codes_at(const nb_il_geometry *g, int64_t b) {
    return (size_t)(b / g->per) * g->run + g->head + (size_t)(b % g->per) * g->code_bytes;
}
/// A walk through a group's blocks in order: from block i of its run (its scales at *sc, its
/// codes at *cd) to the next block; after a run's last one the next run starts where its
/// codes end. Starts at sc = the group, cd = the group + head, i = 0.
static inline void nb_il_next(const nb_il_geometry *g, const uint8_t **sc, const uint8_t **cd, int *i) {
    if (++*i == g->per) {
        *i = 0;
        *sc = *cd + g->code_bytes;
        *cd = *sc + g->head;
    } else {
        *sc += g->scale_bytes;
        *cd += g->code_bytes;
    }
}

static inline int nb_il_geometry_of(nb_format fmt, int64_t k, nb_il_geometry *g) {
    if ((unsigned)fmt >= NB_FMT_COUNT || !nb_formats[fmt].il_qbytes || k <= 0 || k % nb_formats[fmt].info.block) return 0;
    g->nb = k / nb_formats[fmt].info.block;
    g->sub = nb_formats[fmt].info.block / 32;
    // nf4 (il_fields 0): its 16 rows' absmax codes, a byte each, in place of the f16 fields
    g->scale_bytes = nb_formats[fmt].il_fields ? 32 * (size_t)nb_formats[fmt].il_fields : 16;
    g->code_bytes = 16 * (size_t)nb_formats[fmt].il_qbytes;
    g->per = g->scale_bytes >= 64 ? 1 : (int)(64 / g->scale_bytes);
    g->head = ((size_t)g->per * g->scale_bytes + 63) & ~(size_t)63;
    g->run = g->head + (size_t)g->per * g->code_bytes;
    const int64_t rest = g->nb % g->per;  // the last run's blocks when it is not whole
    g->group = (size_t)(g->nb / g->per) * g->run + (rest ? g->head + (size_t)rest * g->code_bytes : 0);
    g->field_at = nb_formats[fmt].il_field_at;
    g->code_at = g->field_at ? 0 : 2 * nb_formats[fmt].il_fields;
    return 1;
}

// Block dequantisers (dequant.c), GGML's dequantize_row_* bit for bit.
void nb_dequant_q8_0(const void *blocks, float *out, int64_t n_blocks);
void nb_dequant_q4_0(const void *blocks, float *out, int64_t n_blocks);
void nb_dequant_q4_1(const void *blocks, float *out, int64_t n_blocks);
void nb_dequant_q5_0(const void *blocks, float *out, int64_t n_blocks);
void nb_dequant_q5_1(const void *blocks, float *out, int64_t n_blocks);
void nb_dequant_q2_K(const void *blocks, float *out, int64_t n_blocks);
void nb_dequant_q3_K(const void *blocks, float *out, int64_t n_blocks);
void nb_dequant_q4_K(const void *blocks, float *out, int64_t n_blocks);
void nb_dequant_q5_K(const void *blocks, float *out, int64_t n_blocks);
void nb_dequant_q6_K(const void *blocks, float *out, int64_t n_blocks);
void nb_dequant_iq4_nl(const void *blocks, float *out, int64_t n_blocks);
void nb_dequant_iq4_xs(const void *blocks, float *out, int64_t n_blocks);

/// GGML's get_scale_min_k4: the 6-bit scale and min of sub-block j (< 8) of a q4_K/q5_K block.
static inline void nb_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
    }
}

// Kernels (matmul_q.c, matmul_k.c, simd_avx2.c, simd_avxvnni.c, simd_avx512.c, matmul_half.c, f32.c).
#define NB_DECLARE_KERNELS(NAME)                                                                         \
    void nb_mm_##NAME##_scalar(const void *, int64_t, int64_t, const float *, const void *, float *, int64_t, \
                               int64_t, int64_t, int64_t);                                               \
    void nb_mm_##NAME##_avx2(const void *, int64_t, int64_t, const float *, const void *, float *, int64_t,   \
                             int64_t, int64_t, int64_t);                                                 \
    void nb_mm_##NAME##_avxvnni(const void *, int64_t, int64_t, const float *, const void *, float *, int64_t,\
                                int64_t, int64_t, int64_t);                                              \
    void nb_mm_##NAME##_avx512(const void *, int64_t, int64_t, const float *, const void *, float *, int64_t, \
                               int64_t, int64_t, int64_t);
NB_DECLARE_KERNELS(q8)
NB_DECLARE_KERNELS(q4)
NB_DECLARE_KERNELS(nf4)
NB_DECLARE_KERNELS(q2)
NB_DECLARE_KERNELS(q4_0)
NB_DECLARE_KERNELS(q5_0)
NB_DECLARE_KERNELS(q5_1)
NB_DECLARE_KERNELS(q4_K)
NB_DECLARE_KERNELS(q5_K)
NB_DECLARE_KERNELS(q6_K)
void nb_mm_f32(const void *, int64_t, int64_t, const float *, const void *, float *, int64_t, int64_t, int64_t, int64_t);
void nb_mm_f16(const void *, int64_t, int64_t, const float *, const void *, float *, int64_t, int64_t, int64_t, int64_t);
void nb_mm_bf16(const void *, int64_t, int64_t, const float *, const void *, float *, int64_t, int64_t, int64_t, int64_t);

// ---- kernels shared between files --------------------------------------------------

void nb_matmul_half(nb_format fmt, const uint16_t *w, int64_t k, const float *x, float *y, int64_t n_tokens,
                    int64_t ld_y, int64_t row_begin, int64_t row_end);
