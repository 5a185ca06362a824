// Internal: target attributes for per-function ISA selection.
#pragma once
#include "CKernels.h"

#if defined(__x86_64__)
#define NB_AVX2 __attribute__((target("avx2,fma,f16c")))
#define NB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define NB_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#else
#define NB_AVX2
#define NB_AVX512
#define NB_AVX512VNNI
#endif
