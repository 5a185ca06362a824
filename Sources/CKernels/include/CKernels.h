// Hot numeric kernels for Nibble, with runtime CPU dispatch.
//
// Every kernel has a portable scalar version; SIMD versions (x86-64 AVX2+FMA, AVX2 with
// AVX-VNNI and AVX-512 with VNNI for the integer kernels) are chosen once at start-up from
// what the CPU reports.
// Tests compare each SIMD path against the scalar one through nb_force_isa().
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
    NB_ISA_AVXVNNI = 2,  // AVX2 + FMA + F16C + AVX-VNNI (VEX vpdpbusd/vpdpwssd on 256 bits)
    NB_ISA_AVX512 = 3,   // AVX-512 F/BW/VL (+ VNNI, BF16 reported separately)
    NB_ISA_NEON = 4,
} nb_isa;

/// The instruction set the kernels dispatch to: the detected one, or a lower one that
/// the environment variable NIBBLE_ISA (scalar, avx2, avxvnni, avx512) names. The x86 levels
/// are ordered scalar < avx2 < avxvnni < avx512; a level is supported when the CPU has its
/// features (an AVX-512 CPU without AVX-VNNI, e.g. Zen 4, has avx512 but not avxvnni).
nb_isa nb_active_isa(void);
/// The best instruction set this CPU supports.
nb_isa nb_detected_isa(void);
/// Whether the kernels can run at `isa` on this CPU (scalar always can).
int nb_isa_supported(nb_isa isa);
/// Forces the dispatch to `isa` (ignored unless supported) for the calling thread: kernels
/// it calls run at that level, other threads (a pool's workers too) keep theirs. Returns the
/// previous one.
nb_isa nb_force_isa(nb_isa isa);
/// Whether bf16 weights are multiplied with vdpbf16ps now (AVX-512 level, a CPU with
/// AVX512-BF16, and not turned off by nb_bf16_dot_products).
int nb_bf16_dot_products_active(void);
/// Tests: allows (1) or forbids (0) vdpbf16ps, so that the AVX-512 bf16 kernels without it run
/// on a CPU that has it; for the calling thread, as nb_force_isa. Returns the previous setting.
int nb_bf16_dot_products(int allowed);
/// "scalar", "avx2", "avxvnni", "avx512", "neon"; nb_parse_isa is its inverse (-1 for other names).
const char *nb_isa_name(nb_isa isa);
int nb_parse_isa(const char *name);
/// A short human-readable list of relevant CPU features, e.g. "AVX2 FMA F16C".
const char *nb_cpu_features(void);
/// How decode asks for the weight rows it reads once a token: which hint the quantized decode
/// tiles prefetch their next row groups with, and whether f32 decode fetches its next rows in
/// software at all. Chosen per CPU (nb_detected_prefetch: a table measured on the CPUs this
/// project has run on), or named by the environment variable NIBBLE_PREFETCH (nta, l2, hw).
/// Results never depend on it, only speed.
typedef enum {
    /// _MM_HINT_NTA for quantized decode; f32 decode fetches the row 4 KiB ahead with it too.
    /// AMD Zen 5 (family 1Ah): f32 +9–10 %, q4 +12–14 % against the T1 hint / no prefetch.
    NB_PREFETCH_NTA = 0,
    /// _MM_HINT_T1 (into L2) for quantized decode; f32 decode left to the hardware prefetcher.
    /// AMD Zen 3 (family 19h), against NTA: f32 +9–48 %; q8 +4 %, Gemma's K-quants +4 %; q4
    /// within the noise (+2–3.5 % without context, −1 to −6 % at 1,024 tokens).
    /// Every CPU not in the table.
    NB_PREFETCH_L2 = 1,
    /// No software prefetch of the interleaved weights in decode: each 16-row group is one run
    /// of lines in order (its blocks' scales and codes side by side), which the hardware
    /// prefetchers stream; the rest as NB_PREFETCH_L2. AMD Zen 4 (family 19h, models 10h–1Fh,
    /// 60h–7Fh, A0h–AFh), against the T1 hint: the products from memory (Tools/stream_bench.c,
    /// 2 threads) q4 +30 % with the memory at 55–65 GB/s, +5–8 % at 33–35 GB/s; q8 +8 %.
    /// Attention fetches its keys and values 128 positions ahead into L2 (the others: 64
    /// ahead, non-temporal): SmolLM2 q4 decode at 1,024 tokens +5.7 % (attention −15 %).
    NB_PREFETCH_HW = 2,
} nb_prefetch;
nb_prefetch nb_active_prefetch(void);
/// The profile of this CPU's row in the table (NB_PREFETCH_L2 for CPUs not in it).
nb_prefetch nb_detected_prefetch(void);
/// "nta", "l2", "hw"; nb_parse_prefetch is its inverse (-1 for other names).
const char *nb_prefetch_name(nb_prefetch p);
int nb_parse_prefetch(const char *name);
/// The CPU's vendor, family and model as the table keys them, e.g. "AMD family 19h model 11h"
/// ("" off x86).
const char *nb_cpu_family(void);
/// Returns the heap's free pages to the system (glibc `malloc_trim`; a no-op elsewhere):
/// called after loading, when the parsed file header and the tokenizer's build tables are gone.
void nb_release_free_heap(void);

