// Internal: target attributes for per-function ISA selection.
#pragma once
#include "CKernels.h"

#if defined(__x86_64__)
#define NB_AVX2 __attribute__((target("avx2,fma,f16c")))
#define NB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define NB_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define NB_AVXVNNI __attribute__((target("avx2,fma,f16c,avxvnni")))
#else
#define NB_AVX2
#define NB_AVX512
#define NB_AVX512VNNI
#define NB_AVXVNNI
#endif

/// Features a kernel chooses a path by at run time, beyond its level (nb_cpu_flags: asked
/// of the CPU once).
#define NB_CPU_AVX512VNNI 1u
#define NB_CPU_AVX512BF16 2u
unsigned nb_cpu_flags(void);

/// Whether `isa` runs the AVX2 + FMA + F16C paths of the kernels that have no level of their
/// own above it (every x86 level but scalar: avx2, avxvnni, avx512).
static inline int nb_isa_has_avx2(nb_isa isa) {
    return isa == NB_ISA_AVX2 || isa == NB_ISA_AVXVNNI || isa == NB_ISA_AVX512;
}
