// f16 and bf16 weights (attention over an f16 KV cache: attention.c). f16 multiplies the f32
// activations; bf16 multiplies the activations rounded to bf16 (below: bf16 activations).
//
// The weights are widened to f32 in registers (F16C for f16, a 16-bit shift for bf16)
// and multiplied with FMA, or, for bf16 on AVX512-BF16, taken in pairs by vdpbf16ps. Decode
// runs one row at a time, 4 vectors of columns per step (bf16 on AVX-512: odd and even
// elements, below); prefill runs the 4-row tiles of prefill_tile_simd.h (on AVX2 from rows
// widened per k slice), or 2-row × 4-token tiles for the rows left and k not a multiple of
// the vector, so each widened weight vector serves several tokens.
// The scalar versions sum in 8 partial sums like nb_dot_f32's, without FMA: they agree
// with the SIMD ones to rounding, not bit for bit.
#include "formats.h"
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static inline float half_to_f32(int bf, uint16_t h) { return bf ? nb_bf2f(h) : nb_h2f(h); }

// ---- scalar ---------------------------------------------------------------------------------

static float dot_half_scalar(int bf, const uint16_t *w, const float *x, int64_t n) {
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += half_to_f32(bf, w[i + j]) * x[i + j];
    float sum = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++) sum += half_to_f32(bf, w[i]) * x[i];
    return sum;
}

// ---- AVX2 + FMA + F16C ----------------------------------------------------------------------
#if defined(__x86_64__)
#include "x86_simd.h"
#include "simd_reduce.h"

#define NB_INLINE static inline __attribute__((always_inline))

NB_AVX2 NB_INLINE float hsum8(__m256 v) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

