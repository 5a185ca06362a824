// Matrix products on GGML's K-quant blocks (q4_K, q5_K, q6_K: 256 weights per block) with
// activations quantised to nb_q8k blocks (256 int8, one f32 scale, the sums of each 16).
//
// As for the 32-block formats (matmul_q.c), each block gives an exact integer dot product
// and the f32 part has one fixed order, so the scalar path here and the SIMD paths
// (matmul_k_simd.h, for AVX2, AVX-VNNI and AVX-512 VNNI) agree bit for bit. Per (row, token):
//
//   acc = 0, accm = 0
//   for each 256-block b in order:
//       isum = Σ_s sc_s · Σ_{e in s} q_e · x_e     (exact int32; q6_K: q − 32 via the bsums)
//       imin = Σ_s mn_s · Σ_{e in s} x_e            (exact int32, from the bsums; q4_K, q5_K)
//       acc  = fma(dW_b · dX_b, (float)isum, acc)    (dW_b · dX_b rounded first)
//       accm = fma(dminW_b · dX_b, (float)imin, accm)
//   y = acc − accm
//
// where s runs over the block's sub-blocks (q4_K/q5_K: 8 of 32 with 6-bit scale sc and
// min mn; q6_K: 16 of 16 with int8 scale), q the unsigned codes (4, 5, 6 bits), dW/dminW
// the block's f16 d/dmin and dX the activation block's d. That is GGML's
// ggml_vec_dot_q4_K_q8_K & co. (ggml-cpu/arch/x86/quants.c) with one f32 order instead
// of eight lane partial sums.
#include "formats.h"
#include <math.h>

// isum and imin of one block against one activation block.
static int32_t dot_q4_K(const nb_block_q4_K *b, const nb_q8k *x, int32_t *imin) {
    int32_t isum = 0, m = 0;
    for (int c = 0; c < 4; c++) {
        uint8_t sc0, m0, sc1, m1;
        nb_scale_min_k4(2 * c, b->scales, &sc0, &m0);
        nb_scale_min_k4(2 * c + 1, b->scales, &sc1, &m1);
        int32_t s0 = 0, s1 = 0;
        for (int l = 0; l < 32; l++) {
            s0 += (b->qs[32 * c + l] & 0xF) * x->qs[64 * c + l];
            s1 += (b->qs[32 * c + l] >> 4) * x->qs[64 * c + 32 + l];
        }
        isum += sc0 * s0 + sc1 * s1;
        m += m0 * (x->bsums[4 * c] + x->bsums[4 * c + 1]) + m1 * (x->bsums[4 * c + 2] + x->bsums[4 * c + 3]);
    }
    *imin = m;
    return isum;
}

static int32_t dot_q5_K(const nb_block_q5_K *b, const nb_q8k *x, int32_t *imin) {
    int32_t isum = 0, m = 0;
    for (int c = 0; c < 4; c++) {
        uint8_t sc0, m0, sc1, m1;
        nb_scale_min_k4(2 * c, b->scales, &sc0, &m0);
        nb_scale_min_k4(2 * c + 1, b->scales, &sc1, &m1);
        int32_t s0 = 0, s1 = 0;
        for (int l = 0; l < 32; l++) {
            const int q0 = (b->qs[32 * c + l] & 0xF) | ((b->qh[l] >> (2 * c)) & 1) << 4;
            const int q1 = (b->qs[32 * c + l] >> 4) | ((b->qh[l] >> (2 * c + 1)) & 1) << 4;
            s0 += q0 * x->qs[64 * c + l];
            s1 += q1 * x->qs[64 * c + 32 + l];
        }
        isum += sc0 * s0 + sc1 * s1;
        m += m0 * (x->bsums[4 * c] + x->bsums[4 * c + 1]) + m1 * (x->bsums[4 * c + 2] + x->bsums[4 * c + 3]);
    }
    *imin = m;
    return isum;
}

