// Decode attention over the KV cache, and what reading that cache costs without it (not a
// test): one token's attention for `layers` layers of SmolLM2-135M's shape (3 KV heads, 3
// query heads each, head dimension 64) at N positions, on a pool of T threads, split as
// Layers.swift splits it (a task per KV head and range of positions; ranges when the threads
// do not divide the KV heads and N ≥ 64). Each layer has a cache of its own, so with the
// default 120 layers (94 MB of f16 keys and values at N = 1,024) every layer's cache comes
// from memory; with 4 it stays in the CPU's caches.
//
// Modes:
//   attention  nb_attention_run and nb_attention_merge, as decode runs them;
//   read       the same tasks reading the same bytes (keys then values, 128 positions at a
//              time, prefetchnta 64 positions ahead, as the kernel does) with no arithmetic:
//              the rate the memory gives this access pattern, the bound for any kernel;
//   read+W     read, with W × 6 independent 512-bit FMAs per 128 bytes (an f16 row at head
//              dimension 64; W = 4: the kernel's 24 FMAs per key and value of 3 query heads):
//              the bound for a kernel that does that much arithmetic. Without AVX-512,
//              256-bit FMAs (W = 8 for the kernel's).
//
//   clang -O3 -fno-math-errno -ISources/CKernels/include Tools/attention_bench.c \
//         Sources/CKernels/*.c -lm -lpthread -ldl -o /tmp/attention_bench
//   /tmp/attention_bench [N [LAYERS [THREADS [f32|f16|q8 [MODE...]]]]]
//                        (default 1024 120 2 f16 attention read read+4)
//
// With STREAM_MB=M, after each layer's attention the threads read M MiB of other data of that
// layer's own (as decode reads the next products' weights: SmolLM2 at q4 is about 3.2 MiB a
// layer), untimed; STREAM_HINT=nta (default: prefetchnta 1 KiB ahead, as the kernels do), none
// or flush (clflushopt each line once read). This shows whether a cache that would fit the
// L3 (30 layers of f16 at N = 1,024 are 22.5 MiB) stays there while the weights stream past.
// HUGE=1 puts the caches and that data in transparent huge pages (2 MiB-aligned maps
// advised MADV_HUGEPAGE), as the engine's weights and KV cache are; KV_HUGE=0|1 says it for
// the caches alone. BLOCK=B lays the caches out in blocks of B slots as KVCache does
// ([block][layer][KV head][B slots]; the read modes need BLOCK unset).
//
// Prints, per mode, the best and the median of 15 rounds (3 warm-up rounds dropped; a round
// goes through the layers as many times as it takes to run 240) as µs per layer and the
// cache's bytes over that time.
#include "CKernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdint.h>
#include <sys/mman.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { CHUNK = 128, AHEAD = 64, ROUNDS = 15, WARM = 3, MAX_HD = 512 };
// The model's shape: SmolLM2-135M's unless SHAPE=KV_HEADS,GROUP,HD says another (Gemma 3
// 270M: SHAPE=1,4,256).
static int64_t KV_HEADS = 3, GROUP = 3, HD = 64;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

typedef struct {
    const uint8_t *keys, *values;  // the layer's head 0, slot 0
    int64_t capacity, row, n, parts;
    int work;  // FMAs per row, in sixes
} read_job;

static volatile float sink;

