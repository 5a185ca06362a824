// Runtime CPU feature detection and the dispatch switch.
#include "CKernels.h"
#include "dispatch.h"
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(NB_EMULATE_X86)
/// The emulation build (x86_simd.h) runs every x86 level on a CPU with AVX2 + FMA + F16C: there
/// it reports every feature the kernels ask about as present but AVX512-FP16 (which none takes).
static int emulated_supports(const char *name) {
    __builtin_cpu_init();
    const int avx2_level = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    return avx2_level && strcmp(name, "avx512fp16") != 0;
}
#define CPU_SUPPORTS(name) emulated_supports(name)
#else
#define CPU_SUPPORTS(name) __builtin_cpu_supports(name)
#endif

static _Atomic int active = -1;
/// nb_force_isa's level for the thread that forced it (-1: the process's). Per thread, so that
/// the kernel tests, which force each level in turn, never change the level under a model
/// that another test runs at the same time: a q4 model's attention and f32 work round
/// differently at the scalar level, and a greedy replay then diverged from its recording.
static _Thread_local int forced = -1;

/// AVX2 + FMA + F16C: what the avx2 level's kernels use (F16C for the f16 scales and caches).
static int has_avx2_level(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return CPU_SUPPORTS("avx2") && CPU_SUPPORTS("fma") && CPU_SUPPORTS("f16c");
#else
    return 0;
#endif
}

/// The avx2 level's features + AVX-VNNI: what the avxvnni level needs (on its own or below AVX-512).
static int has_avxvnni(void) {
#if defined(__x86_64__)
    return has_avx2_level() && CPU_SUPPORTS("avxvnni");
#else
    return 0;
#endif
}

nb_isa nb_detected_isa(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (has_avx2_level() && CPU_SUPPORTS("avx512f") && CPU_SUPPORTS("avx512bw") &&
        CPU_SUPPORTS("avx512vl"))
        return NB_ISA_AVX512;
    if (has_avxvnni()) return NB_ISA_AVXVNNI;
    if (has_avx2_level()) return NB_ISA_AVX2;
    return NB_ISA_SCALAR;
#elif defined(__aarch64__)
    return NB_ISA_SCALAR;  // NEON kernels are not written yet; the scalar path is portable.
#else
    return NB_ISA_SCALAR;
#endif
}

int nb_parse_isa(const char *name) {
    if (!name) return -1;
    if (!strcmp(name, "scalar")) return NB_ISA_SCALAR;
    if (!strcmp(name, "avx2")) return NB_ISA_AVX2;
    if (!strcmp(name, "avxvnni")) return NB_ISA_AVXVNNI;
    if (!strcmp(name, "avx512")) return NB_ISA_AVX512;
    if (!strcmp(name, "neon")) return NB_ISA_NEON;
    return -1;
}

const char *nb_isa_name(nb_isa isa) {
    switch (isa) {
    case NB_ISA_SCALAR: return "scalar";
    case NB_ISA_AVX2: return "avx2";
    case NB_ISA_AVXVNNI: return "avxvnni";
    case NB_ISA_AVX512: return "avx512";
    case NB_ISA_NEON: return "neon";
    }
    return "?";
}

/// The level NIBBLE_ISA asks for, when it names one this CPU has (else the detected one;
/// the CLI validates the variable and says what is wrong before any kernel runs).
static nb_isa initial_isa(void) {
    nb_isa best = nb_detected_isa();
    int wanted = nb_parse_isa(getenv("NIBBLE_ISA"));
    return wanted >= 0 && nb_isa_supported((nb_isa)wanted) ? (nb_isa)wanted : best;
}

int nb_isa_supported(nb_isa isa) {
    nb_isa best = nb_detected_isa();
    if (isa == NB_ISA_SCALAR) return 1;
    if (best == NB_ISA_NEON) return isa == NB_ISA_NEON;
    // Not every AVX-512 CPU has AVX-VNNI (Zen 4, Ice Lake have AVX-512 VNNI only).
    if (isa == NB_ISA_AVXVNNI) return has_avxvnni();
    return isa != NB_ISA_NEON && isa <= best;
}

