// Internal: horizontal sums of four vectors at once, for the kernels that reduce several dot
// products together (prefill tiles, attention scores).
#pragma once
#if defined(__x86_64__)
#include <immintrin.h>
#include "dispatch.h"

/// An __m128 of the sums of a, b, c and d.
NB_AVX2 static inline __attribute__((always_inline)) __m128 nb_reduce4_avx2(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

NB_AVX512 static inline __attribute__((always_inline)) __m256 nb_halves_avx512(__m512 v) {
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

NB_AVX512 static inline __attribute__((always_inline)) __m128 nb_reduce4_avx512(__m512 a, __m512 b, __m512 c, __m512 d) {
    return nb_reduce4_avx2(nb_halves_avx512(a), nb_halves_avx512(b), nb_halves_avx512(c), nb_halves_avx512(d));
}

/// An __m256 of the sums of v[0]...v[7]: a tree of 128-bit-lane shuffles and adds, about 3
/// instructions a sum against nb_reduce4_avx512's 5.
NB_AVX512 static inline __attribute__((always_inline)) __m256 nb_reduce8_avx512(const __m512 *v) {
    __m512 x[4];
    for (int i = 0; i < 4; i++)  // quarters [v2i q0+q2, v2i q1+q3, v2i+1 q0+q2, v2i+1 q1+q3]
        x[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44), _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
    // quarter k: 4 partial sums of v[k] (lo) and v[4 + k] (hi)
    const __m512 lo = _mm512_add_ps(_mm512_shuffle_f32x4(x[0], x[1], 0x88), _mm512_shuffle_f32x4(x[0], x[1], 0xDD));
    const __m512 hi = _mm512_add_ps(_mm512_shuffle_f32x4(x[2], x[3], 0x88), _mm512_shuffle_f32x4(x[2], x[3], 0xDD));
    // per quarter: [lo0 + lo2, hi0 + hi2, lo1 + lo3, hi1 + hi3], then the two halves added
    const __m512 z = _mm512_add_ps(_mm512_unpacklo_ps(lo, hi), _mm512_unpackhi_ps(lo, hi));
    const __m512 w = _mm512_add_ps(z, _mm512_permute_ps(z, 0x4E));  // quarter k: [v[k], v[4 + k], v[k], v[4 + k]]
    return _mm512_castps512_ps256(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0), w));
}
#endif