// 8 weights widened to f32.
NB_AVX2 NB_INLINE __m256 load8(int bf, const uint16_t *p) {
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (bf) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

// Decode: one row at a time, 4·VW columns a step into 4 accumulators. One row streamed at a
// time keeps decode at the memory's pace: 4 rows interleaved (4 streams per thread) read
// 25–27 GB/s where one row reads 42–43 GB/s, as f32 does (Zen 5, one thread, a 65536 × 576
// matrix from memory; f16 21 → 33 and bf16 18 → 36 GB/s on AVX2). One definition per vector
// width (AVX2 here, AVX-512 below).
#define NB_DEFINE_HALF_ROW(NAME, ATTR, V, VW, LOAD, ZERO, LOADU, FMADD, ADD, HSUM)                            \
    ATTR NB_INLINE void NAME(int bf, const uint16_t *w, int64_t k, const float *x, float *y, int64_t r) {     \
        const uint16_t *row = w + r * k;                                                                       \
        V a[4] = {ZERO(), ZERO(), ZERO(), ZERO()};                                                             \
        int64_t c = 0;                                                                                         \
        for (; c + 4 * VW <= k; c += 4 * VW)                                                                   \
            for (int i = 0; i < 4; i++) a[i] = FMADD(LOAD(bf, row + c + i * VW), LOADU(x + c + i * VW), a[i]);\
        for (; c + VW <= k; c += VW) a[0] = FMADD(LOAD(bf, row + c), LOADU(x + c), a[0]);                      \
        float s = HSUM(ADD(ADD(a[0], a[1]), ADD(a[2], a[3])));                                                 \
        for (; c < k; c++) s += half_to_f32(bf, row[c]) * x[c];                                                \
        y[r] = s;                                                                                              \
    }
NB_DEFINE_HALF_ROW(matvec_half_row, NB_AVX2, __m256, 8, load8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_fmadd_ps,
                   _mm256_add_ps, hsum8)

// Prefill tile: rows r...r+R-1 (R ≤ 2) × tokens t...t+T-1 (T ≤ 4), VW columns a step;
// one definition per vector width (AVX2 here, AVX-512 below).
#define NB_DEFINE_HALF_TILE(NAME, ATTR, V, VW, LOAD, ZERO, LOADU, FMADD, HSUM)                                \
    ATTR NB_INLINE void NAME(int bf, const uint16_t *w, int64_t k, const float *x, float *y, int64_t ld_y,    \
                             int64_t r, int64_t t, const int R, const int T) {                                \
        V acc[2][4];                                                                                           \
        for (int i = 0; i < R; i++)                                                                            \
            for (int j = 0; j < T; j++) acc[i][j] = ZERO();                                                    \
        int64_t c = 0;                                                                                         \
        for (; c + VW <= k; c += VW) {                                                                         \
            V wv[2];                                                                                           \
            for (int i = 0; i < R; i++) wv[i] = LOAD(bf, w + (r + i) * k + c);                                 \
            for (int j = 0; j < T; j++) {                                                                      \
                const V xv = LOADU(x + (t + j) * k + c);                                                       \
                for (int i = 0; i < R; i++) acc[i][j] = FMADD(wv[i], xv, acc[i][j]);                           \
            }                                                                                                  \
        }                                                                                                      \
        for (int i = 0; i < R; i++)                                                                            \
            for (int j = 0; j < T; j++) {                                                                      \
                float s = HSUM(acc[i][j]);                                                                     \
                for (int64_t cc = c; cc < k; cc++) s += half_to_f32(bf, w[(r + i) * k + cc]) * x[(t + j) * k + cc]; \
                y[(t + j) * ld_y + r + i] = s;                                                                 \
            }                                                                                                  \
    }
NB_DEFINE_HALF_TILE(tile_half, NB_AVX2, __m256, 8, load8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_fmadd_ps, hsum8)

// Rows r0..r1 in pairs × the tokens in fours, with TILE (w, k, x, y, n_tokens, ld_y, r0,
// r1 and bf in scope).
#define NB_HALF_TILES(TILE)                                                                                    \
    for (int64_t r = r0; r < r1; r += 2) {                                                                     \
        const int two = r + 2 <= r1;                                                                           \
        int64_t t = 0;                                                                                         \
        for (; t + 4 <= n_tokens; t += 4)                                                                      \
            if (two) TILE(bf, w, k, x, y, ld_y, r, t, 2, 4); else TILE(bf, w, k, x, y, ld_y, r, t, 1, 4);      \
        switch ((int)(n_tokens - t) + 4 * !two) {                                                              \
        case 1: TILE(bf, w, k, x, y, ld_y, r, t, 2, 1); break;                                                 \
        case 2: TILE(bf, w, k, x, y, ld_y, r, t, 2, 2); break;                                                 \
        case 3: TILE(bf, w, k, x, y, ld_y, r, t, 2, 3); break;                                                 \
        case 5: TILE(bf, w, k, x, y, ld_y, r, t, 1, 1); break;                                                 \
        case 6: TILE(bf, w, k, x, y, ld_y, r, t, 1, 2); break;                                                 \
        case 7: TILE(bf, w, k, x, y, ld_y, r, t, 1, 3); break;                                                 \
        default: break;                                                                                        \
        }                                                                                                      \
    }

#define NB_DEFINE_HALF(NAME, BF)                                                                               \
    NB_AVX2 static void NAME(const uint16_t *w, int64_t k, const float *x, float *y, int64_t n_tokens,         \
                             int64_t ld_y, int64_t r0, int64_t r1) {                                           \
        const int bf = BF;                                                                                     \
        if (n_tokens == 1) {                                                                                   \
            for (int64_t r = r0; r < r1; r++) matvec_half_row(bf, w, k, x, y, r);                              \
            return;                                                                                            \
        }                                                                                                      \
        NB_HALF_TILES(tile_half)                                                                               \
    }
NB_DEFINE_HALF(matmul_f16_avx2, 0)
NB_DEFINE_HALF(matmul_bf16_avx2, 1)

// x rounded to bf16 and back to f32, 8 at a time (nb_f2bf's arithmetic, as round_to_bf16_avx512).
NB_AVX2 static void round_through_bf16_avx2(const float *x, float *out, int64_t n) {
    const __m256i bias = _mm256_set1_epi32(0x7FFF), one = _mm256_set1_epi32(1), high = _mm256_set1_epi32((int)0xFFFF0000u);
    const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF), inf = _mm256_set1_epi32(0x7F800000);
    const __m256i quiet = _mm256_set1_epi32(0x400000);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i b = _mm256_loadu_si256((const __m256i *)(x + i));
        const __m256i r = _mm256_and_si256(_mm256_add_epi32(_mm256_add_epi32(b, bias), _mm256_and_si256(_mm256_srli_epi32(b, 16), one)), high);
        const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(b, abs_mask), inf);
        const __m256i q = _mm256_or_si256(_mm256_and_si256(b, high), quiet);
        _mm256_storeu_si256((__m256i *)(out + i), _mm256_blendv_epi8(r, q, nan));
    }
    for (; i < n; i++) out[i] = nb_bf2f(nb_f2bf(x[i]));
}


