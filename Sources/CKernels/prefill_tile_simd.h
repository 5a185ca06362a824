// The prefill register tile, written once for any vector width and weight type: f32.c and
// matmul_half.c include it once per (instruction set, weight type) with
//   NB_TILE_AVX512           0 (AVX2: 8 lanes, 4 rows × 3 tokens) or 1 (16 lanes, 4 × 6),
//   WT, WLOAD(p)             the weight element type and VW weights at p widened to floats,
//   TNAME(x)                 x with the instantiation's suffix
// defined (and NB_TILE_KC_MAX, the columns of one k slice), and undefines them. Optional, for
// products that are not one FMA per lane (bf16 pairs with vdpbf16ps):
//   XT, XLOAD(p)             the activation element type and one vector of them (float, V_LOADU)
//   MAC(a, b, acc)           acc + a·b lane by lane (V_FMADD)
//   STEP                     the columns one vector covers (VW)
//   TATTR                    the target attribute (that of the vector width)
//   WPACK(src, dst, n)       widen n weights to floats first, per k slice and 4 rows, into a
//                            buffer the tiles then read as f32 (WLOAD is not used): the
//                            widening is done once per slice, not once per token group
// No include guard: it is meant to be included repeatedly.
//
// Y[t, r] for a tile of 4 rows × rn ≤ RN tokens in dot-product form, as llamafile's tinyBLAS
// does: each step loads rn activation vectors, then widens the 4 rows' weight vectors one at
// a time and does 4·rn FMAs into 4·rn accumulators (24 + 6 + 1 of AVX-512's 32 registers).
// Called with constant rn, so it unrolls into straight register code. The 4 rows' sums of a
// token are reduced together into one 4-float store.

#if NB_TILE_AVX512
#define V __m512
#define VW 16
#define VATTR_DEFAULT NB_AVX512
#define V_ZERO _mm512_setzero_ps
#define V_LOADU _mm512_loadu_ps
#define V_FMADD _mm512_fmadd_ps
#define V_REDUCE4 nb_reduce4_avx512
#define RN 6
#else
#define V __m256
#define VW 8
#define VATTR_DEFAULT NB_AVX2
#define V_ZERO _mm256_setzero_ps
#define V_LOADU _mm256_loadu_ps
#define V_FMADD _mm256_fmadd_ps
#define V_REDUCE4 nb_reduce4_avx2
#define RN 3
#endif
#ifndef XT
#define XT float
#endif
#ifndef XLOAD
#define XLOAD(p) V_LOADU(p)
#endif
#ifndef MAC
#define MAC(a, b, acc) V_FMADD(a, b, acc)
#endif
#ifndef STEP
#define STEP VW
#endif
#ifdef WPACK
#define TW float
#define TWLOAD(p) V_LOADU(p)
#else
#define TW WT
#define TWLOAD(p) WLOAD(p)
#endif
#ifdef TATTR
#define VATTR TATTR
#else
#define VATTR VATTR_DEFAULT
#endif

VATTR static inline __attribute__((always_inline)) void TNAME(tile_4xn)(const TW *w, int64_t ldw, const XT *x, int64_t ld,
                                                                        float *y, int64_t kc, int64_t ld_y, const int rn,
                                                                        int accumulate) {
    V acc[6][4];
    for (int j = 0; j < rn; j++)
        for (int i = 0; i < 4; i++) acc[j][i] = V_ZERO();
    for (int64_t l = 0; l < kc; l += STEP) {
        V b[6];
        for (int j = 0; j < rn; j++) b[j] = XLOAD(x + j * ld + l);
        for (int i = 0; i < 4; i++) {
            const V a = TWLOAD(w + i * ldw + l);
            for (int j = 0; j < rn; j++) acc[j][i] = MAC(a, b[j], acc[j][i]);
        }
    }
    for (int j = 0; j < rn; j++) {
        const __m128 sum = V_REDUCE4(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
        _mm_storeu_ps(y + j * ld_y, accumulate ? _mm_add_ps(_mm_loadu_ps(y + j * ld_y), sum) : sum);
    }
}

// The last n < RN tokens of a 4-row tile.
VATTR static void TNAME(tail_4xn)(const TW *w, int64_t ldw, const XT *x, int64_t k, float *y, int64_t kc, int64_t ld_y,
                                  int64_t n, int accumulate) {
    switch (n) {
    case 5: if (RN > 5) TNAME(tile_4xn)(w, ldw, x, k, y, kc, ld_y, 5, accumulate); break;
    case 4: if (RN > 4) TNAME(tile_4xn)(w, ldw, x, k, y, kc, ld_y, 4, accumulate); break;
    case 3: if (RN > 3) TNAME(tile_4xn)(w, ldw, x, k, y, kc, ld_y, 3, accumulate); break;
    case 2: TNAME(tile_4xn)(w, ldw, x, k, y, kc, ld_y, 2, accumulate); break;
    case 1: TNAME(tile_4xn)(w, ldw, x, k, y, kc, ld_y, 1, accumulate); break;
    default: break;
    }
}

// Rows [r0, r0 + 4·⌊(r1 − r0)/4⌋) of Y for every token (k a multiple of STEP), returning the
// first row not done. k is cut into slices of at most NB_TILE_KC_MAX columns so that a tile's
// 4 weight rows and RN activation rows stay in the L1 cache; later slices add to the first
// one's sums.
VATTR static int64_t TNAME(prefill_4xn)(const WT *w, const XT *x, float *y, int64_t k, int64_t n_tokens, int64_t ld_y,
                                        int64_t r0, int64_t r1) {
    const int64_t r_end = r0 + (r1 - r0) / 4 * 4;
    const int64_t slices = (k + NB_TILE_KC_MAX - 1) / NB_TILE_KC_MAX;
    const int64_t slice = ((k + slices - 1) / slices + STEP - 1) / STEP * STEP;
#ifdef WPACK
    float packed[4 * NB_TILE_KC_MAX] __attribute__((aligned(64)));
#endif
    for (int64_t kb = 0; kb < k; kb += slice) {
        const int64_t kc = k - kb < slice ? k - kb : slice;
        for (int64_t r = r0; r < r_end; r += 4) {
#ifdef WPACK
            for (int i = 0; i < 4; i++) WPACK(w + (r + i) * k + kb, packed + i * kc, kc);
            const TW *wr = packed;
            const int64_t ldw = kc;
#else
            const TW *wr = w + r * k + kb;
            const int64_t ldw = k;
#endif
            int64_t t = 0;
            for (; t + RN <= n_tokens; t += RN)
                TNAME(tile_4xn)(wr, ldw, x + t * k + kb, k, y + t * ld_y + r, kc, ld_y, RN, kb > 0);
            TNAME(tail_4xn)(wr, ldw, x + t * k + kb, k, y + t * ld_y + r, kc, ld_y, n_tokens - t, kb > 0);
        }
    }
    return r_end;
}

#undef V
#undef VW
#undef VATTR
#undef VATTR_DEFAULT
#undef XT
#undef XLOAD
#undef MAC
#undef STEP
#undef TATTR
#undef TW
#undef TWLOAD
#ifdef WPACK
#undef WPACK
#endif
#undef V_ZERO
#undef V_LOADU
#undef V_FMADD
#undef V_REDUCE4
#undef RN
#undef NB_TILE_AVX512
#undef WT
#undef WLOAD
#undef TNAME
