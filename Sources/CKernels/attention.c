// Attention over the KV cache (f32, f16 or q8 keys and values), for the G query heads that
// share one KV head (grouped-query attention: G = heads / KV heads).
//
// The positions are taken in chunks of NB_ATT_CHUNK: the chunk's scores q·k are computed
// into a buffer (f32 and f16 keys are in transposed tiles, NB_KV_TILE: a vector of 8 or 16
// positions' scores is one FMA chain over the head dimensions, each key vector loaded and
// widened once for all G heads; q8 keys are rows, scored by integer dot products), the running
// maximum and the output are rescaled once per chunk if the chunk's maximum is larger (the
// online softmax across chunks), the chunk's weights e^(s − m) are one vectorised
// exponential (nb_exp_sum_f32: the MLP activations' polynomial), and the values are added to
// the outputs several vectors of head dimensions at a time, kept in registers across the
// chunk's positions. The former kernel ran one head at a time and called a dot, a libm expf
// and an axpy per position: 2.7 ms against 0.7 ms for SmolLM2's token at 1,024 positions.
// A call may also be one part of a split over the positions (decode with fewer KV heads
// than threads): it then leaves its output unnormalised with its (max, sum) for
// nb_attention_merge.
//
// Chunks follow the logical positions j, not the ring's slots, so a ring read from any
// slot gives what the same positions laid out in order give, bit for bit.
#include "budget.h"
#include "formats.h"
#include <math.h>
#include <string.h>

#define NB_ATT_CHUNK 128
#define NB_ATT_MAXG 8  // heads per call to the kernels; more are done in groups of 8
// Positions ahead whose keys and values are prefetched (prefetchnta) while a position's are
// used: decode at 1,024 tokens +2.5 % (q4) and +2.9 % (q8) in alternating runs on Zen 5,
// within their spread; 160 ahead, or prefetcht0, the same. (16 ahead, tried before: nothing.)
#define NB_ATT_AHEAD 64
// With the NB_PREFETCH_HW profile (Zen 4) twice as far ahead, into L2 (prefetcht1): one
// token's attention at 1,024 positions, 2 threads, every layer's cache from memory with 3.2 MiB
// of weights read between layers (Tools/attention_bench.c, STREAM_MB=3.2 HUGE=1, alternating
// builds), f16 36–52 → 29–35 µs a layer, f32 61–71 → 51–55, q8 the same; in cache and at 160
// positions the same. (T1 at 64 or 96 ahead: between; at 256: as NTA at 64; T0: slower.)
#define NB_ATT_AHEAD_L2 128
// Positions whose values are added up together where a row is at most NB_ATT_VRUN_ROW bytes
// (the values' passes over the head dimensions, D vectors at a time, go over one run before
// the next): with the whole chunk of 128, only a chunk's first pass read the memory and the
// other three (f16 at head dimension 64) only computed. Decode's attention from memory on Zen
// 3 (2 threads, 1,024 positions, alternating rounds), SmolLM2's shape: f16 37.5 → 33.3 µs a
// layer (runs of 32: 35.3; of 8: as 16), f32 69.9 → 63.3, q8 the same; in cache 0–4 % slower.
// With Gemma 3's 512-byte f16 rows runs of 16 were 10–30 % slower (32: 15 %, 64: 7 %), for
// reasons not found; there the run stays the chunk.
#define NB_ATT_VRUN 16
#define NB_ATT_VRUN_ROW 256

/// The cache rows of one KV head: position j's row is at base + (off[j] << shift) bytes, its
/// element i (f32, f16) at base + ((off[j] + i) << shift); a q8 row (shift 0) is hd int8
/// codes and then hd / 32 f32 scales. f32 and f16 keys are not rows but tiles (kt_at).
/// The slots are in blocks of 2^bshift (nb_attention_job.block_slots), block_units offset
/// units apart (kv_unit); a cache of one block has bshift NB_ATT_ONE_BLOCK.
typedef struct {
    const void *keys, *values;
    int fmt;  // NB_KV_F32, NB_KV_F16 or NB_KV_Q8
    int shift;  // log2 of the bytes an offset unit takes: 2, 1, 0
    int64_t row_bytes;
    int bshift;
    int64_t block_units;
    int64_t ahead_positions;  // positions ahead whose rows are prefetched (0: none)
    int l2;  // prefetch with _MM_HINT_T1, not _MM_HINT_NTA
} kv_rows;

#define NB_ATT_ONE_BLOCK 62

/// Offset units from a head's slot 0 to slot `slot` of a layout of `stride` units a slot
/// (a row's, or hd for the tiles of f32 and f16 keys, whose slots take as many).
static inline int64_t kv_unit(kv_rows kv, int64_t slot, int64_t stride) {
    return (slot >> kv.bshift) * kv.block_units + (slot & (((int64_t)1 << kv.bshift) - 1)) * stride;
}

/// Offset units from a head's keys to the tile element of slot `slot`, dimension 0.
static inline int64_t kt_unit(kv_rows kv, int64_t slot, int64_t hd) {
    return (slot >> kv.bshift) * kv.block_units + nb_kv_key_index(slot & (((int64_t)1 << kv.bshift) - 1), 0, hd);
}