/// Reads `bytes` (a multiple of 128) at `p` (32-byte aligned) as fast as the core can and
/// returns a sum of them, so the reads cannot be elided: the bandwidth probe of `bench`.
uint64_t nb_stream_read(const void *p, int64_t bytes);

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
/// Runs `fn(ctx, begin, end)` over disjoint ranges of at most `piece` units that together
/// cover [0, units) and returns when all have finished. Each thread works through a
/// contiguous part of its own from the front, then takes from the back of what the others
/// have left.
typedef void (*nb_range_fn)(void *ctx, int64_t begin, int64_t end);
void nb_pool_run_ranges(nb_pool *pool, nb_range_fn fn, void *ctx, int64_t units, int64_t piece);

// ---- f32 kernels ----------------------------------------------------------------

/// y[r] = dot(w[r, 0..<k], x)  for r in [row_begin, row_end).  w is row-major, ld = k.
void nb_matvec_f32(const float *w, const float *x, float *y, int64_t k, int64_t row_begin, int64_t row_end);

/// Y[t, r] = dot(W[r, :], X[t, :]) for t in [0, n_tokens), r in [row_begin, row_end).
/// X is n_tokens × k (ld k), Y is n_tokens × ld_y.
void nb_matmul_f32(const float *w, const float *x, float *y, int64_t k, int64_t n_tokens, int64_t ld_y,
                   int64_t row_begin, int64_t row_end);

/// The MLP activations (activations.c).
typedef enum {
    /// silu(g) = g / (1 + e^-g)
    NB_MLP_SILU = 0,
    /// gelu with the tanh approximation: 0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³)))
    NB_MLP_GELU_TANH = 1,
} nb_mlp_activation;

/// gate[i] = act(gate[i]) · up[i] (up NULL: act(gate[i])) over n floats. One polynomial
/// exponential (~1 ulp); every ISA level gives the scalar result bit for bit.
void nb_activation_gate(nb_mlp_activation act, float *gate, const float *up, int64_t n);
/// RMSNorm of `rows` rows of `width` values: out = weight · (x · inv), inv = 1 / √(mean(x²) + ε)
/// with mean(x²) = nb_dot_f32(x, x) / width (transformers' LlamaRMSNorm; x and out may be
/// the same buffer).
void nb_rms_norm(const float *x, const float *weight, int64_t width, int64_t rows, float eps, float *out);
/// x += a over n values (the residual connection).
void nb_add_f32(const float *a, float *x, int64_t n);
/// Rotary embedding of `count` tokens' `heads` heads (token t's head h at v + t·stride +
/// h·head_dim) by the table's row t (the cos of `pairs` pairs, then their sin): the pairs are
/// (2i, 2i + 1) (llama.cpp's normal mode), or with `halves` (i, i + pairs) (NeoX); each
/// pair becomes (x0·cos − x1·sin, x0·sin + x1·cos), no contraction.
void nb_rope(float *v, int64_t heads, int64_t head_dim, int64_t stride, int64_t count, const float *table, int64_t pairs,
             int32_t halves);

/// x[i] = e^(x[i] − sub) over n floats, with the activations' polynomial (~1 ulp; anything
/// below −87 gives e^−87 ≈ 1.6e−38, not 0), and returns Σ x[i]. The exponentials equal the
/// scalar path's bit for bit at every ISA level; the sum is taken in vector lanes, so it
/// agrees to rounding. Attention's softmax weights.
float nb_exp_sum_f32(float *x, int64_t n, float sub);