// ---- AVX-512: bf16 decode without a lane-crossing widen ---------------------------------------
// A 512-bit load holds 32 bf16 weights as 16 32-bit words: element 2i in the low half of
// word i, 2i+1 in the high half. The high half is already an f32 (AND with 0xFFFF0000),
// the low half becomes one by a 16-bit shift; multiplied with the activations split the
// same way (even and odd positions, once per call), that is one load, two integer ops and
// two FMAs per 32 weights, with the activations in f32 as in every other path.

#define NB_BF16_SPLIT_MAX 16384

NB_AVX512 static void matvec_bf16_avx512(const uint16_t *w, int64_t k, const float *x, float *y, int64_t r0, int64_t r1) {
    float xe[NB_BF16_SPLIT_MAX / 2] __attribute__((aligned(64))), xo[NB_BF16_SPLIT_MAX / 2] __attribute__((aligned(64)));
    const int64_t kk = k / 32 * 32;
    for (int64_t i = 0; i < kk / 2; i++) { xe[i] = x[2 * i]; xo[i] = x[2 * i + 1]; }
    const __m512i high = _mm512_set1_epi32((int)0xFFFF0000u);
    // A row at a time (see NB_DEFINE_HALF_ROW), 64 columns a step into 4 accumulators.
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *row = w + r * k;
        __m512 ae[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()}, ao[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
        int64_t c = 0;
        for (; c + 64 <= kk; c += 64)
            for (int i = 0; i < 2; i++) {
                const __m512i v = _mm512_loadu_si512((const void *)(row + c + 32 * i));
                ae[i] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), _mm512_load_ps(xe + c / 2 + 16 * i), ae[i]);
                ao[i] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, high)), _mm512_load_ps(xo + c / 2 + 16 * i), ao[i]);
            }
        for (; c < kk; c += 32) {
            const __m512i v = _mm512_loadu_si512((const void *)(row + c));
            ae[0] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), _mm512_load_ps(xe + c / 2), ae[0]);
            ao[0] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, high)), _mm512_load_ps(xo + c / 2), ao[0]);
        }
        float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(ae[0], ao[0]), _mm512_add_ps(ae[1], ao[1])));
        for (c = kk; c < k; c++) s += nb_bf2f(row[c]) * x[c];
        y[r] = s;
    }
}

// ---- AVX-512: f16/bf16 prefill tiles -----------------------------------------------------------
// The AVX2 tile with 16 columns a step: 2 rows × 4 tokens, each widened weight vector
// serving 4 tokens.

NB_AVX512 NB_INLINE __m512 load16(int bf, const uint16_t *p) {
    const __m256i h = _mm256_loadu_si256((const __m256i *)p);
    if (bf) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

NB_DEFINE_HALF_ROW(matvec_half_row_avx512, NB_AVX512, __m512, 16, load16, _mm512_setzero_ps, _mm512_loadu_ps,
                   _mm512_fmadd_ps, _mm512_add_ps, _mm512_reduce_add_ps)

// f16 decode on AVX-512: a row at a time, 64 columns a step, each 16 widened by one vcvtph2ps.
NB_AVX512 static void matvec_f16_avx512(const uint16_t *w, int64_t k, const float *x, float *y, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) matvec_half_row_avx512(0, w, k, x, y, r);
}