/// Fetches the line at p for a position `ahead` on (kv_rows.l2 says into which cache).
#define NB_ATT_PREFETCH(kv, p) \
    do { \
        if ((kv).l2) __builtin_prefetch((p), 0, 2); \
        else __builtin_prefetch((p), 0, 0); \
    } while (0)

static kv_rows kv_rows_of(const void *keys, const void *values, int fmt, int64_t hd) {
    return (kv_rows){keys, values, fmt, fmt == NB_KV_F32 ? 2 : fmt == NB_KV_F16 ? 1 : 0, nb_kv_row_bytes(fmt, hd), NB_ATT_ONE_BLOCK, 0, 0, 0};
}

int64_t nb_kv_row_bytes(int32_t fmt, int64_t head_dim) {
    return fmt == NB_KV_F32 ? 4 * head_dim : fmt == NB_KV_F16 ? 2 * head_dim : head_dim + head_dim / NB_KV_Q8_BLOCK * 4;
}

/// Element d of the row at offset o.
static inline float kv_at(const void *base, int fmt, int64_t o, int64_t d, int64_t hd) {
    switch (fmt) {
    case NB_KV_F32: return ((const float *)base)[o + d];
    case NB_KV_F16: return nb_h2f(((const uint16_t *)base)[o + d]);
    default: {
        const int8_t *row = (const int8_t *)base + o;
        float scale;
        memcpy(&scale, row + hd + d / NB_KV_Q8_BLOCK * 4, 4);
        return (float)row[d] * scale;
    }
    }
}

/// Element d of slot s's key in the tiles of f32 or f16 keys.
static inline float kt_at(kv_rows kv, int64_t slot, int64_t d, int64_t hd) {
    const int64_t i = kt_unit(kv, slot, hd) + d * NB_KV_TILE;
    return kv.fmt == NB_KV_F32 ? ((const float *)kv.keys)[i] : nb_h2f(((const uint16_t *)kv.keys)[i]);
}

void nb_kv_store_key(int32_t fmt, const float *x, int64_t hd, void *keys, int64_t slot) {
    if (fmt == NB_KV_Q8) {
        nb_kv_q8_quantize(x, hd, (uint8_t *)keys + slot * nb_kv_row_bytes(fmt, hd));
        return;
    }
    for (int64_t d0 = 0; d0 < hd; d0 += 64) {
        const int64_t n = hd - d0 < 64 ? hd - d0 : 64;
        if (fmt == NB_KV_F32) {
            for (int64_t d = d0; d < d0 + n; d++) ((float *)keys)[nb_kv_key_index(slot, d, hd)] = x[d];
        } else {
            uint16_t h[64];
            nb_f32_to_f16(x + d0, h, n);
            for (int64_t d = 0; d < n; d++) ((uint16_t *)keys)[nb_kv_key_index(slot, d0 + d, hd)] = h[d];
        }
    }
}

void nb_kv_prefetch_store(int32_t fmt, const void *keys, const void *value_row, int64_t hd, int64_t slot) {
    const int64_t row = nb_kv_row_bytes(fmt, hd);
    if (fmt == NB_KV_Q8) {
        for (int64_t b = 0; b < row; b += 64) __builtin_prefetch((const char *)keys + slot * row + b, 1, 3);
    } else {
        const int64_t size = fmt == NB_KV_F32 ? 4 : 2, step = 64 / (NB_KV_TILE * size) > 1 ? 64 / (NB_KV_TILE * size) : 1;
        for (int64_t d = 0; d < hd; d += step) __builtin_prefetch((const char *)keys + nb_kv_key_index(slot, d, hd) * size, 1, 3);
    }
    for (int64_t b = 0; b < row; b += 64) __builtin_prefetch((const char *)value_row + b, 1, 3);
}

// q8_0's rounding (llama.cpp's quantize_row_q8_0_ref), with the scale kept in f32: each block
// of 32 is d·c with d = max|x| / 127 and c = round(x / d). (With libm's roundf per element,
// prefill of 128 tokens with a q8 cache ran at 0.87–0.92× an f16 cache's; now 0.96–1.0×.)
void nb_kv_q8_quantize(const float *x, int64_t head_dim, void *row) {
    int8_t *codes = row;
    for (int64_t b = 0; b < head_dim; b += NB_KV_Q8_BLOCK) {
        const float d = nb_q8_block_f32(x + b, codes + b);
        memcpy(codes + head_dim + b / NB_KV_Q8_BLOCK * 4, &d, 4);
    }
}

void nb_kv_q8_dequantize(const void *row, int64_t head_dim, float *x) {
    for (int64_t d = 0; d < head_dim; d++) x[d] = kv_at(row, NB_KV_Q8, 0, d, head_dim);
}

// ---- scalar -------------------------------------------------------------------------

