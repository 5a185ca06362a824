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

/// The instruction set the kernels dispatch to: the detected one, or a lower one that
/// the environment variable NIBBLE_ISA (scalar, avx2, avx512) names.
nb_isa nb_active_isa(void);
/// The best instruction set this CPU supports.
nb_isa nb_detected_isa(void);
/// Whether the kernels can run at `isa` on this CPU (scalar always can).
int nb_isa_supported(nb_isa isa);
/// Forces the dispatch to `isa` (ignored unless supported). Returns the previous one.
nb_isa nb_force_isa(nb_isa isa);
/// "scalar", "avx2", "avx512", "neon"; nb_parse_isa is its inverse (-1 for other names).
const char *nb_isa_name(nb_isa isa);
int nb_parse_isa(const char *name);
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

/// Attention of one query head over `n` cached positions held in a ring of `capacity`
/// slots: out = softmax(scale · q·K) · V, where the j-th key (j < n) is in slot
/// (first + j) mod capacity, at keys + slot*stride (likewise values). A cache that is not
/// a ring passes capacity = n, first = 0. Requires n ≤ capacity, n ≥ 1.
void nb_attention_f32(const float *q, const float *keys, const float *values, int64_t stride, int64_t capacity,
                      int64_t first, int64_t n, int64_t head_dim, float scale, float *out);

// ---- Weight formats ---------------------------------------------------------------
//
// Matrices are row-major rows × k (k = input features). Quantised formats store each row
// as a run of blocks, so row r starts at r * nb_format_bytes(fmt, 1, k) — except nf4,
// whose side arrays (absmax, their scales, one offset) follow all the rows' codes.
//
//   f16 / bf16  plain halves / bfloat16s                                   16   bits/weight
//   q8          nb_block_q8 per 32 (GGML block_q8_0, byte for byte)          8.5
//   q4          nb_block_q4 per 32 (GGML block_q4_1, byte for byte)          5.0
//   nf4         64 NF4 codes (32 bytes) per block, absmax double-quantised  ≈4.13
//               (layout: nb_nf4_layout in formats.h)
//   q2          nb_block_q2 per 64                                           2.5
//
// Shapes: q8/q4 need k % 32 == 0, nf4/q2 need k % 64 == 0 (nb_format_bytes returns 0
// for a shape the format cannot hold).

typedef enum {
    NB_FMT_F32 = 0,
    NB_FMT_F16 = 1,
    NB_FMT_BF16 = 2,
    NB_FMT_Q8 = 3,
    NB_FMT_Q4 = 4,
    NB_FMT_NF4 = 5,
    NB_FMT_Q2 = 6,
} nb_format;

/// 32 int8 with an f16 scale: value = d * qs[j]. Identical to GGML's block_q8_0.
typedef struct { uint16_t d; int8_t qs[32]; } nb_block_q8;
/// 32 uint4 with f16 scale and min: value = d * q + m; element j is the low nibble of
/// qs[j], element j + 16 the high nibble. Identical to GGML's block_q4_1.
typedef struct { uint16_t d; uint16_t m; uint8_t qs[16]; } nb_block_q4;
/// 64 2-bit codes with f16 scale and min: value = d * q + m (q in 0...3). Element
/// j + 16·s (j < 16, s < 4) is bits 2s...2s+1 of qs[j].
typedef struct { uint16_t d; uint16_t m; uint8_t qs[16]; } nb_block_q2;

/// Activation block: 32 int8 with an f32 scale d (x ≈ d * qs) and s = d * sum(qs).
typedef struct { float d; float s; int8_t qs[32]; } nb_q8a;

#if !defined(__cplusplus)
_Static_assert(sizeof(nb_block_q8) == 34, "nb_block_q8 must match block_q8_0");
_Static_assert(sizeof(nb_block_q4) == 20, "nb_block_q4 must match block_q4_1");
_Static_assert(sizeof(nb_block_q2) == 20, "nb_block_q2 is 20 bytes per 64 weights");
_Static_assert(sizeof(nb_q8a) == 40, "nb_q8a is 40 bytes");
#endif

