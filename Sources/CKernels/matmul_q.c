// Matrix products on 32-element-block weights (q8, q4, nf4, q2, q4_0, q5_0, q5_1) with
// int8 activations (nb_q8a), and the nb_matmul entry point for every format.
//
// Each 32-weight block gives an exact integer dot product with its activation block;
// the f32 part has one fixed order, so the scalar and AVX2 kernels agree bit for bit:
//
//   acc = 0, summ = 0
//   for each 32-block b in order:
//       isum = Σ_{e<32} w_e · x_e                          (exact int32, |isum| < 2^24)
//       acc  = fma(dW_b · dX_b, (float)isum, acc)           (dW_b · dX_b rounded first)
//       summ = fma(mW_b, sX_b, summ)                        (q4, q2, q5_1: the min term)
//   y = acc + summ
//
// Weights per block: q8 w = qs, dW = d; q4 w = 0...15 with dW = d, mW = m; q2 w = 0...3
// with its 64-group's d and m; nf4 w = round(4096 · code value) (nb_nf4_i16), dW = absmax/4096;
// q4_0 w = q − 8, q5_0 w = q − 16 (signed, dW = d); q5_1 w = q (0...31), dW = d, mW = m.
// x = nb_q8a qs, dX = its d, sX = its s.
//
// The SIMD code is one template (matmul_q_simd.h) compiled three times: for AVX2
// (simd_avx2.c), for AVX2 with AVX-VNNI (simd_avxvnni.c: 256-bit vpdpbusd for the dot
// products) and for AVX-512 with VNNI (simd_avx512.c); every path makes the same exact int32
// block sums, so the same floats.
//
// Decode on AVX2 (and for q2 and nf4 with VNNI) puts 8 rows in the 8 lanes: each row's block
// dot is _mm256_maddubs_epi16 + _mm256_madd_epi16 (one vpdpbusd on AVX-512; signed
// weights use |w| and sign(x, w), which is also right for w = -128; nf4's int16 weights take
// two _mm256_madd_epi16 with the activations widened to int16), and 8 of them are reduced
// together (unpack/add, no horizontal adds) into one vector of 8 exact block sums, with the
// rows' scales gathered into a small table per 64 blocks. Prefill, and decode with VNNI
// (AVX-VNNI, AVX-512), put rows in the lanes too (8 in a ymm, 16 in a zmm on AVX-512) but transpose each row's
// weights once per block so that a lane's multiply-adds sum its own row's block: no
// reduction, one convert and FMA per 8 or 16 (row, token) pairs (matmul_q_simd.h, "rows in
// lanes"). nf4 prefill puts 8 tokens in the lanes and runs 2 rows at a time.
#include "matmul_q.h"
#include <math.h>

// ---- scalar reference ------------------------------------------------------------------------

// The 32 integer weights of block b of row r.
static void block_codes(const qmat *m, int64_t r, int64_t b, int *q) {
    const uint8_t *row = row_of(m, r);
    switch (m->fmt) {
    case NB_FMT_Q8:
        for (int e = 0; e < 32; e++) q[e] = ((const nb_block_q8 *)row)[b].qs[e];
        break;
    case NB_FMT_Q4: {
        const uint8_t *qs = ((const nb_block_q4 *)row)[b].qs;
        for (int e = 0; e < 16; e++) { q[e] = qs[e] & 0x0F; q[e + 16] = qs[e] >> 4; }
        break;
    }
    case NB_FMT_Q2: {
        const uint8_t *qs = ((const nb_block_q2 *)row)[b / 2].qs;
        const int s0 = 4 * (int)(b & 1);  // elements 32h...32h+31 are bits 4h...4h+3
        for (int e = 0; e < 16; e++) { q[e] = (qs[e] >> s0) & 3; q[e + 16] = (qs[e] >> (s0 + 2)) & 3; }
        break;
    }
    case NB_FMT_NF4: {
        const uint8_t *c = row + (size_t)(b / 2) * 32 + 16 * (b & 1);
        for (int e = 0; e < 16; e++) { q[e] = nb_nf4_i16[c[e] & 0x0F]; q[e + 16] = nb_nf4_i16[c[e] >> 4]; }
        break;
    }
    case NB_FMT_Q4_0: {
        const uint8_t *qs = ((const nb_block_q4_0 *)row)[b].qs;
        for (int e = 0; e < 16; e++) { q[e] = (qs[e] & 0x0F) - 8; q[e + 16] = (qs[e] >> 4) - 8; }
        break;
    }
    case NB_FMT_Q5_0:
    case NB_FMT_Q5_1: {
        const int q5_0 = m->fmt == NB_FMT_Q5_0;
        const uint8_t *qs = q5_0 ? ((const nb_block_q5_0 *)row)[b].qs : ((const nb_block_q5_1 *)row)[b].qs;
        uint32_t qh;
        memcpy(&qh, q5_0 ? ((const nb_block_q5_0 *)row)[b].qh : ((const nb_block_q5_1 *)row)[b].qh, 4);
        for (int e = 0; e < 16; e++) {
            q[e] = ((qs[e] & 0x0F) | ((qh >> e) & 1) << 4) - 16 * q5_0;
            q[e + 16] = ((qs[e] >> 4) | ((qh >> (e + 16)) & 1) << 4) - 16 * q5_0;
        }
        break;
    }
    default: break;
    }
}