// q8 keys (rows) with a head dimension above NB_ATT_Q8_MAXHD.
static void scores_scalar(const float *q, int G, kv_rows kv, const int64_t *off, int64_t c, int64_t hd, float scale, float *s) {
    for (int g = 0; g < G; g++)
        for (int64_t j = 0; j < c; j++) {
            const float *qg = q + g * hd;
            float p[8] = {0};
            int64_t d = 0;
            for (; d + 8 <= hd; d += 8)
                for (int e = 0; e < 8; e++) p[e] += qg[d + e] * kv_at(kv.keys, kv.fmt, off[j], d + e, hd);
            float sum = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
            for (; d < hd; d++) sum += qg[d] * kv_at(kv.keys, kv.fmt, off[j], d, hd);
            s[g * NB_ATT_CHUNK + j] = sum * scale;
        }
}

// Over tiled keys (f32, f16): the chunk's positions j < run are slots slot0 + j, the rest
// slots j − run (the ring's wrap). Each score is one chain of FMAs over the head dimensions
// in order, the arithmetic of each lane of the SIMD paths.
static void tscores_scalar(const float *q, int G, kv_rows kv, int64_t slot0, int64_t run, int64_t c, int64_t hd, float scale, float *s) {
    for (int g = 0; g < G; g++)
        for (int64_t j = 0; j < c; j++) {
            const int64_t slot = j < run ? slot0 + j : j - run;
            float sum = 0;
            for (int64_t d = 0; d < hd; d++) sum = fmaf(q[g * hd + d], kt_at(kv, slot, d, hd), sum);
            s[g * NB_ATT_CHUNK + j] = sum * scale;
        }
}

static void values_scalar(const float *w, int G, kv_rows kv, const int64_t *off, int64_t c, int64_t hd, float *out) {
    for (int g = 0; g < G; g++)
        for (int64_t j = 0; j < c; j++)
            for (int64_t d = 0; d < hd; d++) out[g * hd + d] += w[g * NB_ATT_CHUNK + j] * kv_at(kv.values, kv.fmt, off[j], d, hd);
}

// ---- q8 keys: integer dot products ----------------------------------------------------
//
// With a q8 cache the query is quantised too, per block of 32 as the keys are (q8_0, as
// llama.cpp quantises the query against q8_0 keys), and each score is Σ_b d_key · d_query ·
// (an exact integer dot product of the block's codes): one vpdpbusd per 32 codes and query
// head where widening every code to float and scaling it took three operations per 8 or 16.

#define NB_ATT_Q8_MAXHD 512  // larger heads widen the codes instead

typedef struct {
    int8_t c[NB_ATT_MAXG][NB_ATT_Q8_MAXHD];  // head g's codes
    float d[NB_ATT_MAXG][NB_ATT_Q8_MAXHD / NB_KV_Q8_BLOCK];
    // Per block, per lane of 4 codes: −128 · their sum, vpdpbusd's start (its keys are the
    // codes + 128, unsigned).
    int32_t corr[NB_ATT_MAXG][NB_ATT_Q8_MAXHD / NB_KV_Q8_BLOCK][8];
} q8_query;

static void q8_query_make(const float *q, int G, int64_t hd, q8_query *qq) {
    for (int g = 0; g < G; g++)
        for (int64_t b = 0; b < hd / NB_KV_Q8_BLOCK; b++) {
            int8_t *c = qq->c[g] + b * NB_KV_Q8_BLOCK;
            qq->d[g][b] = nb_q8_block_f32(q + g * hd + b * NB_KV_Q8_BLOCK, c);
            for (int l = 0; l < 8; l++) qq->corr[g][b][l] = -128 * (c[4 * l] + c[4 * l + 1] + c[4 * l + 2] + c[4 * l + 3]);
        }
}

static inline float q8_scale(const int8_t *row, int64_t hd, int64_t b) {
    float d;
    memcpy(&d, row + hd + b * 4, 4);
    return d;
}

static void scores_q8_scalar(const q8_query *qq, int G, kv_rows kv, const int64_t *off, int64_t c, int64_t hd, float scale, float *s) {
    for (int g = 0; g < G; g++)
        for (int64_t j = 0; j < c; j++) {
            const int8_t *row = (const int8_t *)kv.keys + off[j];
            float acc = 0;
            for (int64_t b = 0; b < hd / NB_KV_Q8_BLOCK; b++) {
                int32_t sum = 0;
                for (int i = 0; i < NB_KV_Q8_BLOCK; i++) sum += (int32_t)qq->c[g][b * NB_KV_Q8_BLOCK + i] * row[b * NB_KV_Q8_BLOCK + i];
                const float ds = q8_scale(row, hd, b) * qq->d[g][b];  // the SIMD paths' operations, in their order
                const float t = (float)sum * ds;
                acc = acc + t;
            }
            s[g * NB_ATT_CHUNK + j] = acc * scale;
        }
}

// ---- AVX2 / AVX-512 -----------------------------------------------------------------
#if defined(__x86_64__)
#include "x86_simd.h"

// Scores j...j+3 of a chunk row from r: those below c (the step past a chunk's end computed
// repeats of its last position, not stored).
static inline __attribute__((always_inline)) void store4_scores(float *row, int64_t j, int64_t c, __m128 r) {
    if (j + 4 <= c) {
        _mm_storeu_ps(row + j, r);
    } else {
        float t[4];
        _mm_storeu_ps(t, r);
        for (int i = 0; j + i < c; i++) row[j + i] = t[i];
    }
}

