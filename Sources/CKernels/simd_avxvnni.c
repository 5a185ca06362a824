// The AVX2 + AVX-VNNI instances of the SIMD kernel templates (the best level of Intel Alder
// Lake and later, which lack AVX-512; Zen 5 has AVX-VNNI below AVX-512): simd_avx2.c's code
// and vector widths with the VEX-encoded 256-bit VNNI dot products
// (_mm256_dpbusd_avx_epi32, _mm256_dpwssd_avx_epi32) where AVX2 takes two
// instructions (maddubs + madd), as simd_avx512.c does on 256-bit vectors; the exact integer
// sums are the same, so the floats are. nb_kernel_level() takes these on CPUs with AVX-VNNI
// and without AVX-512 VNNI.
#include "matmul_q.h"
#if defined(__x86_64__)
#include "x86_simd.h"
#include <stdlib.h>
#define NB_T NB_AVXVNNI
#define NB_VNNI 1
#define NB_W512 0
#define NB_DPBUSD(acc, a, b) _mm256_dpbusd_avx_epi32(acc, a, b)
#define NB_DPWSSD(acc, a, b) _mm256_dpwssd_avx_epi32(acc, a, b)
#define NB_QENTRY nb_matmul_q_avxvnni
#define NB_ILENTRY nb_matmul_il_avxvnni
#define NB_KENTRY(NAME) nb_mm_##NAME##_avxvnni
#include "matmul_q_simd.h"
#include "matmul_k_simd.h"
#endif