/// Bytes a rows × k matrix takes in `fmt` (all side arrays included, for nf4 too);
/// 0 if k does not suit the format.
size_t nb_format_bytes(nb_format fmt, int64_t rows, int64_t k);
/// Whether activations must be quantised (nb_quantize_activations) before nb_matmul.
int nb_format_wants_q8a(nb_format fmt);
/// Packs a whole f32 matrix (rows × k, row-major) into `dst` (nb_format_bytes bytes).
/// q8 equals GGML's quantize_row_q8_0_ref and q4 quantize_row_q4_1_ref byte for byte;
/// nf4 stores what bitsandbytes' quantize_4bit(blocksize=64, compress_statistics=True)
/// stores, with searched scales (nb_pack_nf4);
/// q2 starts from min/max (d = (max-min)/3, m = min) and refines d and m by alternating
/// nearest codes and a least-squares fit (never worse than min/max; ≈28% lower RMSE).
/// For every format but nf4, rows are independent: packing rows [r0, r1) alone into
/// dst + r0 * nb_format_bytes(fmt, 1, k) gives the same bytes.
void nb_pack(nb_format fmt, const float *src, int64_t rows, int64_t k, void *dst);
/// How nb_pack_nf4 chooses each 64-block's stored absmax and codes (both decode as
/// bitsandbytes decodes: code value × double-quantised absmax).
typedef enum {
    /// bitsandbytes' quantize_4bit: the block's absmax, the nearest code for each x / absmax.
    NB_NF4_ABSMAX = 0,
    /// The absmax code and codes with the lowest x²-weighted squared error after double
    /// quantisation (same second-level statistics as NB_NF4_ABSMAX); never worse per block.
    NB_NF4_SEARCH = 1,
} nb_nf4_scaling;
/// nf4 packing (nb_pack(NB_FMT_NF4, ...) is NB_NF4_SEARCH without a pool); the per-block
/// work runs on `pool` when it is not NULL, with the same bytes for any thread count.
void nb_pack_nf4(const float *src, int64_t rows, int64_t k, nb_nf4_scaling scaling, nb_pool *pool, void *dst);
/// Dequantises row `row` to f32 (k values): embedding lookup and tests.
void nb_unpack_row(nb_format fmt, const void *w, int64_t rows, int64_t k, int64_t row, float *out);
/// x: n_tokens × k f32 → n_tokens × (k/32) nb_q8a (d = absmax/127, q = round(x/d)
/// half away from zero, as GGML's quantize_row_q8_1 but with f32 d and s).
void nb_quantize_activations(const float *x, int64_t n_tokens, int64_t k, nb_q8a *out);
/// Y[t, r] = dot(W[r, :], X[t, :]) for t < n_tokens, r in [row_begin, row_end); Y has
/// leading dimension ld_y. `x` is the f32 activations (used by f32/f16/bf16), `xq` the
/// quantised ones (used by q8/q4/nf4/q2; may be NULL otherwise). Safe to call
/// concurrently for disjoint row ranges. For the quantised formats the SIMD result
/// equals the scalar one bit for bit. A k that does not suit the format writes nothing.
void nb_matmul(nb_format fmt, const void *w, int64_t rows, int64_t k, const float *x, const nb_q8a *xq,
               float *y, int64_t n_tokens, int64_t ld_y, int64_t row_begin, int64_t row_end);

/// f16 conversions (F16C when available, exact scalar otherwise; round to nearest even).
void nb_f32_to_f16(const float *src, uint16_t *dst, int64_t n);
void nb_f16_to_f32(const uint16_t *src, float *dst, int64_t n);

/// Causal attention of one query head over n cached positions whose keys and values are
/// f16; same contract as nb_attention_f32.
void nb_attention_f16kv(const float *q, const uint16_t *keys, const uint16_t *values, int64_t stride, int64_t capacity,
                        int64_t first, int64_t n, int64_t head_dim, float scale, float *out);

#ifdef __cplusplus
}
#endif
