// Hot numeric kernels for Nibble, with runtime CPU dispatch.
//
// Every kernel has a portable scalar version; SIMD versions (x86-64 AVX2+FMA, AVX-512F)
// are chosen once at start-up from what the CPU reports. Tests compare each SIMD path
// against the scalar one through nb_force_isa().
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- CPU features ---------------------------------------------------------------

typedef enum {
    NB_ISA_SCALAR = 0,
    NB_ISA_AVX2 = 1,     // AVX2 + FMA + F16C
    NB_ISA_AVX512 = 2,   // AVX-512 F/BW/VL (+ VNNI, BF16 reported separately)
    NB_ISA_NEON = 3,
} nb_isa;

/// The instruction set the kernels dispatch to.
nb_isa nb_active_isa(void);
/// The best instruction set this CPU supports.
nb_isa nb_detected_isa(void);
/// Forces the dispatch to `isa` (for tests; must be supported). Returns the previous one.
nb_isa nb_force_isa(nb_isa isa);
/// A short human-readable list of relevant CPU features, e.g. "AVX2 FMA F16C".
const char *nb_cpu_features(void);

// ---- Worker pool ----------------------------------------------------------------

/// Runs `task(ctx, i)` for i in [0, n_tasks) on the pool's threads and the caller's.
typedef void (*nb_task_fn)(void *ctx, int64_t task);
typedef struct nb_pool nb_pool;

/// A persistent pool of `n_threads - 1` workers (the caller is the n-th thread).
/// Workers spin briefly between operations, then sleep on a futex-like condition.
nb_pool *nb_pool_create(int n_threads);
void nb_pool_destroy(nb_pool *pool);
int nb_pool_threads(const nb_pool *pool);
/// Distributes tasks dynamically and returns when all have finished.
void nb_pool_run(nb_pool *pool, nb_task_fn task, void *ctx, int64_t n_tasks);

// ---- f32 kernels ----------------------------------------------------------------

/// y[r] = dot(w[r, 0..<k], x)  for r in [row_begin, row_end).  w is row-major, ld = k.
void nb_matvec_f32(const float *w, const float *x, float *y, int64_t k, int64_t row_begin, int64_t row_end);

/// Y[t, r] = dot(W[r, :], X[t, :]) for t in [0, n_tokens), r in [row_begin, row_end).
/// X is n_tokens × k (ld k), Y is n_tokens × ld_y.
void nb_matmul_f32(const float *w, const float *x, float *y, int64_t k, int64_t n_tokens, int64_t ld_y,
                   int64_t row_begin, int64_t row_end);

/// dot(a, b) over n floats.
float nb_dot_f32(const float *a, const float *b, int64_t n);
/// y += a * x over n floats.
void nb_axpy_f32(float a, const float *x, float *y, int64_t n);

/// Causal attention of one query head over `n` cached positions:
/// out = softmax(scale · q·K) · V, where key j is at keys + j*stride (likewise values).
void nb_attention_f32(const float *q, const float *keys, const float *values, int64_t stride, int64_t n,
                      int64_t head_dim, float scale, float *out);

#ifdef __cplusplus
}
#endif
