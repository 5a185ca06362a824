// Internal: target attributes for per-function ISA selection.
#pragma once
#include "CKernels.h"

#if defined(__x86_64__) && defined(NB_EMULATE_X86)
// The emulation build (x86_simd.h): every level's code compiles to AVX2 + FMA + F16C, the
// AVX-512 and VNNI intrinsics being SIMDe's, so none of it needs what the CPU lacks.
#define NB_AVX2 __attribute__((target("avx2,fma,f16c")))
#define NB_AVX512 NB_AVX2
#define NB_AVX512VNNI NB_AVX2
#define NB_AVX512BF16 NB_AVX2
#define NB_AVXVNNI NB_AVX2
#elif defined(__x86_64__)
#define NB_AVX2 __attribute__((target("avx2,fma,f16c")))
#define NB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define NB_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define NB_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")))
#define NB_AVXVNNI __attribute__((target("avx2,fma,f16c,avxvnni")))
#else
#define NB_AVX2
#define NB_AVX512
#define NB_AVX512VNNI
#define NB_AVX512BF16
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

/// f32 decode's rows are each read once a token: with the NTA profile (nb_active_prefetch; the
/// caller passes `nta`), the row at least 4 KiB after row r (of rows_end) is fetched with the
/// non-temporal hint while r computes. SmolLM2 f32 decode on Zen 5 against none, alternating
/// runs: +9.7 % and +8.6 % (memory at 46 GB/s), +9.9 % at 8 KiB ahead (memory at 67 GB/s);
/// 16 KiB ahead +6.6 %, 32 KiB worse than 16; _MM_HINT_T1 4 % below NTA. The same in the f16
/// and bf16 decode loops: +0.7 % and −1.8 %, not kept. On Zen 3 (family 19h) f32 decode ran
/// 9–48 % faster with no prefetch here than with NTA, and T1 was as slow as NTA: the hardware
/// prefetcher alone streams these rows faster there (the L2 profile).
static inline void nb_prefetch_row_ahead(int nta, const void *w, size_t row_bytes, int64_t r, int64_t rows_end) {
#if defined(__x86_64__)
    if (!nta) return;
    const int64_t ahead = row_bytes >= 4096 ? 1 : (int64_t)(4096 / row_bytes);
    if (r + ahead >= rows_end) return;
    const char *p = (const char *)w + (size_t)(r + ahead) * row_bytes;
    for (size_t o = 0; o < row_bytes; o += 64) __builtin_prefetch(p + o, 0, 0);  // prefetchnta
#else
    (void)nta; (void)w; (void)row_bytes; (void)r; (void)rows_end;
#endif
}