nb_isa nb_active_isa(void) {
    if (forced >= 0) return (nb_isa)forced;
    int isa = atomic_load_explicit(&active, memory_order_relaxed);
    if (isa < 0) {
        isa = (int)initial_isa();
        atomic_store(&active, isa);
    }
    return (nb_isa)isa;
}

nb_isa nb_force_isa(nb_isa isa) {
    nb_isa previous = nb_active_isa();
    if (nb_isa_supported(isa)) forced = (int)isa;
    return previous;
}

const char *nb_cpu_features(void) {
    static char buffer[128];
    buffer[0] = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    // AVX512-FP16 is reported, not used: no kernel takes it yet (none of the machines this
    // project has run on has it, so a kernel for it could not be checked).
    const char *labels[] = {"AVX2", "FMA", "F16C", "AVX512F", "AVX512BW", "AVX512VL", "AVX512VNNI", "AVX512BF16", "AVX512FP16",
                            "AVXVNNI"};
    int supported[10] = {
        CPU_SUPPORTS("avx2"), CPU_SUPPORTS("fma"), CPU_SUPPORTS("f16c"),
        CPU_SUPPORTS("avx512f"), CPU_SUPPORTS("avx512bw"), CPU_SUPPORTS("avx512vl"),
        CPU_SUPPORTS("avx512vnni"), CPU_SUPPORTS("avx512bf16"), CPU_SUPPORTS("avx512fp16"),
        CPU_SUPPORTS("avxvnni"),
    };
    for (int i = 0; i < 10; i++) {
        if (!supported[i]) continue;
        if (buffer[0]) strncat(buffer, " ", sizeof(buffer) - strlen(buffer) - 1);
        strncat(buffer, labels[i], sizeof(buffer) - strlen(buffer) - 1);
    }
#elif defined(__aarch64__)
    strcpy(buffer, "NEON");
#endif
    if (!buffer[0]) strcpy(buffer, "scalar");
#if defined(__x86_64__) && defined(NB_EMULATE_X86)
    if (strcmp(buffer, "scalar")) strncat(buffer, " (AVX-512 and VNNI emulated)", sizeof(buffer) - strlen(buffer) - 1);
#endif
    return buffer;
}

unsigned nb_cpu_flags(void) {
    static _Atomic int cached = -1;
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        v = 0;
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (CPU_SUPPORTS("avx512vnni")) v |= NB_CPU_AVX512VNNI;
        if (CPU_SUPPORTS("avx512bf16")) v |= NB_CPU_AVX512BF16;
#endif
        atomic_store(&cached, v);
    }
    return (unsigned)v;
}

/// Whether the CPU has AVX-512 VNNI (the AVX-512 kernels' dot products).
static int has_avx512vnni(void) { return (nb_cpu_flags() & NB_CPU_AVX512VNNI) != 0; }

int nb_kernel_level(void) {
    switch (nb_active_isa()) {
    case NB_ISA_AVX512: return has_avx512vnni() ? 3 : has_avxvnni() ? 2 : 1;
    case NB_ISA_AVXVNNI: return 2;
    case NB_ISA_AVX2: return 1;
    default: return 0;
    }
}

// ---- Prefetch profile per CPU ----

#if defined(__x86_64__)
#include <cpuid.h>

