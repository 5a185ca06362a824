// How fast decode's products stream from memory on 2 threads, against the plain read that
// `nibble bench` calls the memory's rate (not a test). One pass is SmolLM2's products of
// LAYERS layers (QKV 960 × 576, output 576 × 576, gate and up 3072 × 576, down 576 × 1536),
// every matrix in huge pages, each thread taking the first or the second half of each
// product's 16-row groups:
//   read       nb_stream_read over 256 MiB, half a thread;
//   spin       the products with a spin barrier after each (what the pool's hand-off costs
//              at least);
//   spin+gap   the same, thread 0 spending GAP_NS alone after each barrier, the other
//              waiting (the caller's norms, RoPE and quantising between products);
//   free       the products with no barrier (each thread streams its halves back to back).
// Rounds alternate the modes; compare within a round: the memory's rate moves by ±20 %
// between rounds on these VMs. ONE_PRODUCT=1 makes the same bytes one 576-column matrix.
//
//   clang -O3 -fno-math-errno -ISources/CKernels/include Tools/stream_bench.c Sources/CKernels/*.c \
//         -lm -lpthread -ldl -o /tmp/stream_bench
//   /tmp/stream_bench [q4|q8|f32 [LAYERS [GAP_NS [ROUNDS]]]]   (default q4 30 1200 4; LAYERS ≤ 128:
//                                                             120 come from memory, 30 partly from the L3)
#define _GNU_SOURCE
#include "CKernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

enum { READ, SPIN, SPIN_GAP, FREE, MODES };
static const char *mode_names[MODES] = {"read", "spin", "spin+gap", "free"};