/// dot(a, b) over n floats.
float nb_dot_f32(const float *a, const float *b, int64_t n);
/// y += a * x over n floats.
void nb_axpy_f32(float a, const float *x, float *y, int64_t n);

/// Attention of `heads` query heads that share one KV head over `n` cached positions held
/// in a ring of `capacity` slots: out_h = softmax(scale · q_h·K) · V, where the j-th
/// position (j < n) is in slot (first + j) mod capacity: its value at values + slot*stride,
/// its key in the key tiles (f32 and f16 keys: nb_kv_key_index; q8 keys are rows at
/// keys + slot*stride like the values); q_h and out_h are at q + h*head_dim and
/// out + h*head_dim. The keys hold nb_kv_slots(capacity) slots. A cache that is not a ring
/// passes capacity = n, first = 0. Requires n ≤ capacity, n ≥ 1, heads ≥ 1.
/// `ml` NULL: out is the attention. Otherwise the call is one part of a split over the
/// positions (decode with fewer heads than threads): out_h is left unnormalised
/// (Σ e^(s − m)·v) and ml[2h], ml[2h + 1] receive head h's maximum score m and Σ e^(s − m),
/// for nb_attention_merge.
void nb_attention_f32(const float *q, int64_t heads, const float *keys, const float *values, int64_t stride, int64_t capacity,
                      int64_t first, int64_t n, int64_t head_dim, float scale, float *out, float *ml);

/// Merges `n_parts` split results (part p: `heads` unnormalised outputs at parts + p·heads·head_dim,
/// their (m, l) pairs at ml + p·heads·2) over disjoint position ranges into the attention
/// over all of them.
void nb_attention_merge(const float *parts, const float *ml, int64_t n_parts, int64_t heads, int64_t head_dim, float *out);

/// KV cache element types. A q8 row of head_dim elements is head_dim int8 codes, then one
/// f32 scale per block of NB_KV_Q8_BLOCK (q8_0's blocks with the scale in f32, kept apart so
/// the codes stay aligned vectors): head_dim + head_dim / 8 bytes against f16's 2 · head_dim.
enum { NB_KV_F32 = 0, NB_KV_F16 = 1, NB_KV_Q8 = 2, NB_KV_Q8_BLOCK = 32 };
/// Bytes of one KV head's row of head_dim elements (q8: head_dim a multiple of 32).
int64_t nb_kv_row_bytes(int32_t format, int64_t head_dim);
/// f32 and f16 keys are kept in tiles of NB_KV_TILE slots, transposed: a tile is head_dim
/// rows of NB_KV_TILE elements, element d of the keys of slots 16t...16t+15 side by side,
/// so that the scores of 8 or 16 positions are one vector of FMAs with no reductions (the
/// reductions of row-laid keys took a third of the scores' time). Element d of slot s's key
/// is element nb_kv_key_index(s, d, head_dim) of a KV head's keys (a head's slots take
/// nb_kv_row_bytes each, as rows would). Values, and q8 keys, are rows.
enum { NB_KV_TILE = 16 };
static inline int64_t nb_kv_key_index(int64_t slot, int64_t d, int64_t head_dim) {
    return ((slot / NB_KV_TILE) * head_dim + d) * NB_KV_TILE + slot % NB_KV_TILE;
}
/// Slots a KV head of a ring of `capacity` slots takes: whole tiles.
static inline int64_t nb_kv_slots(int64_t capacity) { return (capacity + NB_KV_TILE - 1) / NB_KV_TILE * NB_KV_TILE; }
/// Stores x (head_dim floats) as the key of `slot` of the KV head whose keys begin at
/// `keys`: a column of its tile (f32, f16) or a row (q8, nb_kv_q8_quantize).
void nb_kv_store_key(int32_t format, const float *x, int64_t head_dim, void *keys, int64_t slot);
/// Fetches into the cache the lines that storing one position at `slot` will write: its key
/// (one element in each of a tile's head_dim rows, f32/f16; a row, q8) in the keys at `keys`
/// and its value row at `value_row`. Decode stores a position per layer on the caller's thread
/// alone; those lines were last written a token ago and are back in memory by then.
void nb_kv_prefetch_store(int32_t format, const void *keys, const void *value_row, int64_t head_dim, int64_t slot);
/// x's head_dim floats as a q8 row: per block of 32, d = max|x| / 127 and codes round(x / d)
/// (llama.cpp's q8_0 rounding).
void nb_kv_q8_quantize(const float *x, int64_t head_dim, void *row);
void nb_kv_q8_dequantize(const void *row, int64_t head_dim, float *x);