NB_DEFINE_HALF_TILE(tile_half_avx512, NB_AVX512, __m512, 16, load16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_fmadd_ps,
                    _mm512_reduce_add_ps)

NB_AVX512 static void prefill_half_avx512(int bf, const uint16_t *w, int64_t k, const float *x, float *y, int64_t n_tokens,
                                          int64_t ld_y, int64_t r0, int64_t r1) {
    NB_HALF_TILES(tile_half_avx512)
}

#endif

#if defined(__x86_64__)
// ---- AVX512-BF16: bf16 weights × bf16 activations with vdpbf16ps -------------------------------
// One vdpbf16ps multiplies 32 bf16 pairs and adds each pair's two products to an f32 lane:
// 32 multiply-adds an instruction where FMA does 16, at the same rate (Zen 5: 250 against
// 135 G multiply-adds/s, one thread). The products of two bf16 are exact in f32; only the
// sums round, as in every other path (denormal inputs count as zero, which no activation
// the engine makes comes near).

NB_AVX512BF16 NB_INLINE __m512 dp_bf16(__m512 acc, const uint16_t *w, const uint16_t *x) {
    return _mm512_dpbf16_ps(acc, NB_M512BH(_mm512_loadu_si512((const void *)w)), NB_M512BH(_mm512_loadu_si512((const void *)x)));
}

// Decode (and rows a tile leaves): one row at a time, 128 columns a step into 4 accumulators;
// k a multiple of 32.
NB_AVX512BF16 NB_INLINE float dot_bf16_dp(const uint16_t *w, const uint16_t *x, int64_t k) {
    __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t c = 0;
    for (; c + 128 <= k; c += 128)
        for (int i = 0; i < 4; i++) a[i] = dp_bf16(a[i], w + c + 32 * i, x + c + 32 * i);
    for (; c < k; c += 32) a[0] = dp_bf16(a[0], w + c, x + c);
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])));
}

#endif

#if defined(__x86_64__)
// ---- prefill: the register tile of prefill_tile_simd.h (4 rows × 3 tokens on AVX2, bf16
// only; 4 × 6 on AVX-512: 140 → 252 GFLOP/s for f16 and bf16, one thread), each widened weight
// vector serving every token of the tile; k a multiple of VW.
#define NB_TILE_KC_MAX 768
// AVX2: the 4 rows' slice widened into an f32 buffer first (WPACK), then the f32 tile: f16's
// vcvtph2ps once per weight per slice instead of once per 3 tokens (one thread, SmolLM2's
// shapes × 128 tokens, Zen 5: f16 104–106 → 132–134 GFLOP/s, f32's rate; bf16 123–126 →
// 126–129). (Widening in registers, f16's 4 × 3 tile had run at 67–77.)
NB_AVX2 static inline void widen_half_avx2(int bf, const uint16_t *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i += 8) _mm256_storeu_ps(dst + i, load8(bf, src + i));  // n: a multiple of 8
}
#define NB_TILE_AVX512 0
#define WT uint16_t
#define WPACK(src, dst, n) widen_half_avx2(1, src, dst, n)
#define PANEL_LOAD(p) load8(1, p)
#define PANEL_MIN 64
#define TNAME(x) x##_bf16_avx2
#include "prefill_tile_simd.h"
#define NB_TILE_AVX512 0
#define WT uint16_t
#define WPACK(src, dst, n) widen_half_avx2(0, src, dst, n)
#define PANEL_LOAD(p) load8(0, p)
#define PANEL_MIN 64
#define TNAME(x) x##_f16_avx2
#include "prefill_tile_simd.h"
#define NB_TILE_AVX512 1
#define WT uint16_t
#define WLOAD(p) load16(0, p)
#define TNAME(x) x##_f16_avx512
#include "prefill_tile_simd.h"
#define NB_TILE_AVX512 1
#define WT uint16_t
#define WLOAD(p) load16(1, p)
#define TNAME(x) x##_bf16_avx512
#include "prefill_tile_simd.h"
// bf16 × bf16 on AVX512-BF16: 32 columns a step, one vdpbf16ps per (row, token) of the tile.
#define NB_TILE_AVX512 1
#define WT uint16_t
#define XT uint16_t
#define STEP 32
#define WLOAD(p) _mm512_castsi512_ps(_mm512_loadu_si512((const void *)(p)))
#define XLOAD(p) _mm512_castsi512_ps(_mm512_loadu_si512((const void *)(p)))
#define MAC(a, b, acc) _mm512_dpbf16_ps(acc, NB_M512BH(a), NB_M512BH(b))
#define TATTR NB_AVX512BF16
#define TNAME(x) x##_bf16dp_avx512
#include "prefill_tile_simd.h"

