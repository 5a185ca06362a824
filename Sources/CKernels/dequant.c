// GGML block dequantisers: blocks → f32, bit for bit as ggml's dequantize_row_* and
// gguf-py's gguf.quants.dequantize (both round every product and difference separately:
// formats.h turns FP contraction off, so `d * q - m` is never fused).
//
// Ported from llama.cpp's ggml/src/ggml-quants.c (MIT License, Copyright (c) 2023-2024
// The ggml authors), as vendored in llama-cpp-python 0.3.36: dequantize_row_q4_0, _q4_1,
// _q5_0, _q5_1, _q8_0, _q2_K, _q3_K, _q4_K, _q5_K, _q6_K, _iq4_nl, _iq4_xs, and
// kvalues_iq4nl from ggml-common.h.
#include "formats.h"

// ggml-common.h: kvalues_iq4nl.
static const int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

void nb_dequant_q8_0(const void *blocks, float *y, int64_t n_blocks) {
    const nb_block_q8 *x = blocks;
    for (int64_t i = 0; i < n_blocks; i++, y += 32) {
        const float d = nb_h2f(x[i].d);
        for (int j = 0; j < 32; j++) y[j] = x[i].qs[j] * d;
    }
}

void nb_dequant_q4_0(const void *blocks, float *y, int64_t n_blocks) {
    const nb_block_q4_0 *x = blocks;
    for (int64_t i = 0; i < n_blocks; i++, y += 32) {
        const float d = nb_h2f(x[i].d);
        for (int j = 0; j < 16; j++) {
            y[j] = ((x[i].qs[j] & 0x0F) - 8) * d;
            y[j + 16] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void nb_dequant_q4_1(const void *blocks, float *y, int64_t n_blocks) {
    const nb_block_q4 *x = blocks;
    for (int64_t i = 0; i < n_blocks; i++, y += 32) {
        const float d = nb_h2f(x[i].d), m = nb_h2f(x[i].m);
        for (int j = 0; j < 16; j++) {
            y[j] = (x[i].qs[j] & 0x0F) * d + m;
            y[j + 16] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

void nb_dequant_q5_0(const void *blocks, float *y, int64_t n_blocks) {
    const nb_block_q5_0 *x = blocks;
    for (int64_t i = 0; i < n_blocks; i++, y += 32) {
        const float d = nb_h2f(x[i].d);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < 16; j++) {
            const int x0 = ((x[i].qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10)) - 16;
            const int x1 = ((x[i].qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
            y[j] = x0 * d;
            y[j + 16] = x1 * d;
        }
    }
}

void nb_dequant_q5_1(const void *blocks, float *y, int64_t n_blocks) {
    const nb_block_q5_1 *x = blocks;
    for (int64_t i = 0; i < n_blocks; i++, y += 32) {
        const float d = nb_h2f(x[i].d), m = nb_h2f(x[i].m);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < 16; j++) {
            const int x0 = (x[i].qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10);
            const int x1 = (x[i].qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
            y[j] = x0 * d + m;
            y[j + 16] = x1 * d + m;
        }
    }
}

void nb_dequant_q2_K(const void *blocks, float *y, int64_t n_blocks) {
    const nb_block_q2_K *x = blocks;
    for (int64_t i = 0; i < n_blocks; i++) {
        const float d = nb_h2f(x[i].d), min = nb_h2f(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int n = 0; n < 256; n += 128) {
            int shift = 0;
            for (int j = 0; j < 4; ++j) {
                uint8_t sc = x[i].scales[is++];
                float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                for (int l = 0; l < 16; ++l) *y++ = dl * ((int8_t)((q[l] >> shift) & 3)) - ml;
                sc = x[i].scales[is++];
                dl = d * (sc & 0xF);
                ml = min * (sc >> 4);
                for (int l = 0; l < 16; ++l) *y++ = dl * ((int8_t)((q[l + 16] >> shift) & 3)) - ml;
                shift += 2;
            }
            q += 32;
        }
    }
}

void nb_dequant_q3_K(const void *blocks, float *y, int64_t n_blocks) {
    const nb_block_q3_K *x = blocks;
    const uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
    uint32_t aux[4];
    const int8_t *scales = (const int8_t *)aux;
    for (int64_t i = 0; i < n_blocks; i++) {
        const float d_all = nb_h2f(x[i].d);
        const uint8_t *q = x[i].qs, *hm = x[i].hmask;
        uint8_t m = 1;
        memcpy(aux, x[i].scales, 12);
        const uint32_t tmp = aux[2];
        aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
        aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
        aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
        aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
        int is = 0;
        for (int n = 0; n < 256; n += 128) {
            int shift = 0;
            for (int j = 0; j < 4; ++j) {
                float dl = d_all * (scales[is++] - 32);
                for (int l = 0; l < 16; ++l) *y++ = dl * ((int8_t)((q[l + 0] >> shift) & 3) - ((hm[l + 0] & m) ? 0 : 4));
                dl = d_all * (scales[is++] - 32);
                for (int l = 0; l < 16; ++l) *y++ = dl * ((int8_t)((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
                shift += 2;
                m <<= 1;
            }
            q += 32;
        }
    }
}

void nb_dequant_q4_K(const void *blocks, float *y, int64_t n_blocks) {
    const nb_block_q4_K *x = blocks;
    for (int64_t i = 0; i < n_blocks; i++) {
        const uint8_t *q = x[i].qs;
        const float d = nb_h2f(x[i].d), min = nb_h2f(x[i].dmin);
        int is = 0;
        uint8_t sc, m;
        for (int j = 0; j < 256; j += 64) {
            nb_scale_min_k4(is + 0, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            nb_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
            q += 32;
            is += 2;
        }
    }
}

void nb_dequant_q5_K(const void *blocks, float *y, int64_t n_blocks) {
    const nb_block_q5_K *x = blocks;
    for (int64_t i = 0; i < n_blocks; i++) {
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        const float d = nb_h2f(x[i].d), min = nb_h2f(x[i].dmin);
        int is = 0;
        uint8_t sc, m, u1 = 1, u2 = 2;
        for (int j = 0; j < 256; j += 64) {
            nb_scale_min_k4(is + 0, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            nb_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32;
            is += 2;
            u1 <<= 2;
            u2 <<= 2;
        }
    }
}

void nb_dequant_q6_K(const void *blocks, float *y, int64_t n_blocks) {
    const nb_block_q6_K *x = blocks;
    for (int64_t i = 0; i < n_blocks; i++) {
        const float d = nb_h2f(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int n = 0; n < 256; n += 128) {
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

void nb_dequant_iq4_nl(const void *blocks, float *y, int64_t n_blocks) {
    const nb_block_iq4_nl *x = blocks;
    for (int64_t i = 0; i < n_blocks; i++, y += 32) {
        const float d = nb_h2f(x[i].d);
        for (int j = 0; j < 16; ++j) {
            y[j] = d * kvalues_iq4nl[x[i].qs[j] & 0xf];
            y[j + 16] = d * kvalues_iq4nl[x[i].qs[j] >> 4];
        }
    }
}

void nb_dequant_iq4_xs(const void *blocks, float *y, int64_t n_blocks) {
    const nb_block_iq4_xs *x = blocks;
    for (int64_t i = 0; i < n_blocks; i++) {
        const uint8_t *qs = x[i].qs;
        const float d = nb_h2f(x[i].d);
        for (int ib = 0; ib < 8; ++ib) {
            const int ls = ((x[i].scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) | (((x[i].scales_h >> 2 * ib) & 3) << 4);
            const float dl = d * (ls - 32);
            for (int j = 0; j < 16; ++j) {
                y[j + 0] = dl * kvalues_iq4nl[qs[j] & 0xf];
                y[j + 16] = dl * kvalues_iq4nl[qs[j] >> 4];
            }
            y += 32;
            qs += 16;
        }
    }
}
