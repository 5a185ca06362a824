// Weight formats: sizes, packing (quantisation), unpacking, f16 conversion and the
// on-the-fly int8 quantisation of activations.
//
// Packing runs once per matrix at load time and is written for exactness: q8/q4
// reproduce GGML's reference quantisers byte for byte; nf4 stores bitsandbytes'
// quantize_4bit layout (blocksize 64, compress_statistics=True), with either its absmax
// scales exactly or searched ones (nb_pack_nf4), the same bytes on every CPU path.
#include "formats.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>

// ---- tables ---------------------------------------------------------------------------

// bitsandbytes' get_4bit_type("nf4"), as float32.
const float nb_nf4_values[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};

// round(4096 · nb_nf4_values): the codebook the integer kernels use. A weight is then off
// by at most 2^-13 of its block's absmax (RMS over the 16 codes 5.5e-5 · absmax). An int8
// codebook, round(127 · value), was off by up to 0.47/127 (RMS 0.0022 · absmax), which
// raised SmolLM2's mean KLD by about 2% (0.290 against 0.284 with exact code values).
// 4096 keeps a 32-weight block's sum below 2^24 (32 · 4096 · 127), so it converts to
// float exactly.
const int16_t nb_nf4_i16[16] = {-4096, -2852, -2151, -1618, -1165, -757, -373, 0,
                                326,   659,   1008,  1384,  1805,  2304, 2961, 4096};

// bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8), float32.
const float nb_dynamic_map[256] = {
    -0x1.fc6666p-1f, -0x1.f53334p-1f, -0x1.eep-1f, -0x1.e6ccccp-1f,
    -0x1.df999ap-1f, -0x1.d86666p-1f, -0x1.d13334p-1f, -0x1.cap-1f,
    -0x1.c2ccccp-1f, -0x1.bb999ap-1f, -0x1.b46666p-1f, -0x1.ad3334p-1f,
    -0x1.a6p-1f, -0x1.9eccccp-1f, -0x1.97999ap-1f, -0x1.906666p-1f,
    -0x1.893334p-1f, -0x1.82p-1f, -0x1.7accccp-1f, -0x1.73999ap-1f,
    -0x1.6c6668p-1f, -0x1.653334p-1f, -0x1.5ep-1f, -0x1.56ccccp-1f,
    -0x1.4f999ap-1f, -0x1.486668p-1f, -0x1.413334p-1f, -0x1.3ap-1f,
    -0x1.32ccccp-1f, -0x1.2b999ap-1f, -0x1.246668p-1f, -0x1.1d3334p-1f,
    -0x1.16p-1f, -0x1.0eccccp-1f, -0x1.079998p-1f, -0x1.006666p-1f,
    -0x1.f26664p-2f, -0x1.e4p-2f, -0x1.d59998p-2f, -0x1.c73334p-2f,
    -0x1.b8ccccp-2f, -0x1.aa6666p-2f, -0x1.9cp-2f, -0x1.8d9998p-2f,
    -0x1.7f3334p-2f, -0x1.70ccccp-2f, -0x1.626666p-2f, -0x1.54p-2f,
    -0x1.459998p-2f, -0x1.373334p-2f, -0x1.28ccccp-2f, -0x1.1a6668p-2f,
    -0x1.0cp-2f, -0x1.fb3332p-3f, -0x1.de6666p-3f, -0x1.c1999ap-3f,
    -0x1.a4ccccp-3f, -0x1.88p-3f, -0x1.6b3334p-3f, -0x1.4e6666p-3f,
    -0x1.31999ap-3f, -0x1.14ccccp-3f, -0x1.fp-4f, -0x1.b66668p-4f,
    -0x1.93d70ap-4f, -0x1.8851eep-4f, -0x1.7ccccep-4f, -0x1.7147aep-4f,
    -0x1.65c29p-4f, -0x1.5a3d7p-4f, -0x1.4eb854p-4f, -0x1.433334p-4f,
    -0x1.37ae14p-4f, -0x1.2c28f6p-4f, -0x1.20a3d6p-4f, -0x1.151ebap-4f,
    -0x1.09999ap-4f, -0x1.fc28f6p-5f, -0x1.e51ebap-5f, -0x1.ce147ap-5f,
    -0x1.b70a3ep-5f, -0x1.ap-5f, -0x1.88f5c2p-5f, -0x1.71eb86p-5f,
    -0x1.5ae146p-5f, -0x1.43d70ap-5f, -0x1.2ccccep-5f, -0x1.15c29p-5f,
    -0x1.fd70a4p-6f, -0x1.cf5c2ap-6f, -0x1.a147aep-6f, -0x1.733334p-6f,
    -0x1.451ebap-6f, -0x1.170a3ep-6f, -0x1.d1eb86p-7f, -0x1.75c29p-7f,
    -0x1.3e76c8p-7f, -0x1.2c083p-7f, -0x1.19999ap-7f, -0x1.072b02p-7f,
    -0x1.e978d4p-8f, -0x1.c49ba6p-8f, -0x1.9fbe76p-8f, -0x1.7ae148p-8f,
    -0x1.56041ap-8f, -0x1.3126e8p-8f, -0x1.0c49bap-8f, -0x1.ced914p-9f,
    -0x1.851eb8p-9f, -0x1.3b645ap-9f, -0x1.e353f8p-10f, -0x1.4fdf3ap-10f,
    -0x1.eecbfep-11f, -0x1.b3d07cp-11f, -0x1.78d5p-11f, -0x1.3dd982p-11f,
    -0x1.02de02p-11f, -0x1.8fc506p-12f, -0x1.19ce0ap-12f, -0x1.47ae16p-13f,
    -0x1.743e96p-14f, -0x1.15df66p-14f, -0x1.6f0068p-15f, -0x1.64840cp-16f,
    -0x1.040bfep-17f, -0x1.b43528p-19f, -0x1.27476ep-21f, 0.0f,
    0x1.27476ep-21f, 0x1.b43528p-19f, 0x1.040bfep-17f, 0x1.64840cp-16f,
    0x1.6f0068p-15f, 0x1.15df66p-14f, 0x1.743e96p-14f, 0x1.47ae16p-13f,
    0x1.19ce0ap-12f, 0x1.8fc506p-12f, 0x1.02de02p-11f, 0x1.3dd982p-11f,
    0x1.78d5p-11f, 0x1.b3d07cp-11f, 0x1.eecbfep-11f, 0x1.4fdf3ap-10f,
    0x1.e353f8p-10f, 0x1.3b645ap-9f, 0x1.851eb8p-9f, 0x1.ced914p-9f,
    0x1.0c49bap-8f, 0x1.3126e8p-8f, 0x1.56041ap-8f, 0x1.7ae148p-8f,
    0x1.9fbe76p-8f, 0x1.c49ba6p-8f, 0x1.e978d4p-8f, 0x1.072b02p-7f,
    0x1.19999ap-7f, 0x1.2c083p-7f, 0x1.3e76c8p-7f, 0x1.75c29p-7f,
    0x1.d1eb86p-7f, 0x1.170a3ep-6f, 0x1.451ebap-6f, 0x1.733334p-6f,
    0x1.a147aep-6f, 0x1.cf5c2ap-6f, 0x1.fd70a4p-6f, 0x1.15c29p-5f,
    0x1.2ccccep-5f, 0x1.43d70ap-5f, 0x1.5ae146p-5f, 0x1.71eb86p-5f,
    0x1.88f5c2p-5f, 0x1.ap-5f, 0x1.b70a3ep-5f, 0x1.ce147ap-5f,
    0x1.e51ebap-5f, 0x1.fc28f6p-5f, 0x1.09999ap-4f, 0x1.151ebap-4f,
    0x1.20a3d6p-4f, 0x1.2c28f6p-4f, 0x1.37ae14p-4f, 0x1.433334p-4f,
    0x1.4eb854p-4f, 0x1.5a3d7p-4f, 0x1.65c29p-4f, 0x1.7147aep-4f,
    0x1.7ccccep-4f, 0x1.8851eep-4f, 0x1.93d70ap-4f, 0x1.b66668p-4f,
    0x1.fp-4f, 0x1.14ccccp-3f, 0x1.31999ap-3f, 0x1.4e6666p-3f,
    0x1.6b3334p-3f, 0x1.88p-3f, 0x1.a4ccccp-3f, 0x1.c1999ap-3f,
    0x1.de6666p-3f, 0x1.fb3332p-3f, 0x1.0cp-2f, 0x1.1a6668p-2f,
    0x1.28ccccp-2f, 0x1.373334p-2f, 0x1.459998p-2f, 0x1.54p-2f,
    0x1.626666p-2f, 0x1.70ccccp-2f, 0x1.7f3334p-2f, 0x1.8d9998p-2f,
    0x1.9cp-2f, 0x1.aa6666p-2f, 0x1.b8ccccp-2f, 0x1.c73334p-2f,
    0x1.d59998p-2f, 0x1.e4p-2f, 0x1.f26664p-2f, 0x1.006666p-1f,
    0x1.079998p-1f, 0x1.0eccccp-1f, 0x1.16p-1f, 0x1.1d3334p-1f,
    0x1.246668p-1f, 0x1.2b999ap-1f, 0x1.32ccccp-1f, 0x1.3ap-1f,
    0x1.413334p-1f, 0x1.486668p-1f, 0x1.4f999ap-1f, 0x1.56ccccp-1f,
    0x1.5ep-1f, 0x1.653334p-1f, 0x1.6c6668p-1f, 0x1.73999ap-1f,
    0x1.7accccp-1f, 0x1.82p-1f, 0x1.893334p-1f, 0x1.906666p-1f,
    0x1.97999ap-1f, 0x1.9eccccp-1f, 0x1.a6p-1f, 0x1.ad3334p-1f,
    0x1.b46666p-1f, 0x1.bb999ap-1f, 0x1.c2ccccp-1f, 0x1.cap-1f,
    0x1.d13334p-1f, 0x1.d86666p-1f, 0x1.df999ap-1f, 0x1.e6ccccp-1f,
    0x1.eep-1f, 0x1.f53334p-1f, 0x1.fc6666p-1f, 0x1.0p+0f,
};