// One KV head's range of positions, read as the kernel reads it: a chunk's keys, then its
// values, each a run of contiguous bytes (the positions are in order here), 128 bytes a step
// (two loads; the lines 64 positions ahead prefetched), with W × 6 FMAs per step. (A loop
// over each row's bytes, as a generic read of any row size would have, read 20 % slower.)
#if defined(__x86_64__)
// The body of read_task_avx512 and read_task_avx2, for integer and float vectors VI and VF:
// FOLD(a, p) xors the 64 bytes at p into a; it leaves the FMAs' sum in `sum` and the
// integer accumulators in a0 and a1.
#define READ_TASK_BODY(VI, VF, IZERO, FOLD, SET1, FMADD, ADD)                                                     \
    const read_job *j = ctx;                                                                                      \
    const int64_t kv = task / j->parts, p = task % j->parts, first = j->n * p / j->parts,                        \
                  n = j->n * (p + 1) / j->parts - first;                                                         \
    const uint8_t *K = j->keys + (kv * j->capacity + first) * j->row, *V = j->values + (kv * j->capacity + first) * j->row; \
    const int64_t ahead = AHEAD * j->row;                                                                          \
    VI a0 = IZERO(), a1 = a0;                                                                                      \
    VF f[6];                                                                                                       \
    const VF m = SET1(0.999f);                                                                                     \
    for (int i = 0; i < 6; i++) f[i] = SET1(1.0f);                                                                 \
    for (int64_t c0 = 0; c0 < n; c0 += CHUNK) {                                                                    \
        const int64_t b0 = c0 * j->row, b1 = (n - c0 < CHUNK ? n : c0 + CHUNK) * j->row;                         \
        for (int pass = 0; pass < 2; pass++) {                                                                     \
            const uint8_t *base = pass ? V : K;                                                                    \
            for (int64_t b = b0; b < b1; b += 128) {                                                               \
                _mm_prefetch((const char *)base + b + ahead, _MM_HINT_NTA);                                        \
                _mm_prefetch((const char *)base + b + ahead + 64, _MM_HINT_NTA);                                   \
                a0 = FOLD(a0, base + b);                                                                           \
                a1 = FOLD(a1, base + b + 64);                                                                      \
                for (int w = 0; w < j->work; w++) /* six independent chains */                                     \
                    for (int i = 0; i < 6; i++) f[i] = FMADD(f[i], m, m);                                          \
            }                                                                                                      \
        }                                                                                                          \
    }                                                                                                              \
    const VF sum = ADD(ADD(ADD(f[0], f[1]), ADD(f[2], f[3])), ADD(f[4], f[5]));

__attribute__((target("avx512f"))) static inline __m512i fold_avx512(__m512i a, const uint8_t *p) {
    return _mm512_xor_si512(a, _mm512_loadu_si512(p));
}

__attribute__((target("avx512f"))) static void read_task_avx512(void *ctx, int64_t task) {
    READ_TASK_BODY(__m512i, __m512, _mm512_setzero_si512, fold_avx512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps)
    float lanes[16];
    _mm512_storeu_ps(lanes, sum);
    sink = lanes[0] + (float)(_mm512_reduce_add_epi32(_mm512_xor_si512(a0, a1)) & 1);
}

// The same with AVX2: 256-bit loads and W × 6 independent 256-bit FMAs per 128 bytes (W = 8:
// the kernel's FMAs per f16 key and value of 3 query heads at head dimension 64).
__attribute__((target("avx2"))) static inline __m256i fold_avx2(__m256i a, const uint8_t *p) {
    return _mm256_xor_si256(a, _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)p), _mm256_loadu_si256((const __m256i *)(p + 32))));
}

__attribute__((target("avx2,fma"))) static void read_task_avx2(void *ctx, int64_t task) {
    READ_TASK_BODY(__m256i, __m256, _mm256_setzero_si256, fold_avx2, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps)
    float lanes[8];
    _mm256_storeu_ps(lanes, sum);
    sink = lanes[0] + (float)(_mm256_extract_epi32(_mm256_xor_si256(a0, a1), 0) & 1);
}
#undef READ_TASK_BODY
#endif

