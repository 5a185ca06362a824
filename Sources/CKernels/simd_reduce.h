// Internal: horizontal sums of four vectors at once, for the kernels that reduce several dot
// products together (prefill tiles).
#pragma once
#if defined(__x86_64__)
#include "x86_simd.h"
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

#endif