/// One layer's attention as tasks on a pool, run from C: a Swift closure per call (what
/// this replaced) was allocated on every call, 2 allocations per layer and token, and
/// retained and released on every task. Slot = position % capacity. With block_slots 0 the
/// cache keeps each KV head's positions contiguous: head h's nb_kv_slots(capacity) slots of
/// R = nb_kv_row_bytes(format, head_dim) bytes at keys + h · nb_kv_slots(capacity) · R (keys in
/// tiles, see NB_KV_TILE). Otherwise the slots come in blocks of block_slots (a power of two,
/// a multiple of NB_KV_TILE) laid block_bytes apart, each block holding every head's
/// block_slots slots in turn: slot s of head h at keys + (s / block_slots) · block_bytes +
/// (h · block_slots + s % block_slots) · R, a block's keys in tiles as a head's would be
/// (KVCache: so that the cache, in huge pages, is committed as positions fill it).
typedef struct nb_attention_job {
    const void *keys, *values;       // the layer's head 0, slot 0
    int32_t format;                  // NB_KV_F32, NB_KV_F16, NB_KV_Q8
    int64_t capacity, head_dim;
    int64_t block_slots, block_bytes;
    int64_t kv_heads, group;         // query heads per KV head
    const float *q;                  // token t's query head h at q + t · q_stride + h · head_dim
    float *out;                      // the same layout (parts > 1: part p's at out + p · q_stride)
    int64_t q_stride;
    float scale;
    // parts == 1: `count` tokens at positions start...start+count−1, each attending to the
    // positions up to its own (the last `window` of them; 0: all), a task per token and KV
    // head. parts > 1: one token over positions first...first+n−1 split into `parts` ranges,
    // a task per KV head and range, each leaving its (max, sum) pairs at
    // ml + (p · kv_heads · group + h) · 2 for nb_attention_merge.
    int64_t count, start, window;
    int64_t parts, first, n;
    float *ml;
} nb_attention_job;
void nb_attention_run(nb_pool *pool, const nb_attention_job *job);

// ---- decode's time budget (`nibble bench`) ------------------------------------------------

/// What of decode's wall time goes to the matrix products (nb_matmul_fused) and to attention
/// (nb_attention_run), summed over the calls made while the budget is on; the rest of the time
/// is the caller's own work between them (norms, RoPE, the KV cache, quantising activations,
/// sampling). Process-wide, for one decoding thread at a time.
typedef struct {
    uint64_t products_ns, attention_ns;
    uint64_t products, attentions;  // calls
} nb_time_budget;
/// Zeroes the budget and turns the accounting on or off (off by default: then each call costs
/// one relaxed load; on, two reads of the monotonic clock).
void nb_time_budget_enable(int on);
nb_time_budget nb_time_budget_read(void);

// ---- Weight formats ---------------------------------------------------------------
//
// Matrices are row-major rows × k (k = input features). Every format but nf4 stores each
// row as a run of blocks, so row r starts at r * nb_format_bytes(fmt, 1, k); nf4's side
// arrays (absmax, their scales, one offset) follow all the rows' codes.
//
// The formats are data: one row per format in a table (formats.c, nb_formats) with its
// name, block geometry, bits per weight, the GGML type whose blocks it keeps byte for
// byte, the activation kind it multiplies with, and its pack/unpack functions and
// kernels (scalar, AVX2, AVX-VNNI, AVX-512). nb_format_get() reads the descriptive part. Adding a
// format is one enum value, its block struct below, one table row and its kernels.
//
//   name  block  bytes  bits   GGML type  activations  packable
//   f32       1      4  32     F32        f32          yes
//   f16       1      2  16     F16        f32          yes
//   bf16      1      2  16     BF16       f32 → bf16   yes   (rounded by the kernel)
//   q8       32     34   8.5   Q8_0       q8a          yes
//   q4       32     20   5.0   Q4_1       q8a          yes
//   nf4      64     32  ≈4.13  -          q8a          yes   (side arrays: nb_nf4_layout)
//   q2       64     20   2.5   -          q8a          yes
//   q4_0     32     18   4.5   Q4_0       q8a          no    (native: the file's blocks)
//   q5_0     32     22   5.5   Q5_0       q8a          no
//   q5_1     32     24   6.0   Q5_1       q8a          no
//   q4_K    256    144   4.5   Q4_K       q8K          no
//   q5_K    256    176   5.5   Q5_K       q8K          no
//   q6_K    256    210   6.5625 Q6_K     q8K          no
//
// nb_format_bytes returns 0 for a shape the format cannot hold (k not a multiple of the
// block size).