NB_AVX2 static inline __m256 load8_kv(const void *base, int fmt, int64_t o, int64_t d, int64_t hd) {
    switch (fmt) {
    case NB_KV_F32: return _mm256_loadu_ps((const float *)base + o + d);
    case NB_KV_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + o + d)));
    default: {
        const int8_t *row = (const int8_t *)base + o;
        const __m256 c = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(row + d))));
        return _mm256_mul_ps(c, _mm256_broadcast_ss((const float *)(row + hd) + d / NB_KV_Q8_BLOCK));
    }
    }
}

NB_AVX512 static inline __m512 load16_kv(const void *base, int fmt, int64_t o, int64_t d, int64_t hd) {
    switch (fmt) {
    case NB_KV_F32: return _mm512_loadu_ps((const float *)base + o + d);
    case NB_KV_F16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)base + o + d)));
    default: {
        const int8_t *row = (const int8_t *)base + o;
        const __m512 c = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(row + d))));
        return _mm512_mul_ps(c, _mm512_set1_ps(((const float *)(row + hd))[d / NB_KV_Q8_BLOCK]));
    }
    }
}

// VW elements of a row of a key tile (f32 or f16) as floats.
NB_AVX2 static inline __m256 load8_kt(const char *p, int fmt) {
    return fmt == NB_KV_F32 ? _mm256_loadu_ps((const float *)p) : _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

NB_AVX512 static inline __m512 load16_kt(const char *p, int fmt) {
    return fmt == NB_KV_F32 ? _mm512_loadu_ps((const float *)p) : _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

#define V __m256
#define VW 8
#define VATTR NB_AVX2
#define VNAME(x) x##_avx2
// AVX2's 16 registers hold the G·D value accumulators, the G weights and the converted value.
// In the f16 and q8 loops clang needs a second temporary for the conversion, and with 12
// accumulators at G = 3 (SmolLM2) it kept one on the stack: a store and a reload in each
// step's chain of FMAs. With 10 (2 vectors at G = 3 to 5) one thread's attention in cache at
// 1,024 positions on Zen 3 took 51 µs a layer against 62–64 (f16) and 52 against 55–58 (q8);
// passes of 3 vectors at G = 3 (9 accumulators, values_g) then took it from 45.1–46.3 to
// 43.2–44.3 µs (f16, 8 alternating runs; 11 % fewer instructions in the values).
// f32 loads its values as the FMAs' operands and keeps 12.
#define NB_ATT_ACC(fmt) ((fmt) == NB_KV_F32 ? 12 : 10)
#define NB_ATT_REGS 16
#define V_ZERO _mm256_setzero_ps
#define V_LOAD _mm256_loadu_ps
#define V_STORE _mm256_storeu_ps
#define V_FMADD _mm256_fmadd_ps
#define V_MUL _mm256_mul_ps
#define V_SET1 _mm256_set1_ps
#define V_LOADKV load8_kv
#define V_LOADKT load8_kt
#include "attention_simd.h"
#undef V
#undef VW
#undef VATTR
#undef VNAME
#undef NB_ATT_ACC
#undef NB_ATT_REGS
#undef V_ZERO
#undef V_LOAD
#undef V_STORE
#undef V_FMADD
#undef V_MUL
#undef V_SET1
#undef V_LOADKV
#undef V_LOADKT

#define V __m512
#define VW 16
#define VATTR NB_AVX512
#define VNAME(x) x##_avx512
#define NB_ATT_ACC(fmt) 24
#define NB_ATT_REGS 32
#define V_ZERO _mm512_setzero_ps
#define V_LOAD _mm512_loadu_ps
#define V_STORE _mm512_storeu_ps
#define V_FMADD _mm512_fmadd_ps
#define V_MUL _mm512_mul_ps
#define V_SET1 _mm512_set1_ps
#define V_LOADKV load16_kv
#define V_LOADKT load16_kt
#include "attention_simd.h"

// Integer scores over q8 keys (attention_q8_simd.h). AVX2: |k| · sign(q, k) with vpmaddubsw
// (the codes are at most 127 in size, so the pairs' sums fit 16 bits), then vpmaddwd by 1s.
#define Q8NAME scores_q8_avx2
#define Q8ATTR NB_AVX2
#define Q8_PREP(k) _mm256_abs_epi8(k)
#define Q8_DOT(k, kp, q, corr) _mm256_madd_epi16(_mm256_maddubs_epi16(kp, _mm256_sign_epi8(q, k)), _mm256_set1_epi16(1))
#include "attention_q8_simd.h"
#undef Q8NAME
#undef Q8ATTR
#undef Q8_PREP
#undef Q8_DOT
// VNNI: vpdpbusd on the codes + 128 (unsigned), started at −128 · Σ q.
#define Q8NAME scores_q8_avxvnni
#define Q8ATTR NB_AVXVNNI
#define Q8_PREP(k) _mm256_xor_si256(k, _mm256_set1_epi8((char)0x80))
#define Q8_DOT(k, kp, q, corr) _mm256_dpbusd_avx_epi32(corr, kp, q)
#include "attention_q8_simd.h"
#undef Q8NAME
#undef Q8ATTR
#undef Q8_DOT
#define Q8NAME scores_q8_avx512vnni
#define Q8ATTR NB_AVX512VNNI
#define Q8_DOT(k, kp, q, corr) _mm256_dpbusd_epi32(corr, kp, q)
#include "attention_q8_simd.h"
#undef Q8NAME
#undef Q8ATTR
#undef Q8_PREP
#undef Q8_DOT

// AVX-512 VNNI with head dimensions that are multiples of 64: 8 positions a step, a row's 64
// codes (2 blocks) per vpdpbusd, and the 8 positions' 16 lanes reduced to their 16 block
// sums together by a tree of shuffles; the rest (< 8 positions) by the 4-position kernel.
// The same float operations per (position, block) as scores_q8_scalar.
NB_AVX512VNNI static inline __attribute__((always_inline)) void scores_q8_avx512vnni64_g(const q8_query *qq, const int G, kv_rows kv,
                                                                                         const int64_t *off, int64_t c, int64_t hd,
                                                                                         float scale, float *s) {
    // Lane o of the result: position o % 8, block half o / 8 (see the tree below).
    const __m512i order = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    const __m512i by_block = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    const __m512i x80 = _mm512_set1_epi8((char)0x80);
    const __m256 vscale = _mm256_set1_ps(scale);
    const int8_t *base = kv.keys;
    int64_t j = 0;
    for (; j + 8 <= c; j += 8) {
        if (kv.ahead_positions)
            for (int i = 0; i < 8; i++)
                for (int64_t b = 0; b < kv.row_bytes; b += 64) NB_ATT_PREFETCH(kv, (const char *)base + off[NB_ATT_CHUNK + j + i] + b);
        const __m512i offs = _mm512_loadu_si512((const void *)(off + j));
        __m256 acc[NB_ATT_MAXG];
        for (int g = 0; g < G; g++) acc[g] = _mm256_setzero_ps();
        for (int64_t z = 0; z < hd / 64; z++) {
            __m512i k[8];
            for (int i = 0; i < 8; i++) k[i] = _mm512_xor_si512(_mm512_loadu_si512((const void *)(base + off[j + i] + 64 * z)), x80);
            // The keys' scales of blocks 2z (lanes 0–7) and 2z + 1 (8–15), position by lane: one
            // gather of the 8 rows' pairs of scales, then their lanes sorted (two gathers of 8
            // scales: q8 attention 3 % slower, one thread in cache).
            const __m512i pairs = _mm512_i64gather_epi64(offs, base + hd + 8 * z, 1);
            const __m512 d16 = _mm512_permutexvar_ps(by_block, _mm512_castsi512_ps(pairs));
            for (int g = 0; g < G; g++) {
                const __m512i qv = _mm512_loadu_si512((const void *)(qq->c[g] + 64 * z));
                const __m512i corr = _mm512_loadu_si512((const void *)qq->corr[g][2 * z]);  // blocks 2z and 2z + 1
                __m512i x[4];
                for (int i = 0; i < 4; i++) {  // quarters: [v2i half 0, v2i half 1, v2i+1 half 0, v2i+1 half 1], 4 partial sums each
                    const __m512i a = _mm512_dpbusd_epi32(corr, k[2 * i], qv), b = _mm512_dpbusd_epi32(corr, k[2 * i + 1], qv);
                    x[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(a, b, 0x88), _mm512_shuffle_i32x4(a, b, 0xDD));
                }
                const __m512i y0 = _mm512_add_epi32(_mm512_unpacklo_epi32(x[0], x[1]), _mm512_unpackhi_epi32(x[0], x[1]));
                const __m512i y1 = _mm512_add_epi32(_mm512_unpacklo_epi32(x[2], x[3]), _mm512_unpackhi_epi32(x[2], x[3]));
                // quarter q: [x0, x1, x2, x3]'s sums of quarter q, i.e. positions 0, 2, 4, 6 (q = 0, 1) or 1, 3, 5, 7 (q = 2, 3)
                const __m512i z4 = _mm512_add_epi32(_mm512_unpacklo_epi64(y0, y1), _mm512_unpackhi_epi64(y0, y1));
                const __m512i sums = _mm512_permutexvar_epi32(order, z4);
                const __m512 qd = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(_mm256_set1_ps(qq->d[g][2 * z]))),
                                                                      _mm256_castps_pd(_mm256_set1_ps(qq->d[g][2 * z + 1])), 1));
                const __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(sums), _mm512_mul_ps(d16, qd));
                acc[g] = _mm256_add_ps(acc[g], _mm512_castps512_ps256(t));
                acc[g] = _mm256_add_ps(acc[g], _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1)));
            }
        }
        for (int g = 0; g < G; g++) _mm256_storeu_ps(s + g * NB_ATT_CHUNK + j, _mm256_mul_ps(acc[g], vscale));
    }
    if (j < c) scores_q8_avx512vnni(qq, G, kv, off + j, c - j, hd, scale, s + j);
}