/// The vendor (0: other, 1: AMD, 2: Intel), the display family (base + extended) and the
/// display model (with the extended model bits where the family is 6 or 0Fh and up) from cpuid.
static void cpu_vendor_family(int *vendor, unsigned *family, unsigned *model) {
    unsigned a, b, c, d;
    *vendor = 0;
    *family = 0;
    *model = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    if (b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163) *vendor = 1;       // "AuthenticAMD"
    else if (b == 0x756e6547 && d == 0x49656e69 && c == 0x6c65746e) *vendor = 2;  // "GenuineIntel"
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    unsigned base = (a >> 8) & 0xf;
    *family = base == 0xf ? base + ((a >> 20) & 0xff) : base;
    *model = (a >> 4) & 0xf;
    if (base == 0xf || base == 6) *model |= ((a >> 16) & 0xf) << 4;
}
#endif

const char *nb_cpu_family(void) {
    static char buffer[32];
#if defined(__x86_64__)
    int vendor;
    unsigned family, model;
    cpu_vendor_family(&vendor, &family, &model);
    snprintf(buffer, sizeof buffer, "%s family %Xh model %Xh", vendor == 1 ? "AMD" : vendor == 2 ? "Intel" : "x86", family,
             model);
#else
    buffer[0] = 0;
#endif
    return buffer;
}

/// The table: a row per CPU family measured (SmolLM2 decode, 2 threads, alternating runs;
/// BENCHMARKS.md). A CPU not in it gets NB_PREFETCH_L2, which leaves the most to the
/// hardware: the non-temporal hint is the one whose meaning differs most between cores.
nb_prefetch nb_detected_prefetch(void) {
#if defined(__x86_64__)
    int vendor;
    unsigned family, model;
    cpu_vendor_family(&vendor, &family, &model);
    if (vendor == 1 && family == 0x1a) return NB_PREFETCH_NTA;  // Zen 5
    if (vendor == 1 && family == 0x19 &&
        ((model >= 0x10 && model <= 0x1f) || (model >= 0x60 && model <= 0x7f) || (model >= 0xa0 && model <= 0xaf)))
        return NB_PREFETCH_HW;  // Zen 4 (measured on model 11h)
#endif
    return NB_PREFETCH_L2;  // Zen 3 (family 19h, models 0h–0Fh and 20h–5Fh; measured on model 1), and every other CPU
}

const char *nb_prefetch_name(nb_prefetch p) {
    return p == NB_PREFETCH_NTA ? "nta" : p == NB_PREFETCH_HW ? "hw" : "l2";
}

int nb_parse_prefetch(const char *name) {
    if (!name) return -1;
    if (!strcmp(name, "nta")) return NB_PREFETCH_NTA;
    if (!strcmp(name, "l2")) return NB_PREFETCH_L2;
    if (!strcmp(name, "hw")) return NB_PREFETCH_HW;
    return -1;
}

static _Atomic int prefetch_profile = -1;

nb_prefetch nb_active_prefetch(void) {
    int p = atomic_load_explicit(&prefetch_profile, memory_order_relaxed);
    if (p < 0) {
        p = nb_parse_prefetch(getenv("NIBBLE_PREFETCH"));
        if (p < 0) p = (int)nb_detected_prefetch();
        atomic_store(&prefetch_profile, p);
    }
    return (nb_prefetch)p;
}

#if defined(__GLIBC__)
#include <malloc.h>
#endif

void nb_release_free_heap(void) {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

// ---- Memory bandwidth probe (`nibble bench`'s roofline) ----

#if defined(__x86_64__)
#include <immintrin.h>

NB_AVX2 static uint64_t stream_read_avx2(const uint8_t *p, int64_t bytes) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i + 128 <= bytes; i += 128) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, s);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}
#endif

uint64_t nb_stream_read(const void *p, int64_t bytes) {
#if defined(__x86_64__)
    nb_isa isa = nb_active_isa();
    if (nb_isa_has_avx2(isa)) return stream_read_avx2((const uint8_t *)p, bytes);
#endif
    const uint64_t *w = (const uint64_t *)p;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int64_t i = 0; i + 4 <= bytes / 8; i += 4) { s0 += w[i]; s1 += w[i + 1]; s2 += w[i + 2]; s3 += w[i + 3]; }
    return s0 + s1 + s2 + s3;
}