typedef enum {
    NB_FMT_F32 = 0,
    NB_FMT_F16 = 1,
    NB_FMT_BF16 = 2,
    NB_FMT_Q8 = 3,
    NB_FMT_Q4 = 4,
    NB_FMT_NF4 = 5,
    NB_FMT_Q2 = 6,
    NB_FMT_Q4_0 = 7,
    NB_FMT_Q5_0 = 8,
    NB_FMT_Q5_1 = 9,
    NB_FMT_Q4_K = 10,
    NB_FMT_Q5_K = 11,
    NB_FMT_Q6_K = 12,
    NB_FMT_COUNT = 13,
} nb_format;

/// What a format's kernels multiply with: the f32 activations, or the activations
/// quantised to 32-element int8 blocks (nb_q8a) or to 256-element blocks with per-16
/// sums (nb_q8k, GGML's block_q8_K).
typedef enum {
    NB_ACT_F32 = 0,
    NB_ACT_Q8A = 1,
    NB_ACT_Q8K = 2,
} nb_activation;

/// The descriptive part of a format's table row.
typedef struct {
    const char *name;          // "q4_K"
    int32_t block;             // elements per block
    int32_t block_bytes;       // bytes per block (nf4: its codes; the side arrays come on top)
    double bits_per_weight;    // storage per weight of a 4096 × 4096 matrix, side arrays included
    int32_t ggml_type;         // the GGML type whose blocks are these bytes, or -1
    nb_activation activation;  // what nb_matmul's xq must hold
    int32_t packable;          // nb_pack can produce it from f32
    int32_t rows_independent;  // rows pack and unpack independently (all but nf4)
} nb_format_info;

/// The table row of `fmt`, or NULL for a value that is not a format.
const nb_format_info *nb_format_get(nb_format fmt);
/// The format that keeps GGML type `ggml_type`'s blocks unchanged, or -1.
int nb_format_of_ggml(uint32_t ggml_type);

/// 32 int8 with an f16 scale: value = d * qs[j]. Identical to GGML's block_q8_0.
typedef struct { uint16_t d; int8_t qs[32]; } nb_block_q8;
/// 32 uint4 with f16 scale and min: value = d * q + m; element j is the low nibble of
/// qs[j], element j + 16 the high nibble. Identical to GGML's block_q4_1.
typedef struct { uint16_t d; uint16_t m; uint8_t qs[16]; } nb_block_q4;
/// 64 2-bit codes with f16 scale and min: value = d * q + m (q in 0...3). Element
/// j + 16·s (j < 16, s < 4) is bits 2s...2s+1 of qs[j].
typedef struct { uint16_t d; uint16_t m; uint8_t qs[16]; } nb_block_q2;

// GGML's blocks (ggml-common.h), byte for byte. f16 fields are IEEE half bits.
/// block_q4_0: value = d * (q - 8), q as in nb_block_q4.
typedef struct { uint16_t d; uint8_t qs[16]; } nb_block_q4_0;
/// block_q5_0: value = d * (q - 16); q's low 4 bits as in nb_block_q4, bit 4 of
/// element j is bit j of qh (little-endian u32).
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } nb_block_q5_0;
/// block_q5_1: value = d * q + m, q as in nb_block_q5_0.
typedef struct { uint16_t d; uint16_t m; uint8_t qh[4]; uint8_t qs[16]; } nb_block_q5_1;
/// block_q4_K: 8 sub-blocks of 32 with 6-bit scales sc and mins mn packed in `scales`
/// (GGML's get_scale_min_k4); value = (d·sc) · q − (dmin·mn). Element 64c + l (l < 32)
/// is the low nibble of qs[32c + l], element 64c + 32 + l its high nibble.
typedef struct { uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qs[128]; } nb_block_q4_K;
/// block_q5_K: nb_block_q4_K with a fifth bit: bit 2c of qh[l] for element 64c + l,
/// bit 2c + 1 for element 64c + 32 + l.
typedef struct { uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } nb_block_q5_K;
/// block_q6_K: 16 sub-blocks of 16 with int8 scales; value = (d·scales[e/16]) · (q − 32),
/// q = 4 bits from ql and 2 from qh (GGML's dequantize_row_q6_K).
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } nb_block_q6_K;
/// block_q2_K, block_q3_K, block_iq4_nl, block_iq4_xs: dequantised only (nb_ggml_dequantize).
typedef struct { uint8_t scales[16]; uint8_t qs[64]; uint16_t d; uint16_t dmin; } nb_block_q2_K;
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; } nb_block_q3_K;
typedef struct { uint16_t d; uint8_t qs[16]; } nb_block_iq4_nl;
typedef struct { uint16_t d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; } nb_block_iq4_xs;