static int32_t dot_q6_K(const nb_block_q6_K *b, const nb_q8k *x, int32_t *imin) {
    int32_t sub[16] = {0};
    for (int n = 0; n < 2; n++) {
        const uint8_t *ql = b->ql + 64 * n, *qh = b->qh + 32 * n;
        const int8_t *xq = x->qs + 128 * n;
        for (int l = 0; l < 32; l++) {
            const int q1 = (ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4;
            const int q2 = (ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4;
            const int q3 = (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4;
            const int q4 = (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4;
            sub[8 * n + l / 16 + 0] += q1 * xq[l];
            sub[8 * n + l / 16 + 2] += q2 * xq[l + 32];
            sub[8 * n + l / 16 + 4] += q3 * xq[l + 64];
            sub[8 * n + l / 16 + 6] += q4 * xq[l + 96];
        }
    }
    int32_t isum = 0;
    for (int s = 0; s < 16; s++) isum += b->scales[s] * (sub[s] - 32 * x->bsums[s]);
    *imin = 0;
    return isum;
}

static void matmul_k_scalar(nb_format fmt, const void *w, int64_t k, const nb_q8k *xq, float *y, int64_t n_tokens,
                            int64_t ld_y, int64_t r0, int64_t r1) {
    const int64_t nb = k / NB_QKK;
    const size_t bytes = (size_t)nb_formats[fmt].info.block_bytes;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w + (size_t)r * nb * bytes;
        for (int64_t t = 0; t < n_tokens; t++) {
            const nb_q8k *xt = xq + t * nb;
            float acc = 0, accm = 0;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *blk = row + (size_t)b * bytes;
                int32_t isum, imin;
                float dw, dmin;
                switch (fmt) {
                case NB_FMT_Q4_K: {
                    const nb_block_q4_K *q = (const nb_block_q4_K *)blk;
                    isum = dot_q4_K(q, xt + b, &imin);
                    dw = nb_h2f(q->d);
                    dmin = nb_h2f(q->dmin);
                    break;
                }
                case NB_FMT_Q5_K: {
                    const nb_block_q5_K *q = (const nb_block_q5_K *)blk;
                    isum = dot_q5_K(q, xt + b, &imin);
                    dw = nb_h2f(q->d);
                    dmin = nb_h2f(q->dmin);
                    break;
                }
                default: {
                    const nb_block_q6_K *q = (const nb_block_q6_K *)blk;
                    isum = dot_q6_K(q, xt + b, &imin);
                    dw = nb_h2f(q->d);
                    dmin = 0;
                    break;
                }
                }
                acc = fmaf(dw * xt[b].d, (float)isum, acc);
                if (fmt != NB_FMT_Q6_K) accm = fmaf(dmin * xt[b].d, (float)imin, accm);
            }
            y[t * ld_y + r] = acc - accm;
        }
    }
}

#define NB_K_ENTRIES(NAME, FMT)                                                                                 \
    void nb_mm_##NAME##_scalar(const void *w, int64_t rows, int64_t k, const float *x, const void *xq, float *y,   \
                               int64_t n_tokens, int64_t ld_y, int64_t r0, int64_t r1) {                         \
        (void)rows; (void)x;                                                                                    \
        matmul_k_scalar(FMT, w, k, xq, y, n_tokens, ld_y, r0, r1);                                              \
    }
NB_K_ENTRIES(q4_K, NB_FMT_Q4_K)
NB_K_ENTRIES(q5_K, NB_FMT_Q5_K)
NB_K_ENTRIES(q6_K, NB_FMT_Q6_K)

#if !defined(__x86_64__)
#define NB_K_FALLBACK(NAME)                                                                                     \
    void nb_mm_##NAME##_avx2(const void *w, int64_t rows, int64_t k, const float *x, const void *xq, float *y,     \
                             int64_t n_tokens, int64_t ld_y, int64_t r0, int64_t r1) {                           \
        nb_mm_##NAME##_scalar(w, rows, k, x, xq, y, n_tokens, ld_y, r0, r1);                                    \
    }                                                                                                           \
    void nb_mm_##NAME##_avxvnni(const void *w, int64_t rows, int64_t k, const float *x, const void *xq, float *y,  \
                                int64_t n_tokens, int64_t ld_y, int64_t r0, int64_t r1) {                        \
        nb_mm_##NAME##_scalar(w, rows, k, x, xq, y, n_tokens, ld_y, r0, r1);                                    \
    }                                                                                                           \
    void nb_mm_##NAME##_avx512(const void *w, int64_t rows, int64_t k, const float *x, const void *xq, float *y,   \
                               int64_t n_tokens, int64_t ld_y, int64_t r0, int64_t r1) {                         \
        nb_mm_##NAME##_scalar(w, rows, k, x, xq, y, n_tokens, ld_y, r0, r1);                                    \
    }
NB_K_FALLBACK(q4_K)
NB_K_FALLBACK(q5_K)
NB_K_FALLBACK(q6_K)
#endif
