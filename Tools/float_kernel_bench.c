// Microbenchmark of the float kernels (not a test): single-thread, best of N, at the AVX2
// and AVX-512 levels —
//   prefill: f32, f16, bf16 nb_matmul of SmolLM2's shapes × 128 tokens (GFLOP/s, in cache),
//   and × 64 tokens (the model's prefill chunk) with the weights from memory (a new copy of
//   the matrix each call, 160 MB of copies in all);
//   decode from memory: one token through a 65536 × 576 matrix (GB/s of weights);
//   attention: SmolLM2's decode at 1,024 tokens of context (30 layers × 3 KV heads × 3 query
//   heads, head 64, f16 cache), the cache once from memory and once in cache.
//
//   clang -O3 -fno-math-errno -ISources/CKernels/include Tools/float_kernel_bench.c Sources/CKernels/*.c \
//         -lm -lpthread -o /tmp/float_kernel_bench && /tmp/float_kernel_bench
#include "CKernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static float frand(void) { return (float)(rand() % 2001 - 1000) * 1e-3f; }

static void *packed(nb_format f, int rows, int k) {
    float *wf = malloc((size_t)rows * k * 4);
    for (size_t i = 0; i < (size_t)rows * k; i++) wf[i] = frand();
    size_t bytes = nb_format_bytes(f, rows, k);
    void *w = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    nb_pack(f, wf, rows, k, w);
    free(wf);
    return w;
}

// bf16 at AVX-512 runs twice on a CPU with AVX512-BF16: with vdpbf16ps and without (FMA).
static int variants(int f, int lv) {
    if (f != NB_FMT_BF16 || lv != NB_ISA_AVX512) return 1;
    nb_isa previous = nb_force_isa((nb_isa)lv);
    int dot = nb_bf16_dot_products_active();
    nb_force_isa(previous);
    return dot ? 2 : 1;
}
static const char *label(int f, int lv) {
    if (f != NB_FMT_BF16 || lv != NB_ISA_AVX512) return "";
    return nb_bf16_dot_products_active() ? " dpbf16" : " fma";
}

/// Times nb_matmul of `n` tokens (best of `reps`) at every SIMD level this CPU has (avxvnni:
/// the avx2 float paths, skipped), bf16 at AVX-512 with and without vdpbf16ps, and prints
/// GFLOP/s (prefill) or GB/s of weights (one token).
static void at_every_level(const char *kind, int f, const void *w, int rows, int k, const float *x, float *y, int n,
                           int reps, const char *what) {
    for (int lv = NB_ISA_AVX2; lv <= NB_ISA_AVX512; lv++) {
        if (!nb_isa_supported(lv) || lv == NB_ISA_AVXVNNI) continue;
        nb_force_isa(lv);
        for (int v = 0; v < variants(f, lv); v++) {
            nb_bf16_dot_products(v == 0);
            double best = 1e9;
            for (int rep = 0; rep < reps; rep++) {
                double t0 = now();
                nb_matmul(f, w, rows, k, x, NULL, y, n, rows, 0, rows);
                double dt = now() - t0;
                if (dt < best) best = dt;
            }
            if (n > 1)
                printf("%s %-4s %s  %-6s%s %7.1f GFLOP/s\n", kind, nb_format_get(f)->name, what, nb_isa_name(lv), label(f, lv),
                       2.0 * rows * k * n / best * 1e-9);
            else
                printf("%s %-4s %s  %-6s%s %7.1f GB/s\n", kind, nb_format_get(f)->name, what, nb_isa_name(lv), label(f, lv),
                       nb_format_bytes(f, rows, k) / best * 1e-9);
        }
        nb_bf16_dot_products(1);
    }
}