typedef struct { const void *w; int64_t rows, k; float *y; } product;
static product products[512];
static int n_products;
static size_t product_bytes;
static nb_format fmt;
static int interleaved;
static float *x_f32[2048];
static void *x_q8[2048];
static uint8_t *read_buffer;
static const size_t read_bytes = 256ul << 20;
static double gap_ns;
static int mode;
static _Atomic int arrived, generation;
static volatile uint64_t sink;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *huge(size_t bytes) {
    bytes = (bytes + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(1); }
    madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

static void spin_barrier(void) {
    const int g = atomic_load_explicit(&generation, memory_order_acquire);
    if (atomic_fetch_add_explicit(&arrived, 1, memory_order_acq_rel) == 1) {
        atomic_store_explicit(&arrived, 0, memory_order_relaxed);
        atomic_store_explicit(&generation, g + 1, memory_order_release);
    } else {
        while (atomic_load_explicit(&generation, memory_order_acquire) == g) __builtin_ia32_pause();
    }
}

static void multiply(const product *p, int t) {
    const int64_t middle = p->rows / 16 / 2 * 16, begin = t == 0 ? 0 : middle, end = t == 0 ? middle : p->rows;
    if (interleaved) nb_matmul_interleaved(fmt, p->w, p->rows, p->k, x_q8[p->k], p->y, 1, p->rows, begin, end);
    else nb_matmul(fmt, p->w, p->rows, p->k, x_f32[p->k], x_q8[p->k], p->y, 1, p->rows, begin, end);
}

enum { PASSES = 8 };

static void *thread_main(void *arg) {
    const int t = (int)(intptr_t)arg;
    for (int p = 0; p < PASSES; p++) {
        spin_barrier();
        if (mode == READ) {
            sink += nb_stream_read(read_buffer + t * (read_bytes / 2), (int64_t)(read_bytes / 2));
            continue;
        }
        for (int i = 0; i < n_products; i++) {
            multiply(&products[i], t);
            if (mode == FREE) continue;
            spin_barrier();
            if (mode == SPIN_GAP) {
                if (t == 0) for (const double end = now() + gap_ns * 1e-9; now() < end;) {}
                spin_barrier();
            }
        }
    }
    spin_barrier();
    return NULL;
}

// GB/s in `m` over PASSES passes (the clock includes starting the other thread: ~0.1 %).
static double pass(int m) {
    mode = m;
    pthread_t other;
    pthread_create(&other, NULL, thread_main, (void *)(intptr_t)1);
    const double start = now();
    thread_main((void *)(intptr_t)0);
    const double seconds = now() - start;
    pthread_join(other, NULL);
    return (double)PASSES * (m == READ ? read_bytes : product_bytes) / seconds / 1e9;
}

static void add(int64_t rows, int64_t k) {
    const size_t bytes = interleaved ? nb_interleaved_bytes(fmt, rows, k) : nb_format_bytes(fmt, rows, k);
    uint8_t *w = huge(bytes);
    // Random codes with small f16 scales (for f32: small values) in every 2-byte word.
    uint64_t s = 0x9E3779B97F4A7C15ull ^ (uint64_t)n_products;
    for (size_t i = 0; i + 1 < bytes; i += 2) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        const uint16_t v = fmt == NB_FMT_F32 ? (uint16_t)(0x3c00 | (s & 0x3ff)) : (uint16_t)(0x1000 | (s & 0x3ff));
        memcpy(w + i, &v, 2);
    }
    products[n_products++] = (product){w, rows, k, aligned_alloc(64, (size_t)rows * 4 + 64)};
    product_bytes += bytes;
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "q4";
    const int layers = argc > 2 ? atoi(argv[2]) : 30, rounds = argc > 4 ? atoi(argv[4]) : 4;
    gap_ns = argc > 3 ? atof(argv[3]) : 1200;
    if (!strcmp(name, "q4")) fmt = NB_FMT_Q4, interleaved = 1;
    else if (!strcmp(name, "q8")) fmt = NB_FMT_Q8, interleaved = 1;
    else if (!strcmp(name, "f32")) fmt = NB_FMT_F32, interleaved = 0;
    else { fprintf(stderr, "format: q4, q8 or f32\n"); return 1; }
    if (layers < 1 || layers * 4 > 512) { fprintf(stderr, "layers: 1 to 128\n"); return 1; }
    for (int k = 576; k <= 1536; k += 960) {
        x_f32[k] = aligned_alloc(64, (size_t)k * 4);
        for (int i = 0; i < k; i++) x_f32[k][i] = (float)((i * 7919) % 201 - 100) / 50.0f;
        const size_t q = nb_activation_bytes(NB_ACT_Q8A, 1, k);
        x_q8[k] = aligned_alloc(64, (q + 63) & ~(size_t)63);
        nb_quantize_for(NB_ACT_Q8A, x_f32[k], 1, k, x_q8[k]);
    }
    if (getenv("ONE_PRODUCT")) {  // the same bytes as one matrix: what the products' boundaries cost
        const int64_t rows = (int64_t)layers * (960 + 576 + 3072 + 1536);
        add(rows / 16 * 16, 576);
    } else {
        for (int l = 0; l < layers; l++) add(960, 576), add(576, 576), add(3072, 576), add(576, 1536);
    }
    read_buffer = huge(read_bytes);
    memset(read_buffer, 1, read_bytes);
    printf("%s, %d products, %.1f MiB a pass; %s; 2 threads; GB/s (share of the read in the same round)\n", name,
           n_products, product_bytes / 1048576.0, nb_cpu_features());
    for (int r = 0; r < rounds; r++) {
        double rate[MODES];
        for (int m = 0; m < MODES; m++) rate[m] = pass(r % 2 ? MODES - 1 - m : m);
        if (r % 2) for (int m = 0; m < MODES / 2; m++) { double t = rate[m]; rate[m] = rate[MODES - 1 - m]; rate[MODES - 1 - m] = t; }
        printf("round %d:", r + 1);
        for (int m = 0; m < MODES; m++) {
            if (m == READ) printf("  %s %.1f", mode_names[m], rate[m]);
            else printf("  %s %.1f (%.0f %%)", mode_names[m], rate[m], 100 * rate[m] / rate[READ]);
            if (m == SPIN_GAP) printf(" [gap %.0f ns]", gap_ns);
        }
        printf("\n");
    }
    return 0;
}