// ---- sizes ----------------------------------------------------------------------------

const nb_format_info *nb_format_get(nb_format fmt) {
    return (unsigned)fmt < NB_FMT_COUNT ? &nb_formats[fmt].info : NULL;
}

int nb_format_of_ggml(uint32_t ggml_type) {
    for (int f = 0; f < NB_FMT_COUNT; f++)
        if (nb_formats[f].info.ggml_type == (int32_t)ggml_type) return f;
    return -1;
}

size_t nb_format_bytes(nb_format fmt, int64_t rows, int64_t k) {
    const nb_format_info *info = nb_format_get(fmt);
    if (!info || rows < 0 || k <= 0 || k % info->block) return 0;
    if (fmt == NB_FMT_NF4) return nb_nf4_layout_of(rows, k).total;
    return (size_t)(rows * (k / info->block)) * (size_t)info->block_bytes;
}

int nb_format_wants_q8a(nb_format fmt) {
    const nb_format_info *info = nb_format_get(fmt);
    return info && info->activation != NB_ACT_F32;
}

// ---- q8 / q4: GGML's reference quantisers -----------------------------------------------

// quantize_row_q8_0_ref: d = absmax/127 (stored as f16), q = roundf(x · (1/d)).
static void pack_q8_row(const float *x, nb_block_q8 *y, int64_t k) {
    for (int64_t b = 0; b < k / NB_QK; b++, x += NB_QK) {
        float amax = 0.0f;
        for (int j = 0; j < NB_QK; j++) amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = nb_f2h(d);
        for (int j = 0; j < NB_QK; j++) y[b].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

// quantize_row_q4_1_ref: d = (max-min)/15, m = min (both f16), q = min(15, (int8)((x-min)/d + 0.5)).
static void pack_q4_row(const float *x, nb_block_q4 *y, int64_t k) {
    for (int64_t b = 0; b < k / NB_QK; b++, x += NB_QK) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < NB_QK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = nb_f2h(d);
        y[b].m = nb_f2h(min);
        for (int j = 0; j < NB_QK / 2; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[NB_QK / 2 + j] - min) * id;
            int8_t q0 = (int8_t)(x0 + 0.5f), q1 = (int8_t)(x1 + 0.5f);
            if (q0 > 15) q0 = 15;
            if (q1 > 15) q1 = 15;
            y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

// ---- q2: 64 weights, 2 bits, f16 scale and min, least-squares refinement ------------------

// Codes for x with the stored (f16-rounded) d and m: q = clamp(round((x - m)/d), 0, 3).
// Returns the squared error of d·q + m. Eight partial sums so the loop vectorises.
static float q2_assign(const float *x, float d, float m, uint8_t *q) {
    float err[8] = {0};
    const float id = d > 0 ? 1.0f / d : 0.0f;
    for (int i = 0; i < NB_QK64; i += 8)
        for (int j = 0; j < 8; j++) {
            float v = (x[i + j] - m) * id;
            v = v < 0 ? 0 : v > 3 ? 3 : v;
            const int l = (int)(v + 0.5f);
            q[i + j] = (uint8_t)l;
            const float e = d * (float)l + m - x[i + j];
            err[j] += e * e;
        }
    return ((err[0] + err[1]) + (err[2] + err[3])) + ((err[4] + err[5]) + (err[6] + err[7]));
}

// Least-squares d, m for fixed codes; returns 0 if the codes do not determine them.
static int q2_fit(const float *x, const uint8_t *q, float *d, float *m) {
    int sl = 0, sl2 = 0;
    float sx8[8] = {0}, slx8[8] = {0};
    for (int i = 0; i < NB_QK64; i += 8)
        for (int j = 0; j < 8; j++) {
            sl += q[i + j];
            sl2 += q[i + j] * q[i + j];
            sx8[j] += x[i + j];
            slx8[j] += (float)q[i + j] * x[i + j];
        }
    double sx = 0, slx = 0;
    for (int j = 0; j < 8; j++) { sx += sx8[j]; slx += slx8[j]; }
    const double det = (double)NB_QK64 * sl2 - (double)sl * sl;
    if (det <= 0) return 0;
    const double dd = (NB_QK64 * slx - sl * sx) / det;
    if (!(dd > 0)) return 0;
    *d = (float)dd;
    *m = (float)((sl2 * sx - sl * slx) / det);
    return 1;
}

// Starts from the plain min/max quantiser (d = (max-min)/3, m = min) and alternates
// nearest codes (for the f16-rounded d, m) with a least-squares refit of d and m, keeping
// the lowest squared error (never worse than min/max). On normal data this lowers the
// RMSE by about 28% (0.449σ → 0.324σ); a wider search over starting scales gains < 1% more.
static void pack_q2_group(const float *x, nb_block_q2 *y) {
    float min = x[0], max = x[0];
    for (int i = 1; i < NB_QK64; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
    }
    uint8_t q[NB_QK64] = {0}, prev[NB_QK64], best_q[NB_QK64] = {0};
    uint16_t best_d = 0, best_m = nb_f2h(min);
    if (max > min) {
        float d = (max - min) / 3, m = min, best_err = INFINITY;
        for (int iter = 0; iter < 10; iter++) {
            const uint16_t hd = nb_f2h(d), hm = nb_f2h(m);
            memcpy(prev, q, sizeof q);
            const float err = q2_assign(x, nb_h2f(hd), nb_h2f(hm), q);
            if (err < best_err) {
                best_err = err; best_d = hd; best_m = hm;
                memcpy(best_q, q, sizeof q);
            }
            if ((iter > 0 && !memcmp(prev, q, sizeof q)) || !q2_fit(x, q, &d, &m)) break;
        }
    }
    y->d = best_d;
    y->m = best_m;
    for (int j = 0; j < 16; j++)
        y->qs[j] = (uint8_t)(best_q[j] | best_q[j + 16] << 2 | best_q[j + 32] << 4 | best_q[j + 48] << 6);
}

// ---- nf4: bitsandbytes' quantize_4bit with compress_statistics ------------------------
//
// Both scalings store what bitsandbytes stores and decode as it does (code value ×
// double-quantised absmax), so bitsandbytes' dequantize_4bit reads either; the
// double-quantisation statistics (offset = mean absmax, one second-level scale per 256
// blocks) are bitsandbytes' in both. They differ in how a block's 8-bit absmax code and
// 4-bit codes are chosen:
//   NB_NF4_ABSMAX  bitsandbytes: each code the nearest for x / absmax, the absmax code
//                  the nearest dynamic-map entry to (absmax − offset) / scale.
//   NB_NF4_SEARCH  the pair with the lowest x²-weighted squared error after double
//                  quantisation. As llama.cpp's IQ4_NL quantiser (ggml-quants.c,
//                  quantize_row_iq4_nl_impl, which weights by x² without an importance
//                  matrix): codes for trial scales around the absmax, each followed by
//                  its least-squares scale; then the dynamic-map entries nearest the best
//                  of those, each with its nearest codes. bitsandbytes' own pair is a
//                  candidate too, so no block has a larger weighted error than under
//                  NB_NF4_ABSMAX.
// Measured on SmolLM2-135M re-quantised from Q4_1 (GPL-3, 512-token windows, mean KLD vs
// f32): absmax 0.347, search 0.284 (0.355 and 0.290 with the former int8-codebook
// kernels). With the int8 kernels: the trial range matters most, ±5.5% (IQ4_NL's) gave
// 0.308, ±12.5% 0.290, ±25% 0.314; finer trial steps, wider map windows, or trying every
// map entry within ±15% (0.289) did not help beyond noise; unweighted errors gave 0.325,
// x² + σ² 0.316, |x|³ 0.297.
#define NF4_TRIALS 4          // trial inverse scales (1 + t/32) / absmax, t = -4...4: ±12.5%
#define NF4_TRIAL_STEP 32.0f
#define NF4_MAP_RADIUS 2      // dynamic-map entries tried on each side of the best scale's

// Bucket bounds as torch computes them: (code[i] + code[i+1]) / 2 in float32.
static void nf4_bounds(float *bounds) {
    for (int i = 0; i < 15; i++) bounds[i] = (nb_nf4_values[i] + nb_nf4_values[i + 1]) / 2;
}

typedef struct { float err, sumqx, sumq2; } nf4_fit;

// Codes for the 64 values x: code = the number of bounds below x·inv (bitsandbytes'
// bucketing of the clamped x·inv; the clamp cannot change the count). With weights w and
// the scale d the codes are decoded with: err = Σ w(x − d·v)², sumqx = Σ w·v·x,
// sumq2 = Σ w·v². Eight partial sums in a fixed order, which nf4_try_avx2 keeps in its
// lanes, so both give the same floats and the packed bytes do not depend on the CPU.
static nf4_fit nf4_try_portable(const float *restrict x, const float *restrict w, const float *restrict bounds,
                                float inv, float d, uint8_t *restrict codes) {
    float e8[8] = {0}, qx8[8] = {0}, q28[8] = {0};
    for (int i = 0; i < NB_QK64; i += 8)
        for (int j = 0; j < 8; j++) {
            const float s = x[i + j] * inv;
            int c = 0;
            for (int t = 0; t < 15; t++) c += s > bounds[t];
            const float v = nb_nf4_values[c];
            if (codes) codes[i + j] = (uint8_t)c;
            const float r = x[i + j] - d * v, wv = w[i + j] * v;
            e8[j] += w[i + j] * (r * r);
            qx8[j] += wv * x[i + j];
            q28[j] += wv * v;
        }
    nf4_fit f;
    f.err = ((e8[0] + e8[1]) + (e8[2] + e8[3])) + ((e8[4] + e8[5]) + (e8[6] + e8[7]));
    f.sumqx = ((qx8[0] + qx8[1]) + (qx8[2] + qx8[3])) + ((qx8[4] + qx8[5]) + (qx8[6] + qx8[7]));
    f.sumq2 = ((q28[0] + q28[1]) + (q28[2] + q28[3])) + ((q28[4] + q28[5]) + (q28[6] + q28[7]));
    return f;
}

#if defined(__x86_64__)
#include "x86_simd.h"

// Σ of the 8 lanes in nf4_try_portable's order: ((0+1)+(2+3)) + ((4+5)+(6+7)).
NB_AVX2 static inline float nf4_sum8(__m256 v) {
    float l[8];
    _mm256_storeu_ps(l, v);
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

// nf4_try_portable, 8 lanes = its 8 partial sums, with the same roundings. The code (the
// count of bounds below s) is summed from 15 independent comparisons in a tree, which is
// shorter in latency than a binary search; a NaN fails every comparison in both versions.
NB_AVX2 static nf4_fit nf4_try_avx2(const float *restrict x, const float *restrict w, const float *restrict bounds,
                                    float inv, float d, uint8_t *restrict codes) {
    __m256 b[15];
    for (int t = 0; t < 15; t++) b[t] = _mm256_set1_ps(bounds[t]);
    const __m256 v_lo = _mm256_loadu_ps(nb_nf4_values), v_hi = _mm256_loadu_ps(nb_nf4_values + 8);
    const __m256 vinv = _mm256_set1_ps(inv), vd = _mm256_set1_ps(d);
    __m256 e = _mm256_setzero_ps(), qx = _mm256_setzero_ps(), q2 = _mm256_setzero_ps();
    for (int i = 0; i < NB_QK64; i += 8) {
        const __m256 xv = _mm256_loadu_ps(x + i), wv = _mm256_loadu_ps(w + i);
        const __m256 s = _mm256_mul_ps(xv, vinv);
        __m256i m[15];
        for (int t = 0; t < 15; t++) m[t] = _mm256_castps_si256(_mm256_cmp_ps(s, b[t], _CMP_GT_OQ));  // -1 where above
        for (int t = 0; t < 7; t++) m[t] = _mm256_add_epi32(m[2 * t], m[2 * t + 1]);
        m[7] = m[14];
        for (int t = 0; t < 4; t++) m[t] = _mm256_add_epi32(m[2 * t], m[2 * t + 1]);
        const __m256i c = _mm256_sub_epi32(_mm256_setzero_si256(),
                                           _mm256_add_epi32(_mm256_add_epi32(m[0], m[1]), _mm256_add_epi32(m[2], m[3])));
        const __m256 upper = _mm256_castsi256_ps(_mm256_cmpgt_epi32(c, _mm256_set1_epi32(7)));
        const __m256 v = _mm256_blendv_ps(_mm256_permutevar8x32_ps(v_lo, c), _mm256_permutevar8x32_ps(v_hi, c), upper);
        if (codes) {
            int32_t ci[8];
            _mm256_storeu_si256((__m256i *)ci, c);
            for (int j = 0; j < 8; j++) codes[i + j] = (uint8_t)ci[j];
        }
        const __m256 r = _mm256_sub_ps(xv, _mm256_mul_ps(vd, v)), wvv = _mm256_mul_ps(wv, v);
        e = _mm256_add_ps(e, _mm256_mul_ps(wv, _mm256_mul_ps(r, r)));
        qx = _mm256_add_ps(qx, _mm256_mul_ps(wvv, xv));
        q2 = _mm256_add_ps(q2, _mm256_mul_ps(wvv, v));
    }
    return (nf4_fit){nf4_sum8(e), nf4_sum8(qx), nf4_sum8(q2)};
}
#endif

// Index of the nearest dynamic-map entry to v (ties to the lower index), as bitsandbytes'
// CPU quantize_block.
static uint8_t dynamic_map_index(float v) {
    int lo = 0, hi = 255;  // largest i with map[i] <= v (or 0)
    if (v <= nb_dynamic_map[0]) return 0;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (nb_dynamic_map[mid] <= v) lo = mid; else hi = mid;
    }
    if (nb_dynamic_map[hi] <= v) lo = hi;
    if (lo < 255 && fabsf(v - nb_dynamic_map[lo + 1]) < fabsf(v - nb_dynamic_map[lo])) lo++;
    return (uint8_t)lo;
}

static float nf4_block_absmax(const float *x) {
    float amax = 0;
    for (int i = 0; i < NB_QK64; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    return amax;
}

typedef nf4_fit (*nf4_try_fn)(const float *, const float *, const float *, float, float, uint8_t *);

typedef struct {
    const float *src;
    uint8_t *dst;
    nb_nf4_layout l;
    nb_nf4_scaling scaling;
    float offset;             // mean absmax
    int64_t per_task;         // second-level blocks (statistics) or 64-blocks (codes) per task
    nf4_try_fn try_codes;
    float bounds[15];
} nf4_job;

// Statistics of second-level block s, kept until the scales are known in its first 16
// bytes of codes (always there: a second-level block has at least one 32-byte 64-block).
typedef struct { double sum; float min, max; } nf4_stats;
_Static_assert(sizeof(nf4_stats) <= 32, "nf4_stats must fit in one block's codes");

static void nf4_stats_task(void *ctx, int64_t task) {
    const nf4_job *job = ctx;
    const int64_t s1 = (task + 1) * job->per_task < job->l.scale_blocks ? (task + 1) * job->per_task : job->l.scale_blocks;
    for (int64_t s = task * job->per_task; s < s1; s++) {
        const int64_t b0 = s * NB_NF4_DQ, b1 = b0 + NB_NF4_DQ < job->l.blocks ? b0 + NB_NF4_DQ : job->l.blocks;
        nf4_stats st = {0, INFINITY, 0};
        for (int64_t b = b0; b < b1; b++) {
            const float a = nf4_block_absmax(job->src + b * NB_QK64);
            st.sum += a;
            st.min = a < st.min ? a : st.min;
            st.max = a > st.max ? a : st.max;
        }
        memcpy(job->dst + (size_t)b0 * 32, &st, sizeof st);
    }
}

// NB_NF4_SEARCH for block x (absmax amax, second-level scale `scale`, bitsandbytes'
// absmax code q_bnb): writes the codes and returns the absmax code.
static uint8_t nf4_search_block(const nf4_job *job, const float *x, float amax, float scale, uint8_t q_bnb,
                                uint8_t *codes) {
    float w[NB_QK64];
    for (int i = 0; i < NB_QK64; i++) w[i] = x[i] * x[i];
    // bitsandbytes' pair: codes for the raw absmax, decoded with its double-quantised code.
    uint8_t best_q = q_bnb;
    float best_err = job->try_codes(x, w, job->bounds, 1.0f / (amax > 1e-38f ? amax : 1e-38f),
                                    nb_dynamic_map[q_bnb] * scale + job->offset, codes).err;
    if (!(amax > 0) || !(scale > 0)) return best_q;
    // The least-squares scale of each trial's codes, best = most error removed (sumqx²/sumq2).
    float best_d = amax, best_gain = -1;
    for (int t = -NF4_TRIALS; t <= NF4_TRIALS; t++) {
        const nf4_fit f = job->try_codes(x, w, job->bounds, (1.0f + (float)t / NF4_TRIAL_STEP) / amax, 0, NULL);
        if (f.sumqx > 0 && f.sumqx * f.sumqx > best_gain * f.sumq2) {
            best_d = f.sumqx / f.sumq2;
            best_gain = best_d * f.sumqx;
        }
    }
    // The dynamic-map entries around it, each decoded as nb_nf4_absmax and with its nearest codes.
    uint8_t trial[NB_QK64];
    const int q0 = dynamic_map_index((best_d - job->offset) / scale);
    for (int q = q0 - NF4_MAP_RADIUS; q <= q0 + NF4_MAP_RADIUS; q++) {
        if (q < 0 || q > 255) continue;
        const float d = nb_dynamic_map[q] * scale + job->offset;
        if (!(d > 0)) continue;
        const float err = job->try_codes(x, w, job->bounds, 1.0f / d, d, trial).err;
        if (err < best_err) {
            best_err = err;
            best_q = (uint8_t)q;
            memcpy(codes, trial, NB_QK64);
        }
    }
    return best_q;
}

static void nf4_code_task(void *ctx, int64_t task) {
    const nf4_job *job = ctx;
    const nb_nf4_layout *l = &job->l;
    const int64_t b1 = (task + 1) * job->per_task < l->blocks ? (task + 1) * job->per_task : l->blocks;
    for (int64_t b = task * job->per_task; b < b1; b++) {
        const float *x = job->src + b * NB_QK64;
        float scale;
        memcpy(&scale, job->dst + l->scales + 4 * (size_t)(b / NB_NF4_DQ), 4);
        const float amax = nf4_block_absmax(x);
        const uint8_t q_bnb = scale > 0 ? dynamic_map_index((amax - job->offset) / scale) : 127;  // map[127] = 0
        uint8_t code[NB_QK64], q = q_bnb;
        if (job->scaling == NB_NF4_SEARCH) {
            q = nf4_search_block(job, x, amax, scale, q_bnb, code);
        } else {
            // scaled = clamp(x · (1/max(absmax, 1e-38)), -1, 1); code = #bounds below scaled
            static const float ones[NB_QK64] = {[0 ... NB_QK64 - 1] = 1.0f};
            job->try_codes(x, ones, job->bounds, 1.0f / (amax > 1e-38f ? amax : 1e-38f), amax, code);
        }
        job->dst[l->qabsmax + (size_t)b] = q;
        uint8_t *out = job->dst + b * 32;
        for (int j = 0; j < 16; j++) {
            out[j] = (uint8_t)(code[j] | code[j + 16] << 4);
            out[16 + j] = (uint8_t)(code[32 + j] | code[48 + j] << 4);
        }
    }
}

static void nf4_run(nb_pool *pool, nb_task_fn fn, nf4_job *job, int64_t items) {
    // About 8 tasks per thread; the bytes do not depend on the split.
    const int64_t tasks = pool ? 8 * (int64_t)nb_pool_threads(pool) : 1;
    job->per_task = (items + tasks - 1) / tasks;
    const int64_t n = (items + job->per_task - 1) / job->per_task;
    if (pool) nb_pool_run(pool, fn, job, n);
    else for (int64_t t = 0; t < n; t++) fn(job, t);
}

void nb_pack_nf4(const float *src, int64_t rows, int64_t k, nb_nf4_scaling scaling, nb_pool *pool, void *dst) {
    if (rows <= 0 || k <= 0 || k % NB_QK64) return;
    nf4_job job = {.src = src, .dst = dst, .l = nb_nf4_layout_of(rows, k), .scaling = scaling};
    const nb_nf4_layout *l = &job.l;
    nf4_bounds(job.bounds);
#if defined(__x86_64__)
    job.try_codes = nb_use_avx2() ? nf4_try_avx2 : nf4_try_portable;
#else
    job.try_codes = nf4_try_portable;
#endif
    // Double quantisation: the offset is the mean absmax (summed in double, per
    // second-level block and then in order); each second-level scale is the largest
    // |absmax − offset| of its 256 blocks, which is at their smallest or largest absmax.
    nf4_run(pool, nf4_stats_task, &job, l->scale_blocks);
    uint8_t *out = dst;
    double total = 0;
    for (int64_t s = 0; s < l->scale_blocks; s++) {
        nf4_stats st;
        memcpy(&st, out + (size_t)s * NB_NF4_DQ * 32, sizeof st);
        total += st.sum;
    }
    job.offset = (float)(total / (double)l->blocks);
    memcpy(out + l->offset, &job.offset, 4);
    for (int64_t s = 0; s < l->scale_blocks; s++) {
        nf4_stats st;
        memcpy(&st, out + (size_t)s * NB_NF4_DQ * 32, sizeof st);
        const float lo = fabsf(st.min - job.offset), hi = fabsf(st.max - job.offset);
        const float scale = hi > lo ? hi : lo;
        memcpy(out + l->scales + 4 * (size_t)s, &scale, 4);
    }
    memset(out + l->qabsmax + l->blocks, 0, l->scales - (l->qabsmax + (size_t)l->blocks));
    nf4_run(pool, nf4_code_task, &job, l->blocks);
}

// ---- pack / unpack ----------------------------------------------------------------------

#if defined(__x86_64__)
NB_AVX2 static void pack_q8_row_avx2(const float *x, nb_block_q8 *y, int64_t k);
#endif

static void pack_f32(const float *src, int64_t rows, int64_t k, void *dst) { memcpy(dst, src, (size_t)(rows * k) * 4); }
static void pack_f16(const float *src, int64_t rows, int64_t k, void *dst) { nb_f32_to_f16(src, dst, rows * k); }
static void pack_bf16(const float *src, int64_t rows, int64_t k, void *dst) {
    for (int64_t i = 0; i < rows * k; i++) ((uint16_t *)dst)[i] = nb_f2bf(src[i]);
}
static void pack_q8(const float *src, int64_t rows, int64_t k, void *dst) {
#if defined(__x86_64__)
    if (nb_use_avx2()) {
        for (int64_t r = 0; r < rows; r++) pack_q8_row_avx2(src + r * k, (nb_block_q8 *)dst + r * (k / NB_QK), k);
        return;
    }
#endif
    for (int64_t r = 0; r < rows; r++) pack_q8_row(src + r * k, (nb_block_q8 *)dst + r * (k / NB_QK), k);
}
static void pack_q4(const float *src, int64_t rows, int64_t k, void *dst) {
    for (int64_t r = 0; r < rows; r++) pack_q4_row(src + r * k, (nb_block_q4 *)dst + r * (k / NB_QK), k);
}
static void pack_q2(const float *src, int64_t rows, int64_t k, void *dst) {
    for (int64_t g = 0; g < rows * (k / NB_QK64); g++) pack_q2_group(src + g * NB_QK64, (nb_block_q2 *)dst + g);
}
static void pack_nf4(const float *src, int64_t rows, int64_t k, void *dst) { nb_pack_nf4(src, rows, k, NB_NF4_SEARCH, NULL, dst); }

static void unpack_f32(const void *w, float *out, int64_t n) { memcpy(out, w, (size_t)n * 4); }
static void unpack_f16(const void *w, float *out, int64_t n) { nb_f16_to_f32(w, out, n); }
static void unpack_bf16(const void *w, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = nb_bf2f(((const uint16_t *)w)[i]);
}
static void unpack_q2(const void *w, float *out, int64_t n) {
    const nb_block_q2 *blk = w;
    for (int64_t g = 0; g < n; g++) {
        const float d = nb_h2f(blk[g].d), m = nb_h2f(blk[g].m);
        for (int s = 0; s < 4; s++)
            for (int j = 0; j < 16; j++) out[g * NB_QK64 + 16 * s + j] = ((blk[g].qs[j] >> (2 * s)) & 3) * d + m;
    }
}

// GGML type numbers (ggml.h, enum ggml_type).
enum {
    GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q5_0 = 6, GGML_Q5_1 = 7, GGML_Q8_0 = 8,
    GGML_Q2_K = 10, GGML_Q3_K = 11, GGML_Q4_K = 12, GGML_Q5_K = 13, GGML_Q6_K = 14, GGML_IQ4_NL = 20,
    GGML_IQ4_XS = 23, GGML_BF16 = 30,
};

#define KERNELS(NAME) {nb_mm_##NAME##_scalar, nb_mm_##NAME##_avx2, nb_mm_##NAME##_avxvnni, nb_mm_##NAME##_avx512}
#define BPW(block, bytes) ((double)(bytes) * 8 / (block))

// The format table. Columns of info: name, block, block bytes, bits per weight, GGML
// type, activation kind, packable, rows independent; then the packer, the unpacker, the
// kernels per level and the interleaved layout's f16 fields and code bytes per block (and
// where the fields are when they do not lead the block).
const nb_format_row nb_formats[NB_FMT_COUNT] = {
    [NB_FMT_F32] = {{"f32", 1, 4, 32, GGML_F32, NB_ACT_F32, 1, 1}, pack_f32, unpack_f32, {nb_mm_f32}},
    [NB_FMT_F16] = {{"f16", 1, 2, 16, GGML_F16, NB_ACT_F32, 1, 1}, pack_f16, unpack_f16, {nb_mm_f16}},
    [NB_FMT_BF16] = {{"bf16", 1, 2, 16, GGML_BF16, NB_ACT_F32, 1, 1}, pack_bf16, unpack_bf16, {nb_mm_bf16}},
    [NB_FMT_Q8] = {{"q8", 32, 34, BPW(32, 34), GGML_Q8_0, NB_ACT_Q8A, 1, 1}, pack_q8, nb_dequant_q8_0, KERNELS(q8), 1, 32},
    [NB_FMT_Q4] = {{"q4", 32, 20, BPW(32, 20), GGML_Q4_1, NB_ACT_Q8A, 1, 1}, pack_q4, nb_dequant_q4_1, KERNELS(q4), 2, 16},
    // 4 bits + one absmax code per 64 + one f32 scale per 256 blocks (4096 × 4096: + offset)
    [NB_FMT_NF4] = {{"nf4", 64, 32, 4 + 8.0 / 64 + 32.0 / (64 * 256) + 32.0 / (4096.0 * 4096), -1, NB_ACT_Q8A, 1, 0},
                    pack_nf4, NULL, KERNELS(nf4), 0, 32},
    [NB_FMT_Q2] = {{"q2", 64, 20, BPW(64, 20), -1, NB_ACT_Q8A, 1, 1}, pack_q2, unpack_q2, KERNELS(q2), 2, 16},
    [NB_FMT_Q4_0] = {{"q4_0", 32, 18, BPW(32, 18), GGML_Q4_0, NB_ACT_Q8A, 0, 1}, NULL, nb_dequant_q4_0, KERNELS(q4_0), 1, 16},
    [NB_FMT_Q5_0] = {{"q5_0", 32, 22, BPW(32, 22), GGML_Q5_0, NB_ACT_Q8A, 0, 1}, NULL, nb_dequant_q5_0, KERNELS(q5_0), 1, 20},
    [NB_FMT_Q5_1] = {{"q5_1", 32, 24, BPW(32, 24), GGML_Q5_1, NB_ACT_Q8A, 0, 1}, NULL, nb_dequant_q5_1, KERNELS(q5_1), 2, 20},
    [NB_FMT_Q4_K] = {{"q4_K", 256, 144, BPW(256, 144), GGML_Q4_K, NB_ACT_Q8K, 0, 1}, NULL, nb_dequant_q4_K, KERNELS(q4_K), 2, 140},
    [NB_FMT_Q5_K] = {{"q5_K", 256, 176, BPW(256, 176), GGML_Q5_K, NB_ACT_Q8K, 0, 1}, NULL, nb_dequant_q5_K, KERNELS(q5_K), 2, 172},
    [NB_FMT_Q6_K] = {{"q6_K", 256, 210, BPW(256, 210), GGML_Q6_K, NB_ACT_Q8K, 0, 1}, NULL, nb_dequant_q6_K, KERNELS(q6_K), 1, 208, 208},
};

void nb_pack(nb_format fmt, const float *src, int64_t rows, int64_t k, void *dst) {
    const nb_format_info *info = nb_format_get(fmt);
    if (!info || !nb_formats[fmt].pack || nb_format_bytes(fmt, rows, k) == 0) return;
    nb_formats[fmt].pack(src, rows, k, dst);
}

void nb_unpack_row(nb_format fmt, const void *w, int64_t rows, int64_t k, int64_t row, float *out) {
    const nb_format_info *info = nb_format_get(fmt);
    if (!info || nb_format_bytes(fmt, rows, k) == 0) return;
    if (fmt == NB_FMT_NF4) {
        const uint8_t *base = w;
        nb_nf4_layout l = nb_nf4_layout_of(rows, k);
        for (int64_t g = 0; g < k / NB_QK64; g++) {
            const int64_t b = row * (k / NB_QK64) + g;
            const float a = nb_nf4_absmax(base, &l, b);
            const uint8_t *c = base + b * 32;
            for (int j = 0; j < 16; j++) {
                out[g * NB_QK64 + j] = nb_nf4_values[c[j] & 0x0F] * a;
                out[g * NB_QK64 + j + 16] = nb_nf4_values[c[j] >> 4] * a;
                out[g * NB_QK64 + j + 32] = nb_nf4_values[c[16 + j] & 0x0F] * a;
                out[g * NB_QK64 + j + 48] = nb_nf4_values[c[16 + j] >> 4] * a;
            }
        }
        return;
    }
    const int64_t per_row = k / info->block;
    nb_formats[fmt].unpack((const uint8_t *)w + (size_t)(row * per_row) * (size_t)info->block_bytes, out, per_row);
}

// ---- GGML tensors -----------------------------------------------------------------------

// Types that no format keeps, dequantised only: type, block, bytes, dequantiser.
static const struct { uint32_t type; int32_t block, bytes; nb_unpack_fn unpack; } ggml_only[] = {
    {GGML_Q2_K, 256, 84, nb_dequant_q2_K},
    {GGML_Q3_K, 256, 110, nb_dequant_q3_K},
    {GGML_IQ4_NL, 32, 18, nb_dequant_iq4_nl},
    {GGML_IQ4_XS, 256, 136, nb_dequant_iq4_xs},
};

/// Block geometry and dequantiser of a GGML type: from its format's row, or ggml_only.
static int ggml_reader(uint32_t type, int32_t *block, int32_t *bytes, nb_unpack_fn *unpack) {
    const int f = nb_format_of_ggml(type);
    if (f >= 0) {
        *block = nb_formats[f].info.block;
        *bytes = nb_formats[f].info.block_bytes;
        *unpack = nb_formats[f].unpack;
        return 1;
    }
    for (size_t i = 0; i < sizeof ggml_only / sizeof ggml_only[0]; i++)
        if (ggml_only[i].type == type) {
            *block = ggml_only[i].block;
            *bytes = ggml_only[i].bytes;
            *unpack = ggml_only[i].unpack;
            return 1;
        }
    return 0;
}

int nb_ggml_can_dequantize(uint32_t ggml_type) {
    int32_t block, bytes;
    nb_unpack_fn unpack;
    return ggml_reader(ggml_type, &block, &bytes, &unpack);
}

int32_t nb_ggml_block_size(uint32_t ggml_type) {
    int32_t block = 0, bytes = 0;
    nb_unpack_fn unpack;
    return ggml_reader(ggml_type, &block, &bytes, &unpack) ? block : 0;
}

int32_t nb_ggml_block_bytes(uint32_t ggml_type) {
    int32_t block = 0, bytes = 0;
    nb_unpack_fn unpack;
    return ggml_reader(ggml_type, &block, &bytes, &unpack) ? bytes : 0;
}

int nb_ggml_dequantize(uint32_t ggml_type, const void *src, int64_t n, float *out) {
    int32_t block, bytes;
    nb_unpack_fn unpack;
    if (!ggml_reader(ggml_type, &block, &bytes, &unpack) || n < 0 || n % block) return 0;
    unpack(src, out, n / block);
    return 1;
}

// ---- f16 conversion -----------------------------------------------------------------------

#if defined(__x86_64__)
#include "x86_simd.h"

NB_AVX2 static void f32_to_f16_f16c(const float *src, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = nb_f2h(src[i]);
}

NB_AVX2 static void f16_to_f32_f16c(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = nb_h2f(src[i]);
}
#endif

void nb_f32_to_f16(const float *src, uint16_t *dst, int64_t n) {
#if defined(__x86_64__)
    if (nb_use_avx2()) { f32_to_f16_f16c(src, dst, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) dst[i] = nb_f2h(src[i]);
}

void nb_f16_to_f32(const uint16_t *src, float *dst, int64_t n) {
#if defined(__x86_64__)
    if (nb_use_avx2()) { f16_to_f32_f16c(src, dst, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) dst[i] = nb_h2f(src[i]);
}

// ---- activations --------------------------------------------------------------------------

// d = absmax/127, id = 1/d, q = roundf(x · id) (half away from zero), s = d · Σq.
static void quantize_block_scalar(const float *x, nb_q8a *y) {
    float amax = 0;
    for (int j = 0; j < NB_QK; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    const float d = amax / 127;
    const float id = d > 0 ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < NB_QK; j++) {
        y->qs[j] = (int8_t)roundf(x[j] * id);
        sum += y->qs[j];
    }
    y->d = d;
    y->s = d * (float)sum;
}

#if defined(__x86_64__)
// roundf in SIMD: truncate, then step away from zero where the dropped fraction is ≥ 1/2
// (exact: the fraction of a float is representable).
NB_AVX2 static inline __m256 round_half_away(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    __m256 step = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), step));
}

// max |x| over n (a multiple of 32) floats.
NB_AVX2 static inline float absmax_avx2(const float *x, int64_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 32) {
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8), v2 = _mm256_loadu_ps(x + i + 16),
               v3 = _mm256_loadu_ps(x + i + 24);
        m = _mm256_max_ps(m, _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                           _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3))));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    return _mm_cvtss_f32(m4);
}