int main(void) {
    printf("CPU features: %s; one thread, best of the runs\n", nb_cpu_features());
    const int shapes[][2] = {{576, 576}, {1536, 576}, {576, 1536}}, n = 128;
    float *x = aligned_alloc(64, (size_t)n * 1536 * 4), *y = aligned_alloc(64, (size_t)65536 * 4 + n * 1536 * 4);
    for (int i = 0; i < n * 1536; i++) x[i] = frand();
    for (int f = NB_FMT_F32; f <= NB_FMT_BF16; f++)
        for (int s = 0; s < 3; s++) {
            const int rows = shapes[s][0], k = shapes[s][1];
            void *w = packed(f, rows, k);
            char what[64];
            snprintf(what, sizeof what, "%4d x %4d x %d tokens", rows, k, n);
            at_every_level("prefill", f, w, rows, k, x, y, n, 20, what);
            free(w);
        }
    for (int f = NB_FMT_F32; f <= NB_FMT_BF16; f++)
        for (int s = 0; s < 3; s++) {
            const int rows = shapes[s][0], k = shapes[s][1], chunk = 64;
            const size_t bytes = (nb_format_bytes(f, rows, k) + 63) & ~(size_t)63;
            const int copies = (int)(160e6 / bytes);
            char *w = packed(f, rows, k), *all = aligned_alloc(64, bytes * copies);
            for (int c = 0; c < copies; c++) memcpy(all + bytes * c, w, bytes);
            free(w);
            for (int lv = NB_ISA_AVX2; lv <= NB_ISA_AVX512; lv++) {
                if (!nb_isa_supported(lv) || lv == NB_ISA_AVXVNNI) continue;
                nb_force_isa(lv);
                double best = 1e9;
                for (int rep = 0; rep < 5; rep++) {
                    double t0 = now();
                    for (int c = 0; c < copies; c++) nb_matmul(f, all + bytes * c, rows, k, x, NULL, y, chunk, rows, 0, rows);
                    double dt = (now() - t0) / copies;
                    if (dt < best) best = dt;
                }
                printf("prefill %-4s %4d x %4d x %d tokens, weights from memory  %-6s %7.1f GFLOP/s\n", nb_format_get(f)->name,
                       rows, k, chunk, nb_isa_name(lv), 2.0 * rows * k * chunk / best * 1e-9);
            }
            free(all);
        }
    for (int f = NB_FMT_F32; f <= NB_FMT_BF16; f++) {
        const int rows = 65536, k = 576;
        void *w = packed(f, rows, k);
        char what[64];
        snprintf(what, sizeof what, "%d x %d from memory", rows, k);
        at_every_level("decode ", f, w, rows, k, x, y, 1, 10, what);
        free(w);
    }
    const int positions = 1024, hd = 64, kv_heads = 3, group = 3, layers = 30;
    const size_t per_layer = (size_t)kv_heads * positions * hd;  // the cache's [kvHead][slot][headDim]
    uint16_t *keys = malloc(per_layer * layers * 2), *values = malloc(per_layer * layers * 2);
    for (size_t i = 0; i < per_layer * layers; i++) {
        keys[i] = (uint16_t)(0x3800 | (rand() & 0x3ff));
        values[i] = (uint16_t)(0xB800 ^ (rand() & 0x83ff));
    }
    float q[3 * 64], out[3 * 64];
    for (int i = 0; i < 3 * 64; i++) q[i] = frand();
    for (int lv = NB_ISA_AVX2; lv <= NB_ISA_AVX512; lv++) {
        if (!nb_isa_supported(lv) || lv == NB_ISA_AVXVNNI) continue;  // avxvnni: the avx2 float paths
        nb_force_isa(lv);
        for (int cached = 0; cached <= 1; cached++) {
            double best = 1e9;
            for (int rep = 0; rep < 10; rep++) {
                double t0 = now();
                for (int l = 0; l < layers; l++)
                    for (int h = 0; h < kv_heads; h++) {
                        const size_t o = (cached ? 0 : l * per_layer) + (size_t)h * positions * hd;
                        nb_attention_f16kv(q, group, keys + o, values + o, hd, positions, 0, positions, hd, 0.125f, out, NULL);
                    }
                double dt = now() - t0;
                if (dt < best) best = dt;
            }
            printf("attention, 1 token over %d positions × 30 layers (SmolLM2), %s  %-6s %6.3f ms\n", positions,
                   cached ? "in cache   " : "from memory", nb_isa_name(lv), best * 1e3);
        }
    }
    return 0;
}