// G a constant in each instance (its accumulators in registers).
NB_AVX512VNNI static void scores_q8_avx512vnni64(const q8_query *qq, int G, kv_rows kv, const int64_t *off, int64_t c, int64_t hd,
                                                 float scale, float *s) {
    switch (G) {
#define NB_Q8_CASE(N) case N: scores_q8_avx512vnni64_g(qq, N, kv, off, c, hd, scale, s); break;
    NB_Q8_CASE(1) NB_Q8_CASE(2) NB_Q8_CASE(3) NB_Q8_CASE(4) NB_Q8_CASE(5) NB_Q8_CASE(6) NB_Q8_CASE(7) NB_Q8_CASE(8)
#undef NB_Q8_CASE
    default: break;
    }
}
#endif

// ---- the chunked online softmax -----------------------------------------------------------

typedef void (*tscores_fn)(const float *, int, kv_rows, int64_t, int64_t, int64_t, int64_t, float, float *);
typedef void (*values_fn)(const float *, int, kv_rows, const int64_t *, int64_t, int64_t, float *);
typedef void (*scores_q8_fn)(const q8_query *, int, kv_rows, const int64_t *, int64_t, int64_t, float, float *);

// off[j] = kv_unit of the j-th slot from `slot` on in a ring of `capacity` slots, j < n: runs
// of `stride` apart up to the ring's end or a block's (runs the compiler vectorises, by
// additions: a product per offset took 3 pmuludq and 4 shifts and adds per pair at the
// baseline's SSE2).
// Compiled for each instruction set (the driver below is the baseline's; at SSE2 these
// loops, two stores of offsets a step, took 40 % of its time at 1,024 positions).
#define NB_KV_OFFSETS_BODY                                                                                         \
    {                                                                                                              \
        for (int64_t j = 0; j < n;) {                                                                              \
            const int64_t to_block = ((int64_t)1 << kv.bshift) - (slot & (((int64_t)1 << kv.bshift) - 1));         \
            int64_t len = n - j < capacity - slot ? n - j : capacity - slot;                                       \
            len = len < to_block ? len : to_block;                                                                 \
            int64_t o = kv_unit(kv, slot, stride);                                                                 \
            for (int64_t i = 0; i < len; i++, o += stride) off[j + i] = o;                                         \
            j += len;                                                                                              \
            slot = slot + len == capacity ? 0 : slot + len;                                                        \
        }                                                                                                          \
    }
