// The AVX2 + FMA + F16C instances of the SIMD kernel templates (matmul_q_simd.h: the
// 32-block formats; matmul_k_simd.h: the K-quants).
#include "matmul_q.h"
#if defined(__x86_64__)
#include "x86_simd.h"
#include <stdlib.h>
#define NB_T NB_AVX2
#define NB_VNNI 0
#define NB_W512 0
#define NB_QENTRY nb_matmul_q_avx2
#define NB_ILENTRY nb_matmul_il_avx2
#define NB_KENTRY(NAME) nb_mm_##NAME##_avx2
#include "matmul_q_simd.h"
#include "matmul_k_simd.h"
#endif