// f32 → bf16, rounded to nearest even, nb_f2bf's integer arithmetic 16 at a time (so every
// path rounds alike; vcvtneps2bf16 would flush denormals): x + 0x7FFF + bit 16, NaN quieted.
NB_AVX512 static void round_to_bf16_avx512(const float *x, uint16_t *out, int64_t n) {
    const __m512i bias = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1);
    const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF), inf = _mm512_set1_epi32(0x7F800000), quiet = _mm512_set1_epi32(0x40);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i b = _mm512_loadu_si512((const void *)(x + i));
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(b, bias), _mm512_and_si512(_mm512_srli_epi32(b, 16), one)), 16);
        const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(b, abs_mask), inf);
        r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(b, 16), quiet);
        _mm256_storeu_si256((__m256i *)(out + i), _mm512_cvtepi32_epi16(r));
    }
    for (; i < n; i++) out[i] = nb_f2bf(x[i]);
}

NB_AVX512BF16 static void matmul_bf16_dp(const uint16_t *w, int64_t k, const uint16_t *x, float *y, int64_t n_tokens,
                                         int64_t ld_y, int64_t r0, int64_t r1) {
    if (n_tokens > 1) r0 = prefill_4xn_bf16dp_avx512(w, x, y, k, n_tokens, ld_y, r0, r1);
    for (int64_t r = r0; r < r1; r++)
        for (int64_t t = 0; t < n_tokens; t++) y[t * ld_y + r] = dot_bf16_dp(w + r * k, x + t * k, k);
}

#endif

// ---- entry points ----------------------------------------------------------------------------

/// f16, or bf16 with the activations in f32 (already rounded to bf16 by matmul_bf16).
static void matmul_half(int bf, const uint16_t *w, int64_t k, const float *x, float *y, int64_t n_tokens,
                        int64_t ld_y, int64_t row_begin, int64_t row_end) {
#if defined(__x86_64__)
    if (nb_active_isa() == NB_ISA_AVX512) {
        if (bf && n_tokens == 1 && k <= NB_BF16_SPLIT_MAX) {
            matvec_bf16_avx512(w, k, x, y, row_begin, row_end);
            return;
        }
        if (!bf && n_tokens == 1) {
            matvec_f16_avx512(w, k, x, y, row_begin, row_end);
            return;
        }
        if (n_tokens > 1) {
            if (k % 16 == 0)
                row_begin = bf ? prefill_4xn_bf16_avx512(w, x, y, k, n_tokens, ld_y, row_begin, row_end)
                               : prefill_4xn_f16_avx512(w, x, y, k, n_tokens, ld_y, row_begin, row_end);
            prefill_half_avx512(bf, w, k, x, y, n_tokens, ld_y, row_begin, row_end);  // the rows left
            return;
        }
    }
    if (nb_use_avx2()) {
        if (n_tokens > 1 && k % 8 == 0)
            row_begin = bf ? prefill_4xn_bf16_avx2(w, x, y, k, n_tokens, ld_y, row_begin, row_end)
                           : prefill_4xn_f16_avx2(w, x, y, k, n_tokens, ld_y, row_begin, row_end);
        if (bf) matmul_bf16_avx2(w, k, x, y, n_tokens, ld_y, row_begin, row_end);
        else matmul_f16_avx2(w, k, x, y, n_tokens, ld_y, row_begin, row_end);
        return;
    }
#endif
    for (int64_t r = row_begin; r < row_end; r++)
        for (int64_t t = 0; t < n_tokens; t++) y[t * ld_y + r] = dot_half_scalar(bf, w + r * k, x + t * k, k);
}