/// Activation block: 32 int8 with an f32 scale d (x ≈ d * qs) and s = d * sum(qs).
typedef struct { float d; float s; int8_t qs[32]; } nb_q8a;
/// Activation block for the K-quants (GGML's block_q8_K): 256 int8 with an f32 scale d
/// (x ≈ d * qs) and the sums of each 16 qs.
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } nb_q8k;

#if !defined(__cplusplus)
_Static_assert(sizeof(nb_block_q8) == 34, "nb_block_q8 must match block_q8_0");
_Static_assert(sizeof(nb_block_q4) == 20, "nb_block_q4 must match block_q4_1");
_Static_assert(sizeof(nb_block_q2) == 20, "nb_block_q2 is 20 bytes per 64 weights");
_Static_assert(sizeof(nb_block_q4_0) == 18, "nb_block_q4_0 must match block_q4_0");
_Static_assert(sizeof(nb_block_q5_0) == 22, "nb_block_q5_0 must match block_q5_0");
_Static_assert(sizeof(nb_block_q5_1) == 24, "nb_block_q5_1 must match block_q5_1");
_Static_assert(sizeof(nb_block_q4_K) == 144, "nb_block_q4_K must match block_q4_K");
_Static_assert(sizeof(nb_block_q5_K) == 176, "nb_block_q5_K must match block_q5_K");
_Static_assert(sizeof(nb_block_q6_K) == 210, "nb_block_q6_K must match block_q6_K");
_Static_assert(sizeof(nb_block_q2_K) == 84, "nb_block_q2_K must match block_q2_K");
_Static_assert(sizeof(nb_block_q3_K) == 110, "nb_block_q3_K must match block_q3_K");
_Static_assert(sizeof(nb_block_iq4_nl) == 18, "nb_block_iq4_nl must match block_iq4_nl");
_Static_assert(sizeof(nb_block_iq4_xs) == 136, "nb_block_iq4_xs must match block_iq4_xs");
_Static_assert(sizeof(nb_q8a) == 40, "nb_q8a is 40 bytes");
_Static_assert(sizeof(nb_q8k) == 292, "nb_q8k must match block_q8_K");
_Static_assert(__builtin_offsetof(nb_block_q6_K, d) == 208 && __builtin_offsetof(nb_block_q5_K, qs) == 48 &&
               __builtin_offsetof(nb_block_q3_K, d) == 108 && __builtin_offsetof(nb_block_q2_K, d) == 80 &&
               __builtin_offsetof(nb_q8k, bsums) == 260, "GGML field offsets");
#endif

/// Bytes a rows × k matrix takes in `fmt` (all side arrays included, for nf4 too);
/// 0 if k does not suit the format.
size_t nb_format_bytes(nb_format fmt, int64_t rows, int64_t k);
/// Whether activations must be quantised before nb_matmul (the format's activation is
/// not NB_ACT_F32).
int nb_format_wants_q8a(nb_format fmt);
/// Packs a whole f32 matrix (rows × k, row-major) into `dst` (nb_format_bytes bytes);
/// formats that are not packable (the native GGML formats) are left untouched.
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
/// Dequantises row `row` to f32 (k values): embedding lookup and tests. For the formats
/// that keep GGML blocks the values equal GGML's dequantize_row_* bit for bit.
void nb_unpack_row(nb_format fmt, const void *w, int64_t rows, int64_t k, int64_t row, float *out);