typedef void (*kv_offsets_fn)(kv_rows, int64_t, int64_t, int64_t, int64_t, int64_t *);
static void kv_offsets(kv_rows kv, int64_t stride, int64_t slot, int64_t n, int64_t capacity, int64_t *off) NB_KV_OFFSETS_BODY

// The largest of s[0...c) (c ≥ 1), in 16 lanes (any order gives the same maximum: only
// NaN could tell, and one at s[0] is kept, one elsewhere never taken, whatever the lanes).
#define NB_CHUNK_MAX_BODY                                                                                          \
    {                                                                                                              \
        float lanes[16], m = s[0];                                                                                 \
        for (int e = 0; e < 16; e++) lanes[e] = s[0];                                                              \
        int64_t j = 0;                                                                                             \
        for (; j + 16 <= c; j += 16)                                                                               \
            for (int e = 0; e < 16; e++) lanes[e] = s[j + e] > lanes[e] ? s[j + e] : lanes[e];                     \
        for (int e = 0; e < 16; e++) m = lanes[e] > m ? lanes[e] : m;                                              \
        for (; j < c; j++) m = s[j] > m ? s[j] : m;                                                                \
        return m;                                                                                                  \
    }
typedef float (*chunk_max_fn)(const float *, int64_t);
static float chunk_max(const float *s, int64_t c) NB_CHUNK_MAX_BODY

#if defined(__x86_64__)
NB_AVX2 static void kv_offsets_avx2(kv_rows kv, int64_t stride, int64_t slot, int64_t n, int64_t capacity, int64_t *off) NB_KV_OFFSETS_BODY
NB_AVX512 static void kv_offsets_avx512(kv_rows kv, int64_t stride, int64_t slot, int64_t n, int64_t capacity, int64_t *off) NB_KV_OFFSETS_BODY
NB_AVX2 static float chunk_max_avx2(const float *s, int64_t c) NB_CHUNK_MAX_BODY
NB_AVX512 static float chunk_max_avx512(const float *s, int64_t c) NB_CHUNK_MAX_BODY
#endif

