// The AVX-512 instances of the SIMD kernel templates: the same code as simd_avx2.c with
// VNNI dot products (_mm256_dpbusd_epi32, _mm256_dpwssd_epi32) on 256-bit vectors, which
// give the same exact integer sums, so the same floats, and the AVX-512 parts (NB_W512:
// 16-row tiles in zmm, rows-in-lanes decode). nb_kernel_level() takes these only
// on CPUs with AVX-512 VNNI.
#include "matmul_q.h"
#if defined(__x86_64__)
#include "x86_simd.h"
#include <stdlib.h>
#define NB_T NB_AVX512VNNI
#define NB_VNNI 1
#define NB_W512 1
#define NB_DPBUSD(acc, a, b) _mm256_dpbusd_epi32(acc, a, b)
#define NB_DPWSSD(acc, a, b) _mm256_dpwssd_epi32(acc, a, b)
#define NB_QENTRY nb_matmul_q_avx512
#define NB_ILENTRY nb_matmul_il_avx512
#define NB_KENTRY(NAME) nb_mm_##NAME##_avx512
#include "matmul_q_simd.h"
#include "matmul_k_simd.h"
#endif