static void read_task_scalar(void *ctx, int64_t task) {
    const read_job *j = ctx;
    const int64_t kv = task / j->parts, p = task % j->parts, first = j->n * p / j->parts, n = j->n * (p + 1) / j->parts - first;
    const uint8_t *K = j->keys + (kv * j->capacity + first) * j->row, *V = j->values + (kv * j->capacity + first) * j->row;
    uint64_t acc = 0;
    for (int64_t c0 = 0; c0 < n; c0 += CHUNK) {
        const int64_t b0 = c0 * j->row, b1 = (n - c0 < CHUNK ? n : c0 + CHUNK) * j->row;
        for (int pass = 0; pass < 2; pass++)
            for (int64_t b = b0; b + 8 <= b1; b += 8) {
                uint64_t w;
                memcpy(&w, (pass ? V : K) + b, 8);
                acc ^= w;
            }
    }
    sink = (float)(acc & 1);
}

// Between layers (STREAM_MB set): the layer's share of "weights", read by the threads in
// halves as the products read theirs: 512-bit loads, with STREAM_HINT nta (prefetchnta 1 KiB
// ahead, as the kernels do), none (loads only), or flush (nta, then clflushopt of each line
// once read, so the line never reaches the L3 as a victim).
typedef struct { const uint8_t *base; int64_t bytes; int hint; } stream_job;
#if defined(__x86_64__)
__attribute__((target("avx512f,clflushopt"))) static void stream_range(void *ctx, int64_t begin, int64_t end) {
    const stream_job *j = ctx;
    const int64_t b0 = j->bytes * begin / 2 / 64 * 64, b1 = j->bytes * end / 2 / 64 * 64;
    __m512i a = _mm512_setzero_si512();
    for (int64_t b = b0; b < b1; b += 64) {
        if (j->hint) _mm_prefetch((const char *)j->base + b + 1024, _MM_HINT_NTA);
        a = _mm512_xor_si512(a, _mm512_load_si512(j->base + b));
        if (j->hint == 2 && b >= b0 + 256) _mm_clflushopt((void *)(j->base + b - 256));
    }
    sink = (float)(_mm512_reduce_add_epi32(a) & 1);
}
#endif