/// Bytes of quantised activations for n_tokens × k in `kind` (0 for NB_ACT_F32, or a k
/// that is not a whole number of its blocks).
size_t nb_activation_bytes(nb_activation kind, int64_t n_tokens, int64_t k);
/// Quantises x (n_tokens × k f32) into `kind`'s blocks, token after token:
///   NB_ACT_Q8A  nb_q8a per 32: d = absmax/127, q = round(x/d) half away from zero (as
///               GGML's quantize_row_q8_1 but with f32 d and s = d·Σq);
///   NB_ACT_Q8K  nb_q8k per 256: the same rounding with one d per 256, bsums = Σ of each 16 q.
/// The bytes are the same on every CPU path.
void nb_quantize_for(nb_activation kind, const float *x, int64_t n_tokens, int64_t k, void *out);
/// nb_quantize_for(NB_ACT_Q8A, ...).
void nb_quantize_activations(const float *x, int64_t n_tokens, int64_t k, nb_q8a *out);
/// Y[t, r] = dot(W[r, :], X[t, :]) for t < n_tokens, r in [row_begin, row_end); Y has
/// leading dimension ld_y. `x` is the f32 activations (used by f32/f16/bf16), `xq` the
/// activations quantised for the format's activation kind (nb_quantize_for; may be NULL
/// for NB_ACT_F32). Safe to call concurrently for disjoint row ranges. For the quantised
/// formats the SIMD result equals the scalar one bit for bit. A k that does not suit the
/// format writes nothing.
void nb_matmul(nb_format fmt, const void *w, int64_t rows, int64_t k, const float *x, const void *xq,
               float *y, int64_t n_tokens, int64_t ld_y, int64_t row_begin, int64_t row_end);

// ---- interleaved weights ---------------------------------------------------------------
//
// The formats q8, q4, q4_0, q5_0, q5_1, q2, nf4, q4_K, q5_K and q6_K have a second layout,
// made once at load, in which the kernels read a block of 16 rows with a few aligned vector
// loads instead of gathering 16 rows' scales and transposing their codes on every product.
// The matrix is groups of NB_IL_ROWS rows (the last padded with zero rows). A block of these
// formats is F f16 fields (q8, q4_0, q5_0, q6_K: d; q4, q5_1, q2, q4_K, q5_K: d, m) and Q
// code bytes, the rest of the block in its order (q8: qs[32]; q4, q4_0, q2: qs[16]; q5_0,
// q5_1: qh[4], qs[16]; q4_K: scales[12], qs[128]; q5_K: scales[12], qh[32], qs[128]; q6_K:
// ql[128], qh[64], scales[16], its d being at the block's end). A group is runs of P blocks
// in order (P = 2 where F = 1, so that their fields fill a 64-byte line; else 1), each run
//   scales  the run's block i, field f: the 16 rows' f16 values at i·32F + 32f (lane r at
//           + 2r), padded to 64 bytes;
//   codes   the run's block i, word j < Q/4: bytes 4j...4j+3 of the 16 rows' codes at 64 +
//           i·16Q + 64j (row r at + 4r): one 64-byte vector holds the same 4 bytes of every
//           row (for the K-quants, the 6-bit scales too, unpacked for 16 rows with a few
//           shifts);
// a last run of fewer blocks holds only those (nb_il_scales_at, nb_il_codes_at). So decode
// reads a group as one run of lines in order, which the hardware prefetchers follow (with a
// group's scales all before its codes they ran two streams at once, and on Zen 4 decode
// from memory then needed software prefetching: NB_PREFETCH_HW).
// nf4 (64-blocks, 32 code bytes each, absmax double-quantised across the matrix): its absmax
// codes take the fields' place, a byte per row (runs of 4 blocks: 16 bytes at i·16), and its
// per-256-block scales and offset follow the last group as nb_pack_nf4 wrote them; for nf4,
// `blocks` below is always the whole matrix (its side arrays are global), the rows moving
// at their places in it.
// Group g starts at g · nb_interleaved_bytes(fmt, 16, k): with a 64-byte aligned base, every
// vector load is aligned. The layout holds exactly the blocks' bytes (nb_deinterleave gives
// them back).

