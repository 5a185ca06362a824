// Internal: the x86 intrinsics. Normally <immintrin.h>; in the emulation build
// (NB_EMULATE_X86, `make test-emulated`) SIMDe's portable versions of the AVX-512 and
// VNNI intrinsics (Debian's libsimde-dev), so that the avx512 and avxvnni kernels run,
// and are tested against the scalar path, on a CPU with AVX2 only.
#pragma once
#if defined(__x86_64__)
#include <immintrin.h>
#if defined(NB_EMULATE_X86)
// The AVX-512 types as SIMDe's structs of two __m256 (clang's own 64-byte vectors cannot be
// passed without AVX-512): SIMDe picks the native types where clang's headers define the
// _MM_CMPINT names, and vector-extension types unless told not to.
#undef _MM_CMPINT_GE
#undef __AVX512BF16INTRIN_H
#define SIMDE_NO_VECTOR
#define SIMDE_NO_CHECK_IMMEDIATE_CONSTANT  // shifts by a loop's variable, as the hardware's forms take
#define SIMDE_X86_AVX512F_ENABLE_NATIVE_ALIASES
#define SIMDE_X86_AVX512VL_ENABLE_NATIVE_ALIASES
#define SIMDE_X86_AVX512BW_ENABLE_NATIVE_ALIASES
#define SIMDE_X86_AVX512DQ_ENABLE_NATIVE_ALIASES
#define SIMDE_X86_AVX512VNNI_ENABLE_NATIVE_ALIASES
#define SIMDE_X86_AVX512BF16_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#define __m512 simde__m512
#define __m512i simde__m512i
#define __m512d simde__m512d
#define __m512bh simde__m512bh
#define __m256bh simde__m256bh
// AVX-VNNI's VEX forms compute what AVX512-VNNI's 256-bit forms do.
#define _mm256_dpbusd_avx_epi32(acc, a, b) simde_mm256_dpbusd_epi32(acc, a, b)
#define _mm256_dpwssd_avx_epi32(acc, a, b) simde_mm256_dpwssd_epi32(acc, a, b)
#define NB_M512BH(x) ({ __typeof__(x) nb_bh_in_ = (x); __m512bh nb_bh_ = {0}; memcpy(&nb_bh_, &nb_bh_in_, 64); nb_bh_; })
#include <string.h>
// What SIMDe 0.7.4 lacks, lane by lane or as two AVX2 halves (what the instructions compute,
// per Intel's pseudocode).
static inline void nb_emu_split(const void *v, void *lo, void *hi) { memcpy(lo, v, 32); memcpy(hi, (const char *)v + 32, 32); }
static inline __m512 nb_emu_join_ps(__m256 lo, __m256 hi) { __m512 r; memcpy(&r, &lo, 32); memcpy((char *)&r + 32, &hi, 32); return r; }
static inline __m512i nb_emu_join_si(__m256i lo, __m256i hi) { __m512i r; memcpy(&r, &lo, 32); memcpy((char *)&r + 32, &hi, 32); return r; }
static inline __m256i nb_emu_cvtepi32_epi16(__m512i a) {
    int32_t s[16]; int16_t d[16]; memcpy(s, &a, 64);
    for (int i = 0; i < 16; i++) d[i] = (int16_t)s[i];
    __m256i r; memcpy(&r, d, 32); return r;
}
static inline __m512 nb_emu_cvtepi32_ps(__m512i a) { __m256i l, h; nb_emu_split(&a, &l, &h); return nb_emu_join_ps(_mm256_cvtepi32_ps(l), _mm256_cvtepi32_ps(h)); }
static inline __m512i nb_emu_cvtps_epi32(__m512 a) { __m256 l, h; nb_emu_split(&a, &l, &h); return nb_emu_join_si(_mm256_cvtps_epi32(l), _mm256_cvtps_epi32(h)); }
static inline __m512i nb_emu_cvtepi8_epi32(__m128i a) { return nb_emu_join_si(_mm256_cvtepi8_epi32(a), _mm256_cvtepi8_epi32(_mm_srli_si128(a, 8))); }
static inline __m512i nb_emu_cvtepu8_epi32(__m128i a) { return nb_emu_join_si(_mm256_cvtepu8_epi32(a), _mm256_cvtepu8_epi32(_mm_srli_si128(a, 8))); }
static inline __m512i nb_emu_cvtepu16_epi32(__m256i a) {
    return nb_emu_join_si(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(a)), _mm256_cvtepu16_epi32(_mm256_extracti128_si256(a, 1)));
}
static inline __m512 nb_emu_cvtph_ps(__m256i a) {
    return nb_emu_join_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(a)), _mm256_cvtph_ps(_mm256_extracti128_si256(a, 1)));
}
static inline __m512i nb_emu_srai_epi32(__m512i a, int n) { __m256i l, h; nb_emu_split(&a, &l, &h); return nb_emu_join_si(_mm256_srai_epi32(l, n), _mm256_srai_epi32(h, n)); }
static inline __m512i nb_emu_shuffle_i64x2(__m512i a, __m512i b, int imm) {
    __m128i x[4], y[4], d[4]; memcpy(x, &a, 64); memcpy(y, &b, 64);
    d[0] = x[imm & 3]; d[1] = x[imm >> 2 & 3]; d[2] = y[imm >> 4 & 3]; d[3] = y[imm >> 6 & 3];
    __m512i r; memcpy(&r, d, 64); return r;
}
static inline __m512i nb_emu_i32gather_epi32(__m512i idx, const void *base, int scale) {
    int32_t i[16], d[16]; memcpy(i, &idx, 64);
    for (int k = 0; k < 16; k++) memcpy(d + k, (const char *)base + (int64_t)i[k] * scale, 4);
    __m512i r; memcpy(&r, d, 64); return r;
}
static inline __m512 nb_emu_i32gather_ps(__m512i idx, const void *base, int scale) { __m512i g = nb_emu_i32gather_epi32(idx, base, scale); __m512 r; memcpy(&r, &g, 64); return r; }
static inline __m512i nb_emu_i64gather_epi64(__m512i idx, const void *base, int scale) {
    int64_t i[8], d[8]; memcpy(i, &idx, 64);
    for (int k = 0; k < 8; k++) memcpy(d + k, (const char *)base + i[k] * scale, 8);
    __m512i r; memcpy(&r, d, 64); return r;
}
static inline void nb_emu_mask_storeu_ps(void *p, __mmask16 m, __m512 v) {
    float f[16]; memcpy(f, &v, 64);
    for (int k = 0; k < 16; k++) if (m >> k & 1) memcpy((char *)p + 4 * k, f + k, 4);
}
static inline float nb_emu_reduce_add_ps(__m512 v) {  // halves, then as clang's 256-bit tree
    __m256 l, h; nb_emu_split(&v, &l, &h);
    const __m256 s = _mm256_add_ps(l, h);
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}
#undef _mm512_cvtepi32_epi16
#define _mm512_cvtepi32_epi16 nb_emu_cvtepi32_epi16
#undef _mm512_cvtepi32_ps
#define _mm512_cvtepi32_ps nb_emu_cvtepi32_ps
#undef _mm512_cvtps_epi32
#define _mm512_cvtps_epi32 nb_emu_cvtps_epi32
#undef _mm512_cvtepi8_epi32
#define _mm512_cvtepi8_epi32 nb_emu_cvtepi8_epi32
#undef _mm512_cvtepu8_epi32
#define _mm512_cvtepu8_epi32 nb_emu_cvtepu8_epi32
#undef _mm512_cvtepu16_epi32
#define _mm512_cvtepu16_epi32 nb_emu_cvtepu16_epi32
#undef _mm512_cvtph_ps
#define _mm512_cvtph_ps nb_emu_cvtph_ps
#undef _mm512_srai_epi32
#define _mm512_srai_epi32 nb_emu_srai_epi32
#undef _mm512_shuffle_i64x2
#define _mm512_shuffle_i64x2 nb_emu_shuffle_i64x2
#undef _mm512_i32gather_epi32
#define _mm512_i32gather_epi32 nb_emu_i32gather_epi32
#undef _mm512_i32gather_ps
#define _mm512_i32gather_ps nb_emu_i32gather_ps
#undef _mm512_i64gather_epi64
#define _mm512_i64gather_epi64 nb_emu_i64gather_epi64
#undef _mm512_mask_storeu_ps
#define _mm512_mask_storeu_ps nb_emu_mask_storeu_ps
#undef _mm512_reduce_add_ps
#define _mm512_reduce_add_ps nb_emu_reduce_add_ps
#else
#define NB_M512BH(x) ((__m512bh)(x))
#endif
#endif