// q = roundf(x · id) for 32 values into `qs`; returns the q summed in 8 lanes (small
// integers: exact in any order).
NB_AVX2 static inline __m256 q8_scaled_avx2(const float *x, float id, int8_t *qs) {
    const __m256 vid = _mm256_set1_ps(id);
    __m256 v0 = round_half_away(_mm256_mul_ps(_mm256_loadu_ps(x), vid));
    __m256 v1 = round_half_away(_mm256_mul_ps(_mm256_loadu_ps(x + 8), vid));
    __m256 v2 = round_half_away(_mm256_mul_ps(_mm256_loadu_ps(x + 16), vid));
    __m256 v3 = round_half_away(_mm256_mul_ps(_mm256_loadu_ps(x + 24), vid));
    __m256i i0 = _mm256_packs_epi32(_mm256_cvtps_epi32(v0), _mm256_cvtps_epi32(v1));
    __m256i i2 = _mm256_packs_epi32(_mm256_cvtps_epi32(v2), _mm256_cvtps_epi32(v3));
    i0 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(i0, i2), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)qs, i0);
    return _mm256_add_ps(_mm256_add_ps(v0, v1), _mm256_add_ps(v2, v3));
}

NB_AVX2 static inline float hsum8_avx2(__m256 s8) {
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
    return _mm_cvtss_f32(s4);
}