// ---- bf16 activations ----------------------------------------------------------------------
// bf16 weights multiply the activations rounded to bf16 (to nearest even) on every path, with
// f32 sums: what llama.cpp does with bf16 weights and what transformers' bf16 matmuls do, so
// that AVX512-BF16 can take the products in pairs (vdpbf16ps: prefill 1.8x the FMA tile's
// rate). Without it, the rounded activations go to the f32 kernels above. The rounding is done
// per call, up to NB_BF16_CHUNK tokens at a time, into a buffer of the calling thread: n·k
// conversions against rows·n·k multiply-adds.

#define NB_BF16_CHUNK 96  // the most tokens rounded at a time: 96 × k activations per thread

static _Thread_local int bf16_dot_allowed = 1;  // per thread, as nb_force_isa

int nb_bf16_dot_products(int allowed) {
    const int previous = bf16_dot_allowed;
    bf16_dot_allowed = allowed ? 1 : 0;
    return previous;
}

int nb_bf16_dot_products_active(void) {
#if defined(__x86_64__)
    return nb_active_isa() == NB_ISA_AVX512 && bf16_dot_allowed &&
           (nb_cpu_flags() & NB_CPU_AVX512BF16);
#else
    return 0;
#endif
}

/// A buffer of at least `bytes` for this thread (kept for its next call).
static void *thread_scratch(size_t bytes) {
    static _Thread_local void *buffer;
    static _Thread_local size_t capacity;
    if (bytes > capacity) {
        free(buffer);
        capacity = (bytes + 4095) / 4096 * 4096;
        buffer = aligned_alloc(64, capacity);
        if (!buffer) {
            fprintf(stderr, "nibble: out of memory for %zu bytes of bf16 activations\n", capacity);
            abort();
        }
    }
    return buffer;
}

static void matmul_bf16(const uint16_t *w, int64_t k, const float *x, float *y, int64_t n_tokens, int64_t ld_y,
                        int64_t r0, int64_t r1) {
    const int dot = k % 32 == 0 && nb_bf16_dot_products_active();
    // Chunks of about equal size, in whole 6-token tiles where possible (128 tokens: 66 + 62,
    // not 96 + 32 with its short tail): one thread's SmolLM2 shapes × 128 tokens, 435–439
    // GFLOP/s in 48-token chunks, 460–482 in one.
    const int64_t chunks = (n_tokens + NB_BF16_CHUNK - 1) / NB_BF16_CHUNK;
    const int64_t size = ((n_tokens + chunks - 1) / chunks + 5) / 6 * 6;
    for (int64_t t0 = 0; t0 < n_tokens; t0 += size) {
        const int64_t n = n_tokens - t0 < size ? n_tokens - t0 : size;
        const float *xt = x + t0 * k;
        float *yt = y + t0 * ld_y;
#if defined(__x86_64__)
        if (dot) {
            uint16_t *xb = thread_scratch((size_t)(n * k) * sizeof(uint16_t));
            round_to_bf16_avx512(xt, xb, n * k);
            matmul_bf16_dp(w, k, xb, yt, n, ld_y, r0, r1);
            continue;
        }
#endif
        float *xr = thread_scratch((size_t)(n * k) * sizeof(float));
#if defined(__x86_64__)
        if (nb_use_avx2()) round_through_bf16_avx2(xt, xr, n * k);
        else
#endif
            for (int64_t i = 0; i < n * k; i++) xr[i] = nb_bf2f(nb_f2bf(xt[i]));
        matmul_half(1, w, k, xr, yt, n, ld_y, r0, r1);
    }
    (void)dot;
}

void nb_matmul_half(nb_format fmt, const uint16_t *w, int64_t k, const float *x, float *y, int64_t n_tokens,
                    int64_t ld_y, int64_t row_begin, int64_t row_end) {
    if (fmt == NB_FMT_BF16) matmul_bf16(w, k, x, y, n_tokens, ld_y, row_begin, row_end);
    else matmul_half(0, w, k, x, y, n_tokens, ld_y, row_begin, row_end);
}
