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
//   PANEL_LOAD(p), PANEL_MIN (AVX2 only) 8 weights at p widened to a __m256, and the fewest
//                            tokens for which prefill_4xn runs 16-row panels in outer-product
//                            form first (below)
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

#ifdef PANEL_LOAD
// AVX2: 16-row panels in outer-product form, as BLIS-style GEMMs do. A panel's k slice is
// widened and transposed once (panel[16·l + i] = W[r + i][kb + l]), then each tile of 6 tokens
// takes per column l 2 panel vectors and 6 broadcast activations into 12 accumulators of 8
// rows × 1 token: no horizontal sums, and each activation loaded once per 16 rows instead of
// once per 4. The dot-product tile below (4 rows × 3 tokens) ran SmolLM2's down projection
// (k = 1536) at 74–78 GFLOP/s where its other shapes ran 85–91: x's rows 6 KiB apart share L1
// sets. The panels run every shape at 88–92 (one Zen 3 thread, 128 tokens, weights from
// memory; the FMA peak measured 100–103). In the model's 64-token prefill chunks, in cache:
// f16 94–96 against 90–93 for SmolLM2's shapes, 88–94 against 87–90 for k = 2048, 4096 and
// 5632; f32 89–92 against 77–86 for the latter. A panel's packing pays for itself over enough
// tokens only: at 48, f16 with k = 2048 ran 85 against 90, and f32 with k = 576 at 40 tokens
// 90 against 93.
#ifndef NB_PANEL_KC_MAX
#define NB_PANEL_KC_MAX 576  // columns per k slice: 36 KiB of panel (256 and 768 measured no faster)
#endif

VATTR static inline __attribute__((always_inline)) void TNAME(panel_tr8)(__m256 *r) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/// Columns 0...kc-1 (a multiple of 8) of the 16 rows at w (row stride k) into p, transposed.
VATTR static void TNAME(panel_pack)(const WT *w, int64_t k, int64_t kc, float *p) {
    for (int64_t l = 0; l < kc; l += 8)
        for (int h = 0; h < 2; h++) {
            __m256 v[8];
            for (int i = 0; i < 8; i++) v[i] = PANEL_LOAD(w + (8 * h + i) * k + l);
            TNAME(panel_tr8)(v);
            for (int j = 0; j < 8; j++) _mm256_store_ps(p + (l + j) * 16 + 8 * h, v[j]);
        }
}