// G ≤ NB_ATT_MAXG heads: q and out hold G vectors of hd floats.
static void attention(kv_rows kv, const float *q, int G, int64_t stride, int64_t capacity, int64_t first, int64_t n, int64_t hd,
                      float scale, float *out, float *ml) {
    tscores_fn tscores = tscores_scalar;  // f32 and f16 keys (tiles)
    values_fn values = values_scalar;
    kv_offsets_fn offsets = kv_offsets;
    chunk_max_fn cmax = chunk_max;
#if defined(__x86_64__)
    nb_isa isa = nb_active_isa();
    if (isa == NB_ISA_AVX512 && hd % 16 == 0) { tscores = tscores_avx512; values = values_avx512; }
    else if (nb_isa_has_avx2(isa) && hd % 8 == 0) { tscores = tscores_avx2; values = values_avx2; }
    if (isa == NB_ISA_AVX512) { offsets = kv_offsets_avx512; cmax = chunk_max_avx512; }
    else if (nb_isa_has_avx2(isa)) { offsets = kv_offsets_avx2; cmax = chunk_max_avx2; }
#endif
    // q8 keys (rows): integer scores against the query's q8 codes (any head dimension up to
    // NB_ATT_Q8_MAXHD: the blocks are 32 codes at every level; above it, scores_scalar).
    scores_q8_fn scores_q8 = NULL;
    q8_query qq;
    if (kv.fmt == NB_KV_Q8 && hd <= NB_ATT_Q8_MAXHD) {
        scores_q8 = scores_q8_scalar;
#if defined(__x86_64__)
        if (isa == NB_ISA_AVX512 && (nb_cpu_flags() & NB_CPU_AVX512VNNI))
            scores_q8 = hd % 64 == 0 ? scores_q8_avx512vnni64 : scores_q8_avx512vnni;
        else if (isa == NB_ISA_AVXVNNI) scores_q8 = scores_q8_avxvnni;
        else if (nb_isa_has_avx2(isa)) scores_q8 = scores_q8_avx2;
#endif
        q8_query_make(q, G, hd, &qq);
    }
    float s[NB_ATT_MAXG * NB_ATT_CHUNK];
    // The chunk's offsets (kv_unit), then those of the positions kv.ahead_positions further
    // on, which the kernels prefetch (off[NB_ATT_CHUNK + j]).
    int64_t off[2 * NB_ATT_CHUNK];
    float m[NB_ATT_MAXG], l[NB_ATT_MAXG];
    for (int g = 0; g < G; g++) { m[g] = -INFINITY; l[g] = 0; }
    for (int64_t d = 0; d < G * hd; d++) out[d] = 0;
    int64_t slot = first % capacity;
    kv.l2 = nb_active_prefetch() == NB_PREFETCH_HW;
    kv.ahead_positions = kv.l2 ? NB_ATT_AHEAD_L2 : NB_ATT_AHEAD;
    const int64_t vrun = kv.row_bytes <= NB_ATT_VRUN_ROW ? NB_ATT_VRUN : NB_ATT_CHUNK;
    for (int64_t j0 = 0; j0 < n; j0 += NB_ATT_CHUNK) {
        const int64_t c = n - j0 < NB_ATT_CHUNK ? n - j0 : NB_ATT_CHUNK;
        // Slots slot, slot + 1, ... up to the end of the ring, then from 0: two runs (and within
        // them, runs to each block's end: kv_offsets), not one loop carrying the slot and its
        // wrap from position to position (5 % slower, one thread in cache at 1,024 positions). (With the tree
        // sum in nb_exp_sum_f32, one thread in cache at 1,024 positions on Zen 5: f16 17.5–18.7
        // → 16.3–16.6 µs a layer, q8 16.9–17.9 → 15.3–15.7 with the one gather below.)
        const int64_t run = capacity - slot < c ? capacity - slot : c, slot0 = slot;
        offsets(kv, stride, slot0, c, capacity, off);
        offsets(kv, stride, (slot0 + kv.ahead_positions) % capacity, c, capacity, off + NB_ATT_CHUNK);
        slot = run < c ? c - run : (slot + c == capacity ? 0 : slot + c);
        if (scores_q8) scores_q8(&qq, G, kv, off, c, hd, scale, s);
        else if (kv.fmt == NB_KV_Q8) scores_scalar(q, G, kv, off, c, hd, scale, s);
        else tscores(q, G, kv, slot0, run, c, hd, scale, s);
        for (int g = 0; g < G; g++) {
            float *sg = s + g * NB_ATT_CHUNK, *og = out + g * hd;
            const float cm = cmax(sg, c);
            if (cm > m[g]) {
                if (l[g] > 0) {  // rescale what the earlier chunks added by e^(m_old − m_new)
                    float factor = m[g];
                    nb_exp_sum_f32(&factor, 1, cm);
                    for (int64_t d = 0; d < hd; d++) og[d] *= factor;
                    l[g] *= factor;
                }
                m[g] = cm;
            }
            l[g] += nb_exp_sum_f32(sg, c, m[g]);
        }
        // The values in runs of NB_ATT_VRUN positions, each run's passes over the head
        // dimensions (D vectors at a time) done before the next run's rows are read.
        for (int64_t j = 0; j < c; j += vrun) values(s + j, G, kv, off + j, c - j < vrun ? c - j : vrun, hd, out);
    }
    for (int g = 0; g < G; g++) {
        if (ml) {  // a part of a split: left unnormalised, with its maximum and sum
            ml[2 * g] = m[g];
            ml[2 * g + 1] = l[g];
            continue;
        }
        const float inv = 1.0f / l[g];
        for (int64_t d = 0; d < hd; d++) out[g * hd + d] *= inv;
    }
}

static void attention_heads(kv_rows kv, const float *q, int64_t heads, int64_t stride, int64_t capacity, int64_t first, int64_t n,
                            int64_t hd, float scale, float *out, float *ml) {
    for (int64_t h = 0; h < heads; h += NB_ATT_MAXG) {
        const int G = heads - h < NB_ATT_MAXG ? (int)(heads - h) : NB_ATT_MAXG;
        attention(kv, q + h * hd, G, stride, capacity, first, n, hd, scale, out + h * hd, ml ? ml + 2 * h : NULL);
    }
}

