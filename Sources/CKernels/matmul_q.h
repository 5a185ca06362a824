// Internal: what the 32-block kernels (matmul_q.c and its SIMD template matmul_q_simd.h)
// share: the matrix view, each format's block scales and the integer weights' kind.
#pragma once
#include "formats.h"

typedef struct {
    nb_format fmt;
    const uint8_t *w;
    int64_t k, nb;      // row length, 32-blocks per row
    size_t row_bytes;   // bytes of codes per row (nf4: k/2)
    nb_nf4_layout l;    // nf4
    float nf4_offset;
} qmat;

static inline qmat qmat_of(nb_format fmt, const void *w, int64_t rows, int64_t k) {
    qmat m = {fmt, w, k, k / NB_QK, nb_format_bytes(fmt, 1, k), {0}, 0};
    if (fmt == NB_FMT_NF4) {
        m.l = nb_nf4_layout_of(rows, k);
        m.row_bytes = (size_t)k / 2;
        memcpy(&m.nf4_offset, m.w + m.l.offset, 4);
    }
    return m;
}

/// Formats whose value has a min term (d·q + m): the kernels add mW·sX per block.
static inline int fmt_has_min(nb_format fmt) { return fmt == NB_FMT_Q4 || fmt == NB_FMT_Q2 || fmt == NB_FMT_Q5_1; }
/// Formats whose integer weights are signed int8 (the SIMD dot products use |w| and sign(x, w)).
static inline int fmt_signed(nb_format fmt) { return fmt == NB_FMT_Q8 || fmt == NB_FMT_Q4_0 || fmt == NB_FMT_Q5_0; }

static inline const uint8_t *row_of(const qmat *m, int64_t r) { return m->w + (size_t)r * m->row_bytes; }

// dW of nf4 64-block g of row r.
static inline float nf4_dw(const qmat *m, int64_t r, int64_t g) {
    const uint64_t b = (uint64_t)(r * (m->k / NB_QK64) + g);
    float scale;
    memcpy(&scale, m->w + m->l.scales + 4 * (size_t)(b / NB_NF4_DQ), 4);
    const float a = nb_dynamic_map[m->w[m->l.qabsmax + (size_t)b]] * scale;
    return (a + m->nf4_offset) * (1.0f / NB_NF4_SCALE);
}

// dW and mW of 32-block b of row r of a `fmt` matrix (`h2f` converts the f16 scales).
#define NB_BLOCK_PARAMS(m, fmt, r, b, D_, M_, h2f)                                          \
    do {                                                                                    \
        const uint8_t *row_ = row_of(m, r);                                                 \
        switch (fmt) {                                                                      \
        case NB_FMT_Q8: D_ = h2f(((const nb_block_q8 *)row_)[b].d); M_ = 0; break;          \
        case NB_FMT_Q4: D_ = h2f(((const nb_block_q4 *)row_)[b].d);                         \
                        M_ = h2f(((const nb_block_q4 *)row_)[b].m); break;                  \
        case NB_FMT_Q2: D_ = h2f(((const nb_block_q2 *)row_)[(b) / 2].d);                   \
                        M_ = h2f(((const nb_block_q2 *)row_)[(b) / 2].m); break;            \
        case NB_FMT_NF4: D_ = nf4_dw(m, r, (b) / 2); M_ = 0; break;                         \
        case NB_FMT_Q4_0: D_ = h2f(((const nb_block_q4_0 *)row_)[b].d); M_ = 0; break;      \
        case NB_FMT_Q5_0: D_ = h2f(((const nb_block_q5_0 *)row_)[b].d); M_ = 0; break;      \
        case NB_FMT_Q5_1: D_ = h2f(((const nb_block_q5_1 *)row_)[b].d);                     \
                          M_ = h2f(((const nb_block_q5_1 *)row_)[b].m); break;              \
        default: D_ = 0; M_ = 0; break;                                                     \
        }                                                                                   \
    } while (0)

// The SIMD paths (simd_avx2.c, simd_avxvnni.c, simd_avx512.c) of the 32-block formats.
void nb_matmul_q_avx2(const qmat *m, const nb_q8a *xq, float *y, int64_t n_tokens, int64_t ld_y, int64_t row_begin,
                      int64_t row_end);
void nb_matmul_q_avxvnni(const qmat *m, const nb_q8a *xq, float *y, int64_t n_tokens, int64_t ld_y,
                         int64_t row_begin, int64_t row_end);
void nb_matmul_q_avx512(const qmat *m, const nb_q8a *xq, float *y, int64_t n_tokens, int64_t ld_y,
                        int64_t row_begin, int64_t row_end);
void nb_matmul_q_scalar(const qmat *m, const nb_q8a *xq, float *y, int64_t n_tokens, int64_t ld_y,
                        int64_t row_begin, int64_t row_end);

// The SIMD paths of the interleaved layout (interleave.c; the "interleaved groups" part of
// matmul_q_simd.h and matmul_k_simd.h): q8, q4, q4_0, q5_0, q5_1, q2 and nf4 (xq: nb_q8a
// blocks), q4_K, q5_K and q6_K (nb_q8k).
void nb_matmul_il_avx2(nb_format fmt, const void *il, int64_t rows, int64_t k, const void *xq, float *y, int64_t n_tokens,
                       int64_t ld_y, int64_t row_begin, int64_t row_end);
void nb_matmul_il_avxvnni(nb_format fmt, const void *il, int64_t rows, int64_t k, const void *xq, float *y, int64_t n_tokens,
                          int64_t ld_y, int64_t row_begin, int64_t row_end);
void nb_matmul_il_avx512(nb_format fmt, const void *il, int64_t rows, int64_t k, const void *xq, float *y, int64_t n_tokens,
                         int64_t ld_y, int64_t row_begin, int64_t row_end);