/// Y[t, 0...15] (+)= Σ_l p[16·l...] · x[t·ldx + l] for tokens t < tn ≤ 6 (a constant).
VATTR static inline __attribute__((always_inline)) void TNAME(panel_tile)(const float *p, int64_t kc, const float *x,
                                                                          int64_t ldx, float *y, int64_t ld_y,
                                                                          const int tn, int accumulate) {
    __m256 acc[6][2];
    for (int t = 0; t < tn; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    for (int64_t l = 0; l < kc; l++) {
        const __m256 w0 = _mm256_load_ps(p + 16 * l), w1 = _mm256_load_ps(p + 16 * l + 8);
        for (int t = 0; t < tn; t++) {
            const __m256 b = _mm256_broadcast_ss(x + t * ldx + l);
            acc[t][0] = _mm256_fmadd_ps(w0, b, acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(w1, b, acc[t][1]);
        }
    }
    for (int t = 0; t < tn; t++) {
        float *o = y + t * ld_y;
        if (accumulate) {
            acc[t][0] = _mm256_add_ps(acc[t][0], _mm256_loadu_ps(o));
            acc[t][1] = _mm256_add_ps(acc[t][1], _mm256_loadu_ps(o + 8));
        }
        _mm256_storeu_ps(o, acc[t][0]);
        _mm256_storeu_ps(o + 8, acc[t][1]);
    }
}

/// Rows [r0, r0 + 16·⌊(r1 − r0)/16⌋) of Y for every token (k a multiple of 8), returning the
/// first row not done.
VATTR static int64_t TNAME(prefill_16xn)(const WT *w, const float *x, float *y, int64_t k, int64_t n_tokens,
                                         int64_t ld_y, int64_t r0, int64_t r1) {
    const int64_t r_end = r0 + (r1 - r0) / 16 * 16;
    if (r_end == r0) return r0;
    const int64_t slices = (k + NB_PANEL_KC_MAX - 1) / NB_PANEL_KC_MAX;
    const int64_t slice = ((k + slices - 1) / slices + 7) / 8 * 8;
    float panel[16 * NB_PANEL_KC_MAX] __attribute__((aligned(64)));
    // The next panel's rows are prefetched a share per token tile, while this one's tiles run:
    // the pack reads 16 rows from memory at once, and the hardware prefetchers left it to
    // stall (one Zen 3 thread, 64 tokens, weights from memory: f16 86 → 92 GFLOP/s for k =
    // 576, no change for k = 1536; SmolLM2 f16 prefill +4–5 %, f32 unchanged).
    const int64_t tiles = (n_tokens + 5) / 6;
    for (int64_t kb = 0; kb < k; kb += slice) {
        const int64_t kc = k - kb < slice ? k - kb : slice;
        const int acc = kb > 0;
        for (int64_t r = r0; r < r_end; r += 16) {
            TNAME(panel_pack)(w + r * k + kb, k, kc, panel);
            const WT *next = r + 16 < r_end ? w + (r + 16) * k + kb : kb + slice < k ? w + r0 * k + kb + slice : NULL;
            const int64_t lines = next ? ((int64_t)((uintptr_t)next & 63) + kc * (int64_t)sizeof(WT) + 63) / 64 : 0;
            const int64_t share = (16 * lines + tiles - 1) / tiles;  // lines of the 16 rows' segments
            const float *xs = x + kb;
            float *ys = y + r;
            int64_t t = 0, line = 0;
            for (; t + 6 <= n_tokens; t += 6) {
                for (int64_t e = line + share; line < e && line < 16 * lines; line++)
                    _mm_prefetch((const char *)(next + (line / lines) * k) + 64 * (line % lines), _MM_HINT_T1);
                TNAME(panel_tile)(panel, kc, xs + t * k, k, ys + t * ld_y, ld_y, 6, acc);
            }
            switch (n_tokens - t) {
            case 5: TNAME(panel_tile)(panel, kc, xs + t * k, k, ys + t * ld_y, ld_y, 5, acc); break;
            case 4: TNAME(panel_tile)(panel, kc, xs + t * k, k, ys + t * ld_y, ld_y, 4, acc); break;
            case 3: TNAME(panel_tile)(panel, kc, xs + t * k, k, ys + t * ld_y, ld_y, 3, acc); break;
            case 2: TNAME(panel_tile)(panel, kc, xs + t * k, k, ys + t * ld_y, ld_y, 2, acc); break;
            case 1: TNAME(panel_tile)(panel, kc, xs + t * k, k, ys + t * ld_y, ld_y, 1, acc); break;
            default: break;
            }
        }
    }
    return r_end;
}
#endif

// Rows [r0, r0 + 4·⌊(r1 − r0)/4⌋) of Y for every token (k a multiple of STEP), returning the
// first row not done. k is cut into slices of at most NB_TILE_KC_MAX columns so that a tile's
// 4 weight rows and RN activation rows stay in the L1 cache; later slices add to the first
// one's sums.
VATTR static int64_t TNAME(prefill_4xn)(const WT *w, const XT *x, float *y, int64_t k, int64_t n_tokens, int64_t ld_y,
                                        int64_t r0, int64_t r1) {
#ifdef PANEL_LOAD
    if (n_tokens >= PANEL_MIN) r0 = TNAME(prefill_16xn)(w, x, y, k, n_tokens, ld_y, r0, r1);  // the rows left: 4-row tiles
#endif
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
#ifdef PANEL_LOAD
#undef PANEL_LOAD
#undef PANEL_MIN
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