/// Lane b of the result: v[b]'s 8 lanes combined, by max or (`add`) by addition; only for
/// values where the order does not matter (max; sums of small integers).
NB_AVX2 static inline __m256 combine8_avx2(const __m256 *v, const int add) {
#define NB_OP(a, b) (add ? _mm256_add_ps(a, b) : _mm256_max_ps(a, b))
    __m256 r[2];
    for (int h = 0; h < 2; h++) {
        const __m256 *q = v + 4 * h;
        const __m256 t01 = NB_OP(_mm256_unpacklo_ps(q[0], q[1]), _mm256_unpackhi_ps(q[0], q[1]));
        const __m256 t23 = NB_OP(_mm256_unpacklo_ps(q[2], q[3]), _mm256_unpackhi_ps(q[2], q[3]));
        r[h] = NB_OP(_mm256_shuffle_ps(t01, t23, _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(t01, t23, _MM_SHUFFLE(3, 2, 3, 2)));
    }
    return NB_OP(_mm256_permute2f128_ps(r[0], r[1], 0x20), _mm256_permute2f128_ps(r[0], r[1], 0x31));
#undef NB_OP
}

// One 32-block the way quantize_row_q8_0_ref does it: d = absmax/127, q = roundf(x · (1/d))
// into `qs`; returns d, and Σq in *sum_q when asked.
NB_AVX2 static inline float q8_block_avx2(const float *x, int8_t *qs, float *sum_q) {
    const float d = absmax_avx2(x, NB_QK) / 127;
    const __m256 s8 = q8_scaled_avx2(x, d > 0 ? 1.0f / d : 0.0f, qs);
    if (sum_q) *sum_q = hsum8_avx2(s8);
    return d;
}

// quantize_q8k_scalar with the same float operations.
NB_AVX2 static void quantize_q8k_avx2(const float *x, nb_q8k *y) {
    const float d = absmax_avx2(x, NB_QKK) / 127;
    const float id = d > 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < NB_QKK; j += 32) q8_scaled_avx2(x + j, id, y->qs + j);
    y->d = d;
}