/// Rows per group of an interleaved matrix.
#define NB_IL_ROWS 16
/// Bytes of `fmt`'s interleaved layout of rows × k (whole groups); 0 when the format has no
/// interleaved layout or k does not suit it.
size_t nb_interleaved_bytes(nb_format fmt, int64_t rows, int64_t k);
/// Rows [row0, row0 + n) of a rows × k matrix, given as GGML blocks at `blocks` (n rows of
/// nb_format_bytes(fmt, 1, k)), into their places in the interleaved `dst`; when they reach
/// the last row, the last group's padding rows are zeroed too. Disjoint row ranges can be
/// written concurrently when they share no group.
void nb_interleave(nb_format fmt, int64_t rows, int64_t k, const void *blocks, int64_t row0, int64_t n, void *dst);
/// Rows [row0, row0 + n) of a rows × k f32 matrix, given at `src` (n rows), packed as
/// nb_pack packs them and interleaved into `dst` (a group's blocks at a time: no staging for
/// the whole range). Concurrent calls as for nb_interleave. Not nf4 (nb_pack_nf4, then
/// nb_interleave).
void nb_pack_interleaved(nb_format fmt, const float *src, int64_t rows, int64_t k, int64_t row0, int64_t n, void *dst);
/// Rows [row0, row0 + n) of the interleaved `il` as GGML blocks.
void nb_deinterleave(nb_format fmt, int64_t rows, int64_t k, const void *il, int64_t row0, int64_t n, void *blocks);
/// nb_unpack_row of an interleaved matrix.
void nb_unpack_row_interleaved(nb_format fmt, const void *il, int64_t rows, int64_t k, int64_t row, float *out);
/// nb_matmul of an interleaved matrix: the same contract and, at every level, the same
/// floats bit for bit as nb_matmul on the GGML blocks.
void nb_matmul_interleaved(nb_format fmt, const void *il, int64_t rows, int64_t k, const void *xq, float *y,
                           int64_t n_tokens, int64_t ld_y, int64_t row_begin, int64_t row_end);

/// One of the products nb_matmul_fused runs: rows [base, base + rows) of the concatenation
/// are W's rows, written to y (leading dimension `rows`). `interleaved`: W is in the
/// interleaved layout (nb_matmul_interleaved).
typedef struct {
    nb_format fmt;
    int32_t interleaved;
    const void *w;
    int64_t rows, base;
    float *y;
    const void *xq;
} nb_product;
/// Up to 3 products with the same input x (k columns, n_tokens tokens), their rows split
/// across the pool as nb_pool_run_ranges splits units of `granularity` rows in pieces of
/// at most `piece` units. The threads run nb_matmul straight from C: a Swift closure
/// called from both threads retained and released its context on every piece.
void nb_matmul_fused(nb_pool *pool, const nb_product *products, int count, const float *x, int64_t k, int64_t n_tokens,
                     int64_t granularity, int64_t piece);

// ---- GGML tensors -------------------------------------------------------------------

/// Whether nb_ggml_dequantize reads GGML type `ggml_type` (numbered as ggml.h's ggml_type).
int nb_ggml_can_dequantize(uint32_t ggml_type);
/// Elements and bytes per block of a type nb_ggml_dequantize reads (0 otherwise).
int32_t nb_ggml_block_size(uint32_t ggml_type);
int32_t nb_ggml_block_bytes(uint32_t ggml_type);
/// n elements (a whole number of blocks) of GGML type `ggml_type` at `src` to f32, bit for
/// bit as GGML's dequantize_row_* (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K,
/// Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS). Returns 0 (writing nothing) for another type
/// or an n that is not whole blocks, else 1.
int nb_ggml_dequantize(uint32_t ggml_type, const void *src, int64_t n, float *out);

/// f16 conversions (F16C when available, exact scalar otherwise; round to nearest even).
void nb_f32_to_f16(const float *src, uint16_t *dst, int64_t n);
void nb_f16_to_f32(const uint16_t *src, float *dst, int64_t n);

/// Causal attention of one query head over n cached positions whose keys and values are
/// f16; same contract as nb_attention_f32.
void nb_attention_f16kv(const float *q, int64_t heads, const uint16_t *keys, const uint16_t *values, int64_t stride, int64_t capacity,
                        int64_t first, int64_t n, int64_t head_dim, float scale, float *out, float *ml);

/// The same over q8 rows (nb_kv_q8_quantize), `stride` in bytes between slots (at least
/// nb_kv_row_bytes(NB_KV_Q8, head_dim)); head_dim a multiple of 32. Up to a head dimension
/// of 512 the query is quantised per block of 32 as the keys are and the scores are integer
/// dot products times both scales (llama.cpp's q8_0 keys do the same).
void nb_attention_q8kv(const float *q, int64_t heads, const void *keys, const void *values, int64_t stride, int64_t capacity,
                       int64_t first, int64_t n, int64_t head_dim, float scale, float *out, float *ml);

#ifdef __cplusplus
}
#endif
