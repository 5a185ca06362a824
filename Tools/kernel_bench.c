// Decode/prefill microbenchmark of the block-format kernels (not a test): single-thread
// nb_matmul time for a rows × k matrix of random blocks (the formats with an interleaved layout also so:
// nb_matmul_interleaved), at 1 and 64 tokens, on the AVX2,
// AVX-VNNI and AVX-512 (VNNI) paths this CPU has (best of 7 runs, the levels taking turns),
// and, when llama.cpp's libggml-cpu.so is found, ggml's own
// ggml_vec_dot_*_q8_* on the same blocks (nb_q8k is byte-identical to block_q8_K; for the
// 32-block formats ggml's quantize_row_q8_0 makes its activations).
//
//   clang -O3 -fno-math-errno -ISources/CKernels/include Tools/kernel_bench.c Sources/CKernels/*.c \
//         -lm -lpthread -ldl -o /tmp/kernel_bench
//   /tmp/kernel_bench [ROWS K [LEVEL...]]  (default 640 2048: Gemma 3 270M's ffn_down; LEVELs
//                                          e.g. avx2 avxvnni: only those, default all SIMD ones)
//   GGML_CPU=path/to/libggml-cpu.so   (default ~/.cache/nibble/llama.cpp-build/bin/libggml-cpu.so)
#include "CKernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <dlfcn.h>
static uint64_t st = 12345;
static uint64_t rnd(void) { st ^= st << 13; st ^= st >> 7; st ^= st << 17; return st; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static void set_h(uint8_t *p, float f) { _Float16 h = (_Float16)f; memcpy(p, &h, 2); }
typedef void (*vec_dot_t)(int n, float *s, size_t bs, const void *vx, size_t bx, const void *vy, size_t by, int nrc);
typedef void (*qrow_t)(const float *x, void *y, int64_t k);
int main(int argc, char **argv) {
    char path[1024];
    snprintf(path, sizeof path, "%s/.cache/nibble/llama.cpp-build/bin/libggml-cpu.so", getenv("HOME") ? getenv("HOME") : "");
    void *lib = dlopen(getenv("GGML_CPU") ? getenv("GGML_CPU") : path, RTLD_NOW);
    if (!lib) printf("(no libggml-cpu.so: ggml rows skipped)\n");
    struct { nb_format f; const char *dot; const char *q; } cases[] = {
        {NB_FMT_Q4_K, "ggml_vec_dot_q4_K_q8_K", "quantize_row_q8_K"}, {NB_FMT_Q6_K, "ggml_vec_dot_q6_K_q8_K", "quantize_row_q8_K"},
        {NB_FMT_Q5_K, "ggml_vec_dot_q5_K_q8_K", "quantize_row_q8_K"},
        {NB_FMT_Q5_0, "ggml_vec_dot_q5_0_q8_0", "quantize_row_q8_0"}, {NB_FMT_Q8, "ggml_vec_dot_q8_0_q8_0", "quantize_row_q8_0"},
        {NB_FMT_Q4, NULL, NULL}, {NB_FMT_Q4_0, "ggml_vec_dot_q4_0_q8_0", "quantize_row_q8_0"}};
    int rows = argc > 1 ? atoi(argv[1]) : 640, k = argc > 2 ? atoi(argv[2]) : 2048;
    nb_isa levels[8];
    int n_levels = 0;
    for (int a = 3; a < argc && n_levels < 8; a++) {
        int lv = nb_parse_isa(argv[a]);
        if (lv < 0 || !nb_isa_supported((nb_isa)lv)) { fprintf(stderr, "%s: not a level this CPU has\n", argv[a]); return 1; }
        levels[n_levels++] = (nb_isa)lv;
    }
    if (argc <= 3) {
        const nb_isa all[] = {NB_ISA_AVX2, NB_ISA_AVXVNNI, NB_ISA_AVX512};
        for (int i = 0; i < 3; i++) if (nb_isa_supported(all[i])) levels[n_levels++] = all[i];
    }
    printf("CPU features: %s; single thread\n", nb_cpu_features());
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nb_format fmt = cases[c].f; const nb_format_info *info = nb_format_get(fmt);
        if (k % info->block != 0) {  // e.g. the K-quants' 256 at SmolLM2's k = 576
            printf("%-6s %dx%d: k is not a multiple of the block (%d), skipped\n", info->name, rows, k, (int)info->block);
            continue;
        }
        size_t wb = nb_format_bytes(fmt, rows, k);
        uint8_t *w = aligned_alloc(64, (wb + 63) & ~63);
        for (size_t i = 0; i < wb; i++) w[i] = rnd();
        for (int64_t b = 0; b < (int64_t)rows * k / info->block; b++) {
            uint8_t *p = w + b * info->block_bytes;
            if (fmt == NB_FMT_Q6_K) set_h(p + 208, 0.001f); else { set_h(p, 0.001f); if (info->block_bytes != 34 && info->block_bytes != 18 && info->block_bytes != 22) set_h(p + 2, 0.001f); }
        }
        for (int T = 1; T <= 64; T += 63) {
            float *x = malloc(sizeof(float) * T * k), *y = malloc(sizeof(float) * T * rows);
            for (int i = 0; i < T * k; i++) x[i] = (rnd() % 1000) / 500.0f - 1;
            size_t xb = nb_activation_bytes(info->activation, T, k);
            void *xq = malloc(xb);
            nb_quantize_for(info->activation, x, T, k, xq);
            // Best of 7 runs per level, the levels taking turns (a shared machine's noise hits
            // them alike).
            // The formats with an interleaved layout also in it (what WeightMatrix holds).
            const size_t ilb = nb_interleaved_bytes(fmt, rows, k);
            uint8_t *il = ilb ? aligned_alloc(64, ilb) : NULL;
            if (il) nb_interleave(fmt, rows, k, w, 0, rows, il);
            double best[8], best_il[8];
            for (int l = 0; l < n_levels; l++) best[l] = best_il[l] = 1e30;
            for (int run = 0; run < 7; run++)
                for (int l = 0; l < n_levels; l++) {
                    nb_force_isa(levels[l]);
                    int reps = T == 1 ? 300 : 6;
                    nb_matmul(fmt, w, rows, k, x, xq, y, T, rows, 0, rows);
                    double t0 = now();
                    for (int i = 0; i < reps; i++) nb_matmul(fmt, w, rows, k, x, xq, y, T, rows, 0, rows);
                    double dt = (now() - t0) / reps;
                    if (dt < best[l]) best[l] = dt;
                    if (!il) continue;
                    nb_matmul_interleaved(fmt, il, rows, k, xq, y, T, rows, 0, rows);
                    t0 = now();
                    for (int i = 0; i < reps; i++) nb_matmul_interleaved(fmt, il, rows, k, xq, y, T, rows, 0, rows);
                    dt = (now() - t0) / reps;
                    if (dt < best_il[l]) best_il[l] = dt;
                }
            for (int l = 0; l < n_levels; l++) {
                double dt = best[l];
                printf("%-5s %4dx%-5d T=%-2d %-7s %8.1f us  %6.1f GMAC/s  %5.1f GB/s\n", info->name, rows, k, T, nb_isa_name(levels[l]),
                       dt * 1e6, (double)rows * k * T / dt * 1e-9, wb / dt * 1e-9);
                if (il)
                    printf("%-5s %4dx%-5d T=%-2d %-7s %8.1f us  %6.1f GMAC/s  %5.1f GB/s  (interleaved)\n", info->name, rows, k, T,
                           nb_isa_name(levels[l]), best_il[l] * 1e6, (double)rows * k * T / best_il[l] * 1e-9, ilb / best_il[l] * 1e-9);
            }
            free(il);
            if (lib && cases[c].dot) {
                vec_dot_t dot = (vec_dot_t)dlsym(lib, cases[c].dot); qrow_t q = (qrow_t)dlsym(lib, cases[c].q);
                size_t gb = info->activation == NB_ACT_Q8K ? 292 * (k / 256) : 34 * (k / 32);
                uint8_t *gx = malloc(gb * T);
                for (int t = 0; t < T; t++) q(x + t * k, gx + t * gb, k);
                int reps = T == 1 ? 2000 : 40;
                double t0 = now();
                for (int i = 0; i < reps; i++)
                    for (int t = 0; t < T; t++) for (int r = 0; r < rows; r++) dot(k, y + t * rows + r, 0, w + r * (wb / rows), 0, gx + t * gb, 0, 1);
                double dt = (now() - t0) / reps;
                printf("%-5s %4dx%-5d T=%-2d %-6s %8.1f us  %6.1f GMAC/s  (ggml vec_dot)\n", info->name, rows, k, T, "ggml", dt * 1e6, (double)rows * k * T / dt * 1e-9);
                free(gx);
            }
            free(x); free(y); free(xq);
        }
        free(w);
    }
}