// huge: 2 MiB-aligned memory advised MADV_HUGEPAGE (transparent huge pages), else aligned_alloc.
static void *buffer(size_t bytes, int huge_pages) {
    if (!huge_pages) return aligned_alloc(64, (bytes + 63) / 64 * 64);
    const size_t huge = 2u << 20;
    char *p = mmap(NULL, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    char *a = (char *)(((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1));
    madvise(a, bytes, MADV_HUGEPAGE);
    return a;  // never freed: the process ends
}

static int64_t gcd(int64_t a, int64_t b) { return b == 0 ? a : gcd(b, a % b); }

int main(int argc, char **argv) {
    const int64_t n = argc > 1 ? atoll(argv[1]) : 1024, layers = argc > 2 ? atoll(argv[2]) : 120;
    const int threads = argc > 3 ? atoi(argv[3]) : 2;
    const char *fname = argc > 4 ? argv[4] : "f16";
    const int fmt = !strcmp(fname, "f32") ? NB_KV_F32 : !strcmp(fname, "q8") ? NB_KV_Q8 : NB_KV_F16;
    const char *default_modes[] = {"attention", "read", "read+4"};
    const char **modes = argc > 5 ? (const char **)argv + 5 : default_modes;
    const int n_modes = argc > 5 ? argc - 5 : 3;
    if (getenv("SHAPE")) {
        long long kvh, group, hd;
        if (sscanf(getenv("SHAPE"), "%lld,%lld,%lld", &kvh, &group, &hd) != 3 || kvh < 1 || group < 1 || hd < 32 || hd > MAX_HD || hd % 32) {
            fprintf(stderr, "SHAPE=%s: not KV_HEADS,GROUP,HD (HD a multiple of 32 up to %d)\n", getenv("SHAPE"), MAX_HD);
            return 2;
        }
        KV_HEADS = kvh, GROUP = group, HD = hd;
    }
    if (n < 1 || layers < 1 || threads < 1) { fprintf(stderr, "usage: %s [N [LAYERS [THREADS [f32|f16|q8 [MODE...]]]]]\n", argv[0]); return 2; }

    // BLOCK=B: the cache in blocks of B slots as KVCache lays it out ([block][layer][head][B
    // slots]); otherwise each layer's heads contiguous. KV_HUGE=0|1: the cache's pages (default HUGE's).
    const int64_t block = getenv("BLOCK") ? atoll(getenv("BLOCK")) : 0;
    if (block && (block & (block - 1) || block % NB_KV_TILE)) { fprintf(stderr, "BLOCK=%lld: not a power of two multiple of %d\n", (long long)block, NB_KV_TILE); return 2; }
    const int huge = getenv("HUGE") && !strcmp(getenv("HUGE"), "1");
    const int kv_huge = getenv("KV_HUGE") ? !strcmp(getenv("KV_HUGE"), "1") : huge;
    const int64_t capacity = block ? (n + 64 + block - 1) / block * block : nb_kv_slots(n + 64), row = nb_kv_row_bytes(fmt, HD),
                  per = KV_HEADS * capacity * row;
    // A layer's head 0 at layer_base · l bytes; its blocks block_bytes apart.
    const int64_t layer_base = block ? KV_HEADS * block * row : per, block_bytes = block ? layers * KV_HEADS * block * row : 0;
    uint8_t *keys = buffer((size_t)(per * layers), kv_huge), *values = buffer((size_t)(per * layers), kv_huge);
    if (!keys || !values) { fprintf(stderr, "out of memory\n"); return 1; }
    float x[MAX_HD];
    for (int64_t r = 0; r < KV_HEADS * capacity * layers; r++)
        for (int pass = 0; pass < 2; pass++) {
            for (int i = 0; i < HD; i++) x[i] = (float)((((uint64_t)r * 2 + pass) * 64 + i) * 2654435761u >> 20 & 0x3ff) / 512.0f - 1;
            uint8_t *dst = (pass ? values : keys) + r * row;
            if (fmt == NB_KV_Q8) nb_kv_q8_quantize(x, HD, dst);
            else if (fmt == NB_KV_F16) nb_f32_to_f16(x, (uint16_t *)dst, HD);
            else memcpy(dst, x, (size_t)HD * sizeof(float));
        }
    const int64_t heads = KV_HEADS * GROUP, q_dim = heads * HD;
    // Layers.swift: ranges of positions when the threads do not divide the KV heads.
    int64_t parts = threads / gcd(KV_HEADS, threads);
    if (KV_HEADS % threads == 0 || parts > n / 32) parts = 1;  // as Layers.swift
    float *q = malloc(sizeof(float) * (size_t)q_dim), *out = malloc(sizeof(float) * (size_t)(q_dim * (parts + 1)));
    float *ml = malloc(sizeof(float) * (size_t)(2 * heads * parts));
    for (int64_t i = 0; i < q_dim; i++) q[i] = (float)(i % 13) * 0.01f;
    nb_pool *pool = nb_pool_create(threads);
    printf("CPU features: %s; kernels %s; %d thread(s); %lld positions, %lld layers, %s cache, %lld part(s) per KV head, %s%s\n",
           nb_cpu_features(), nb_isa_name(nb_active_isa()), threads, (long long)n, (long long)layers, fname, (long long)parts,
           block ? "blocks of slots, " : "", kv_huge ? "huge pages" : "4 KiB pages");

    const double stream_mb = getenv("STREAM_MB") ? atof(getenv("STREAM_MB")) : 0;
    const char *hint_name = getenv("STREAM_HINT") ? getenv("STREAM_HINT") : "nta";
    const int hint = !strcmp(hint_name, "none") ? 0 : !strcmp(hint_name, "flush") ? 2 : 1;
    const int64_t stream_bytes = (int64_t)(stream_mb * 1048576) / 64 * 64;
    uint8_t *weights = stream_bytes ? buffer((size_t)(stream_bytes * layers), huge) : NULL;
    if (weights) {
        memset(weights, 1, (size_t)(stream_bytes * layers));
        printf("between layers: %.1f MiB of other data each (%.0f MiB in all), %s\n", stream_mb, stream_mb * layers, hint_name);
    }
    const int64_t passes = layers >= 240 ? 1 : (240 + layers - 1) / layers;  // rounds of ≥ 240 layers
    const double bytes = (double)layers * KV_HEADS * (double)n * (double)row * 2;
    for (int mi = 0; mi < n_modes; mi++) {
        const char *mode = modes[mi];
        const int attention = !strcmp(mode, "attention");
        int work = 0;
        if (!attention && strcmp(mode, "read") && sscanf(mode, "read+%d", &work) != 1) {
            fprintf(stderr, "%s: not a mode (attention, read, read+W)\n", mode);
            return 2;
        }
        nb_task_fn read_task = read_task_scalar;
#if defined(__x86_64__)
        if (__builtin_cpu_supports("avx512f")) read_task = read_task_avx512;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) read_task = read_task_avx2;
#endif
        if (!attention && work > 0 && read_task == read_task_scalar) { printf("%-10s (needs AVX-512)\n", mode); continue; }
        if (!attention && block) { printf("%-10s (not with BLOCK)\n", mode); continue; }
        double t[ROUNDS], ts[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            double t0 = now(), streamed = 0;
            for (int64_t step = 0; step < passes * layers; step++) {
                const int64_t l = step % layers;
                const uint8_t *k = keys + layer_base * l, *v = values + layer_base * l;
                if (attention) {
                    nb_attention_job job = {.keys = k, .values = v, .format = fmt, .capacity = capacity, .head_dim = HD,
                                            .block_slots = block, .block_bytes = block_bytes, .kv_heads = KV_HEADS, .group = GROUP,
                                            .q = q, .out = out, .q_stride = q_dim, .scale = 0.125f, .count = 1, .start = n - 1,
                                            .window = 0, .parts = parts, .first = 0, .n = n, .ml = parts > 1 ? ml : NULL};
                    if (parts > 1) {
                        job.out = out + q_dim;
                        nb_attention_run(pool, &job);
                        nb_attention_merge(out + q_dim, ml, parts, heads, HD, out);
                    } else {
                        job.parts = 1;
                        nb_attention_run(pool, &job);
                    }
                } else {
                    read_job job = {k, v, capacity, row, n, parts, work};
                    nb_pool_run(pool, read_task, &job, KV_HEADS * parts);
                }
#if defined(__x86_64__)
                if (weights) {  // not timed: the next product's weights
                    const double s0 = now();
                    stream_job sj = {weights + stream_bytes * l, stream_bytes, hint};
                    nb_pool_run_ranges(pool, stream_range, &sj, 2, 1);
                    streamed += now() - s0;
                }
#endif
            }
            t[r] = (now() - t0 - streamed) / passes;
            ts[r] = streamed / passes;
        }
        qsort(t + WARM, ROUNDS - WARM, sizeof(double), cmp);
        const double best = t[WARM], median = t[WARM + (ROUNDS - WARM) / 2];
        printf("%-10s %7.2f us per layer (median %7.2f)  %6.1f GB/s (median %6.1f)\n", mode, best / layers * 1e6, median / layers * 1e6,
               bytes / best / 1e9, bytes / median / 1e9);
        if (weights) {
            qsort(ts + WARM, ROUNDS - WARM, sizeof(double), cmp);
            const double sm = ts[WARM + (ROUNDS - WARM) / 2];
            printf("%-10s %7.2f us per layer (median)            %6.1f GB/s (median)\n", "  stream", sm / layers * 1e6,
                   (double)stream_bytes * layers / sm / 1e9);
        }
    }
    nb_pool_destroy(pool);
    free(q), free(out), free(ml);  // the caches and weights: freed with the process
    return 0;
}