NB_AVX2 static void quantize_block_avx2(const float *x, nb_q8a *y) {
    float sum_q;
    const float d = q8_block_avx2(x, y->qs, &sum_q);
    y->d = d;
    y->s = d * sum_q;
}

// Eight consecutive blocks as quantize_block_avx2 does them, with their absmax reduced side by
// side and their d = absmax/127 and 1/d taken as one vector division each (the same IEEE
// operations: the same bytes). One block at a time, the horizontal max and the two scalar
// divisions made a dependent chain of ~55 cycles a block (SmolLM2's decode quantises 102
// blocks a layer on the caller's thread alone): 16.8 → 6.5 ns a block on Zen 3.
NB_AVX2 static void quantize_8blocks_avx2(const float *x, nb_q8a *y) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m[8];
    for (int b = 0; b < 8; b++) {
        const float *p = x + b * NB_QK;
        const __m256 a0 = _mm256_andnot_ps(sign, _mm256_loadu_ps(p)), a1 = _mm256_andnot_ps(sign, _mm256_loadu_ps(p + 8)),
                     a2 = _mm256_andnot_ps(sign, _mm256_loadu_ps(p + 16)), a3 = _mm256_andnot_ps(sign, _mm256_loadu_ps(p + 24));
        m[b] = _mm256_max_ps(_mm256_setzero_ps(), _mm256_max_ps(_mm256_max_ps(a0, a1), _mm256_max_ps(a2, a3)));
    }
    // lane b: block b's absmax (as absmax_avx2's: max is exact in any order)
    const __m256 d = _mm256_div_ps(combine8_avx2(m, 0), _mm256_set1_ps(127.0f));
    const __m256 id = _mm256_and_ps(_mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_GT_OQ), _mm256_div_ps(_mm256_set1_ps(1.0f), d));
    float idv[8];
    _mm256_storeu_ps(idv, id);
    __m256 s8[8];
    for (int b = 0; b < 8; b++) s8[b] = q8_scaled_avx2(x + b * NB_QK, idv[b], y[b].qs);
    float dv[8], sv[8];
    _mm256_storeu_ps(dv, d);
    _mm256_storeu_ps(sv, _mm256_mul_ps(d, combine8_avx2(s8, 1)));
    for (int b = 0; b < 8; b++) {
        y[b].d = dv[b];
        y[b].s = sv[b];
    }
}