void nb_attention_f32(const float *q, int64_t heads, const float *keys, const float *values, int64_t stride, int64_t capacity,
                      int64_t first, int64_t n, int64_t head_dim, float scale, float *out, float *ml) {
    attention_heads(kv_rows_of(keys, values, NB_KV_F32, head_dim), q, heads, stride, capacity, first, n, head_dim, scale, out, ml);
}

void nb_attention_f16kv(const float *q, int64_t heads, const uint16_t *keys, const uint16_t *values, int64_t stride,
                        int64_t capacity, int64_t first, int64_t n, int64_t head_dim, float scale, float *out, float *ml) {
    attention_heads(kv_rows_of(keys, values, NB_KV_F16, head_dim), q, heads, stride, capacity, first, n, head_dim, scale, out, ml);
}

void nb_attention_q8kv(const float *q, int64_t heads, const void *keys, const void *values, int64_t stride, int64_t capacity,
                       int64_t first, int64_t n, int64_t head_dim, float scale, float *out, float *ml) {
    attention_heads(kv_rows_of(keys, values, NB_KV_Q8, head_dim), q, heads, stride, capacity, first, n, head_dim, scale, out, ml);
}

void nb_attention_merge(const float *parts, const float *ml, int64_t n_parts, int64_t heads, int64_t head_dim, float *out) {
    const int64_t width = heads * head_dim;
    for (int64_t h = 0; h < heads; h++) {
        float m = -INFINITY;
        for (int64_t p = 0; p < n_parts; p++) m = ml[(p * heads + h) * 2] > m ? ml[(p * heads + h) * 2] : m;
        float l = 0, *o = out + h * head_dim;
        for (int64_t d = 0; d < head_dim; d++) o[d] = 0;
        for (int64_t p = 0; p < n_parts; p++) {
            const float *mlp = ml + (p * heads + h) * 2;
            if (mlp[1] <= 0) continue;  // an empty part
            float c = mlp[0];
            nb_exp_sum_f32(&c, 1, m);  // e^(m_p − m)
            l += c * mlp[1];
            const float *src = parts + p * width + h * head_dim;
            for (int64_t d = 0; d < head_dim; d++) o[d] += c * src[d];
        }
        const float inv = 1.0f / l;
        for (int64_t d = 0; d < head_dim; d++) o[d] *= inv;
    }
}

// Where part p of a split's positions starts (from j->first): at an equal share, moved to the
// nearest position whose slot starts a key tile, so that no part scores a tile another scores
// too (each chunk from an unaligned start spans one unit of 16 more). Decode's positions are
// slots (the ring holds them all); a sliding layer's wrapped ring may leave them unaligned.
static int64_t part_start(const nb_attention_job *j, int64_t p) {
    if (p <= 0) return 0;
    if (p >= j->parts) return j->n;
    const int64_t at = j->first + j->n * p / j->parts, aligned = (at + NB_KV_TILE / 2) / NB_KV_TILE * NB_KV_TILE - j->first;
    return aligned < 0 ? 0 : aligned > j->n ? j->n : aligned;
}

static void attention_task(void *ctx, int64_t task) {
    const nb_attention_job *j = ctx;
    const int64_t hd = j->head_dim;
    int64_t kv, first, n;
    const float *q;
    float *out, *ml = NULL;
    if (j->parts > 1) {
        kv = task / j->parts;
        const int64_t p = task % j->parts, h = kv * j->group;
        first = j->first + part_start(j, p);
        n = j->first + part_start(j, p + 1) - first;
        q = j->q + h * hd;
        out = j->out + p * j->q_stride + h * hd;
        ml = j->ml + (p * j->kv_heads * j->group + h) * 2;
    } else {
        const int64_t t = task / j->kv_heads, last = j->start + t;
        kv = task % j->kv_heads;
        first = j->window > 0 && last - j->window + 1 > 0 ? last - j->window + 1 : 0;
        n = last - first + 1;
        q = j->q + t * j->q_stride + kv * j->group * hd;
        out = j->out + t * j->q_stride + kv * j->group * hd;
    }
    const int64_t row = nb_kv_row_bytes(j->format, hd), head = kv * (j->block_slots ? j->block_slots : nb_kv_slots(j->capacity)) * row;
    kv_rows rows = kv_rows_of((const uint8_t *)j->keys + head, (const uint8_t *)j->values + head, j->format, hd);
    if (j->block_slots) {
        rows.bshift = __builtin_ctzll((unsigned long long)j->block_slots);
        rows.block_units = j->block_bytes >> rows.shift;
    }
    attention_heads(rows, q, j->group, row >> rows.shift, j->capacity, first % j->capacity, n, hd, j->scale, out, ml);
}

void nb_attention_run(nb_pool *pool, const nb_attention_job *job) {
    const uint64_t start = nb_budget_start();
    nb_pool_run(pool, attention_task, (void *)job, job->parts > 1 ? job->kv_heads * job->parts : job->count * job->kv_heads);
    nb_budget_add(start, 1);
}