void nb_matmul_q_scalar(const qmat *m, const nb_q8a *xq, float *y, int64_t n_tokens, int64_t ld_y,
                            int64_t row_begin, int64_t row_end) {
    const int has_min = fmt_has_min(m->fmt);
    for (int64_t r = row_begin; r < row_end; r++) {
        for (int64_t t = 0; t < n_tokens; t++) {
            const nb_q8a *xt = xq + t * m->nb;
            float acc = 0, summ = 0;
            for (int64_t b = 0; b < m->nb; b++) {
                int q[32], s = 0;
                float dw, mw;
                block_codes(m, r, b, q);
                NB_BLOCK_PARAMS(m, m->fmt, r, b, dw, mw, nb_h2f);
                for (int e = 0; e < 32; e++) s += q[e] * xt[b].qs[e];
                acc = fmaf(dw * xt[b].d, (float)s, acc);
                if (has_min) summ = fmaf(mw, xt[b].s, summ);
            }
            y[t * ld_y + r] = acc + summ;
        }
    }
}


// ---- the table's entries ------------------------------------------------------------------------

#if defined(__x86_64__)
// One entry per SIMD level: the 32-block template instantiated for that level.
#define NB_Q32_ENTRY(NAME, FMT, LEVEL)                                                                          \
    void nb_mm_##NAME##_##LEVEL(const void *w, int64_t rows, int64_t k, const float *x, const void *xq, float *y,  \
                                int64_t n_tokens, int64_t ld_y, int64_t r0, int64_t r1) {                        \
        (void)x;                                                                                                \
        const qmat m = qmat_of(FMT, w, rows, k);                                                                \
        nb_matmul_q_##LEVEL(&m, xq, y, n_tokens, ld_y, r0, r1);                                                 \
    }
#else
// No x86 SIMD: every level's entry is the scalar path.
#define NB_Q32_ENTRY(NAME, FMT, LEVEL)                                                                          \
    void nb_mm_##NAME##_##LEVEL(const void *w, int64_t rows, int64_t k, const float *x, const void *xq, float *y,  \
                                int64_t n_tokens, int64_t ld_y, int64_t r0, int64_t r1) {                        \
        nb_mm_##NAME##_scalar(w, rows, k, x, xq, y, n_tokens, ld_y, r0, r1);                                    \
    }
#endif
#define NB_Q32_SIMD(NAME, FMT) NB_Q32_ENTRY(NAME, FMT, avx2) NB_Q32_ENTRY(NAME, FMT, avxvnni) NB_Q32_ENTRY(NAME, FMT, avx512)

#define NB_Q32_ENTRIES(NAME, FMT)                                                                               \
    void nb_mm_##NAME##_scalar(const void *w, int64_t rows, int64_t k, const float *x, const void *xq, float *y,   \
                               int64_t n_tokens, int64_t ld_y, int64_t r0, int64_t r1) {                         \
        (void)x;                                                                                                \
        const qmat m = qmat_of(FMT, w, rows, k);                                                                \
        nb_matmul_q_scalar(&m, xq, y, n_tokens, ld_y, r0, r1);                                                  \
    }                                                                                                           \
    NB_Q32_SIMD(NAME, FMT)

NB_Q32_ENTRIES(q8, NB_FMT_Q8)
NB_Q32_ENTRIES(q4, NB_FMT_Q4)
NB_Q32_ENTRIES(nf4, NB_FMT_NF4)
NB_Q32_ENTRIES(q2, NB_FMT_Q2)
NB_Q32_ENTRIES(q4_0, NB_FMT_Q4_0)
NB_Q32_ENTRIES(q5_0, NB_FMT_Q5_0)
NB_Q32_ENTRIES(q5_1, NB_FMT_Q5_1)

void nb_mm_f32(const void *w, int64_t rows, int64_t k, const float *x, const void *xq, float *y, int64_t n_tokens,
               int64_t ld_y, int64_t r0, int64_t r1) {
    (void)rows; (void)xq;
    if (n_tokens == 1) nb_matvec_f32(w, x, y, k, r0, r1);
    else nb_matmul_f32(w, x, y, k, n_tokens, ld_y, r0, r1);
}

void nb_mm_f16(const void *w, int64_t rows, int64_t k, const float *x, const void *xq, float *y, int64_t n_tokens,
               int64_t ld_y, int64_t r0, int64_t r1) {
    (void)rows; (void)xq;
    nb_matmul_half(NB_FMT_F16, w, k, x, y, n_tokens, ld_y, r0, r1);
}

void nb_mm_bf16(const void *w, int64_t rows, int64_t k, const float *x, const void *xq, float *y, int64_t n_tokens,
                int64_t ld_y, int64_t r0, int64_t r1) {
    (void)rows; (void)xq;
    nb_matmul_half(NB_FMT_BF16, w, k, x, y, n_tokens, ld_y, r0, r1);
}

// ---- entry point ------------------------------------------------------------------------------

void nb_matmul(nb_format fmt, const void *w, int64_t rows, int64_t k, const float *x, const void *xq,
               float *y, int64_t n_tokens, int64_t ld_y, int64_t row_begin, int64_t row_end) {
    if (n_tokens <= 0 || row_begin >= row_end || nb_format_bytes(fmt, 1, k) == 0) return;
    const nb_format_row *row = &nb_formats[fmt];
    int level = nb_kernel_level();
    while (level > 0 && !row->matmul[level]) level--;
    row->matmul[level](w, rows, k, x, xq, y, n_tokens, ld_y, row_begin, row_end);
}