// pack_q8_row with the same float operations, 32 at a time (same bytes; a live switch to
// q8 spent a third of its time in the scalar loop's roundf calls).
NB_AVX2 static void pack_q8_row_avx2(const float *x, nb_block_q8 *y, int64_t k) {
    for (int64_t b = 0; b < k / NB_QK; b++, x += NB_QK) y[b].d = nb_f2h(q8_block_avx2(x, y[b].qs, NULL));
}
#endif

float nb_q8_block_f32(const float *x, int8_t *qs) {
#if defined(__x86_64__)
    if (nb_isa_has_avx2(nb_active_isa())) return q8_block_avx2(x, qs, NULL);
#endif
    float amax = 0;
    for (int j = 0; j < NB_QK; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    const float d = amax / 127;
    const float id = d > 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < NB_QK; j++) qs[j] = (int8_t)roundf(x[j] * id);
    return d;
}

// One 256-block: d = absmax/127, q = roundf(x · (1/d)) (GGML's quantize_row_q8_K_ref uses
// −127/max and rounds half to even; this keeps nb_q8a's rounding).
static void quantize_q8k_scalar(const float *x, nb_q8k *y) {
    float amax = 0;
    for (int j = 0; j < NB_QKK; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    const float d = amax / 127;
    const float id = d > 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < NB_QKK; j++) y->qs[j] = (int8_t)roundf(x[j] * id);
    y->d = d;
}

static void q8k_bsums(nb_q8k *y) {
    for (int g = 0; g < 16; g++) {
        int sum = 0;
        for (int j = 0; j < 16; j++) sum += y->qs[16 * g + j];
        y->bsums[g] = (int16_t)sum;
    }
}

size_t nb_activation_bytes(nb_activation kind, int64_t n_tokens, int64_t k) {
    if (n_tokens < 0 || k <= 0) return 0;
    switch (kind) {
    case NB_ACT_Q8A: return k % NB_QK ? 0 : (size_t)(n_tokens * (k / NB_QK)) * sizeof(nb_q8a);
    case NB_ACT_Q8K: return k % NB_QKK ? 0 : (size_t)(n_tokens * (k / NB_QKK)) * sizeof(nb_q8k);
    default: return 0;
    }
}

void nb_quantize_for(nb_activation kind, const float *x, int64_t n_tokens, int64_t k, void *out) {
    if (nb_activation_bytes(kind, n_tokens, k) == 0) return;
    if (kind == NB_ACT_Q8A) { nb_quantize_activations(x, n_tokens, k, out); return; }
    const int64_t nb = k / NB_QKK;
    nb_q8k *y = out;
    for (int64_t i = 0; i < n_tokens * nb; i++) {
#if defined(__x86_64__)
        if (nb_use_avx2()) quantize_q8k_avx2(x + i * NB_QKK, y + i);
        else
#endif
            quantize_q8k_scalar(x + i * NB_QKK, y + i);
        q8k_bsums(y + i);
    }
}

void nb_quantize_activations(const float *x, int64_t n_tokens, int64_t k, nb_q8a *out) {
    const int64_t nb = k / NB_QK;
#if defined(__x86_64__)
    if (nb_use_avx2()) {
        for (int64_t t = 0; t < n_tokens; t++) {
            int64_t b = 0;
            for (; b + 8 <= nb; b += 8) quantize_8blocks_avx2(x + t * k + b * NB_QK, out + t * nb + b);
            for (; b < nb; b++) quantize_block_avx2(x + t * k + b * NB_QK, out + t * nb + b);
        }
        return;
    }
#endif
    for (int64_t t = 0; t < n_tokens; t++)
        for (int64_t b = 0; b < nb; b++) quantize_block_scalar(x + t * k + b * NB_QK, out + t * nb + b);
}
