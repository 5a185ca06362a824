// The interleaved layout of q8, q4, q4_0, q5_0, q5_1, q2, nf4 and the K-quants q4_K, q5_K, q6_K
// (CKernels.h, "interleaved weights"): made
// from and turned back into GGML blocks, unpacked a row at a time, and multiplied: the SIMD
// levels read it with aligned loads (matmul_q_simd.h and matmul_k_simd.h, "interleaved
// groups"); the scalar level
// turns each group back into blocks and runs the scalar kernel, so every level is checked
// against the same reference as the GGML layout.
#include "matmul_q.h"
#include <stdlib.h>

// nf4's groups are followed by its per-256-block scales and offset, as nb_pack_nf4 wrote them
// (the tail): where the tail starts and how long it is.
static size_t nf4_tail(int64_t rows, int64_t k, const nb_il_geometry *g, size_t *bytes) {
    const nb_nf4_layout l = nb_nf4_layout_of(rows, k);
    *bytes = l.total - l.scales;
    return (size_t)((rows + NB_IL_ROWS - 1) / NB_IL_ROWS) * g->group;
}

size_t nb_interleaved_bytes(nb_format fmt, int64_t rows, int64_t k) {
    nb_il_geometry g;
    if (rows <= 0 || !nb_il_geometry_of(fmt, k, &g)) return 0;
    size_t tail = 0;
    if (fmt == NB_FMT_NF4) nf4_tail(rows, k, &g, &tail);
    return (size_t)((rows + NB_IL_ROWS - 1) / NB_IL_ROWS) * g.group + tail;
}

// nf4: row r's 64-block b has its absmax code at qabsmax + r·nb + b and its 32 code bytes at
// (r·nb + b)·32 of the whole matrix (`blocks` is its start whichever rows move); in the group,
// the code byte at lane i + b·16, the code words as the other formats'. The tail (scales,
// offset) is copied whole both ways.
static void move_rows_nf4(int64_t rows, int64_t k, uint8_t *blocks, int64_t row0, int64_t n, uint8_t *il, int to_il,
                          const nb_il_geometry *g) {
    const nb_nf4_layout l = nb_nf4_layout_of(rows, k);
    for (int64_t r = row0; r < row0 + n; r++) {
        uint8_t *grp = il + (size_t)(r / NB_IL_ROWS) * g->group;
        const size_t lane = (size_t)(r % NB_IL_ROWS);
        for (int64_t b = 0; b < g->nb; b++) {
            uint8_t *q = blocks + l.qabsmax + (size_t)(r * g->nb + b), *at = grp + nb_il_scales_at(g, b) + lane;
            if (to_il) *at = *q; else *q = *at;
            uint8_t *codes = blocks + (size_t)(r * g->nb + b) * 32;
            for (int j = 0; j < 8; j++) {
                uint8_t *w = grp + nb_il_codes_at(g, b) + 64 * (size_t)j + 4 * lane;
                if (to_il) memcpy(w, codes + 4 * j, 4); else memcpy(codes + 4 * j, w, 4);
            }
        }
    }
    size_t tail_bytes;
    uint8_t *tail = il + nf4_tail(rows, k, g, &tail_bytes);
    if (to_il) {
        memcpy(tail, blocks + l.scales, tail_bytes);
    } else {
        memcpy(blocks + l.scales, tail, tail_bytes);
        memset(blocks + l.qabsmax + l.blocks, 0, l.scales - (l.qabsmax + (size_t)l.blocks));  // as nb_pack_nf4
    }
}

// Block b of a row lives at lane i of its group: f16 field f at nb_il_scales_at(b) + 32f + 2i,
// code word j at nb_il_codes_at(b) + 64j + 4i; in the block's own bytes the fields are at
// field_at and the codes, the rest of the block in order, at code_at.
// Rows [row0, row0 + n) between their blocks and their lanes: into the groups (to_il) or
// out of them. 0 when the arguments do not describe such rows.
static int move_rows(nb_format fmt, int64_t rows, int64_t k, uint8_t *blocks, int64_t row0, int64_t n, uint8_t *il,
                     int to_il) {
    nb_il_geometry g;
    if (n <= 0 || row0 < 0 || row0 + n > rows || !nb_il_geometry_of(fmt, k, &g)) return 0;
    if (fmt == NB_FMT_NF4) {
        move_rows_nf4(rows, k, blocks, row0, n, il, to_il, &g);
        return 1;
    }
    const int fields = nb_formats[fmt].il_fields, words = nb_formats[fmt].il_qbytes / 4;
    const size_t block_bytes = (size_t)nb_formats[fmt].info.block_bytes, row_bytes = (size_t)g.nb * block_bytes;
    for (int64_t r = row0; r < row0 + n; r++) {
        uint8_t *grp = il + (size_t)(r / NB_IL_ROWS) * g.group, *blk = blocks + (size_t)(r - row0) * row_bytes;
        const size_t lane = (size_t)(r % NB_IL_ROWS);
        for (int64_t b = 0; b < g.nb; b++, blk += block_bytes) {
            for (int f = 0; f < fields; f++) {
                uint8_t *at = grp + nb_il_scales_at(&g, b) + 32 * (size_t)f + 2 * lane;
                if (to_il) memcpy(at, blk + g.field_at + 2 * f, 2); else memcpy(blk + g.field_at + 2 * f, at, 2);
            }
            for (int j = 0; j < words; j++) {
                uint8_t *at = grp + nb_il_codes_at(&g, b) + 64 * (size_t)j + 4 * lane;
                if (to_il) memcpy(at, blk + g.code_at + 4 * j, 4); else memcpy(blk + g.code_at + 4 * j, at, 4);
            }
        }
    }
    return 1;
}

void nb_interleave(nb_format fmt, int64_t rows, int64_t k, const void *blocks, int64_t row0, int64_t n, void *dst) {
    if (!move_rows(fmt, rows, k, (uint8_t *)blocks, row0, n, dst, 1)) return;  // read only: to_il
    nb_il_geometry g;
    nb_il_geometry_of(fmt, k, &g);
    const int fields = nb_formats[fmt].il_fields, words = nb_formats[fmt].il_qbytes / 4;
    if (row0 + n == rows && rows % NB_IL_ROWS) {  // the padding rows: zero scales and codes
        uint8_t *grp = (uint8_t *)dst + (size_t)(rows / NB_IL_ROWS) * g.group;
        for (size_t lane = (size_t)(rows % NB_IL_ROWS); lane < NB_IL_ROWS; lane++)
            for (int64_t b = 0; b < g.nb; b++) {
                for (int f = 0; f < fields; f++) memset(grp + nb_il_scales_at(&g, b) + 32 * (size_t)f + 2 * lane, 0, 2);
                if (!fields) grp[nb_il_scales_at(&g, b) + lane] = 0;  // nf4's absmax code
                for (int j = 0; j < words; j++) memset(grp + nb_il_codes_at(&g, b) + 64 * (size_t)j + 4 * lane, 0, 4);
            }
    }
    // the runs' scale padding (a last run of fewer blocks), so that the bytes are a function of
    // the matrix alone
    for (int64_t r = row0; r < row0 + n; r++)
        if (r % NB_IL_ROWS == 0 || r == row0) {
            uint8_t *grp = (uint8_t *)dst + (size_t)(r / NB_IL_ROWS) * g.group;
            for (int64_t b = 0; b < g.nb; b += g.per) {
                const size_t used = (size_t)(g.nb - b < g.per ? g.nb - b : g.per) * g.scale_bytes;
                memset(grp + nb_il_scales_at(&g, b) + used, 0, g.head - used);
            }
        }
}

void nb_pack_interleaved(nb_format fmt, const float *src, int64_t rows, int64_t k, int64_t row0, int64_t n, void *dst) {
    nb_il_geometry g;
    if (n <= 0 || row0 < 0 || row0 + n > rows || !nb_il_geometry_of(fmt, k, &g) || !nb_formats[fmt].pack ||
        fmt == NB_FMT_NF4)
        return;
    const size_t row_bytes = nb_format_bytes(fmt, 1, k);
    uint8_t *blocks = malloc(NB_IL_ROWS * row_bytes);  // one group's blocks at a time
    if (!blocks) return;
    for (int64_t r = row0; r < row0 + n;) {
        const int64_t end = (r / NB_IL_ROWS + 1) * NB_IL_ROWS < row0 + n ? (r / NB_IL_ROWS + 1) * NB_IL_ROWS : row0 + n;
        nb_formats[fmt].pack(src + (r - row0) * k, end - r, k, blocks);
        nb_interleave(fmt, rows, k, blocks, r, end - r, dst);
        r = end;
    }
    free(blocks);
}

void nb_deinterleave(nb_format fmt, int64_t rows, int64_t k, const void *il, int64_t row0, int64_t n, void *blocks) {
    move_rows(fmt, rows, k, blocks, row0, n, (uint8_t *)il, 0);  // read only: !to_il
}

// nf4's row as nb_unpack_row unpacks it, straight from the group and the tail.
static void unpack_row_nf4(const uint8_t *il, int64_t rows, int64_t k, int64_t row, const nb_il_geometry *g, float *out) {
    const nb_nf4_layout l = nb_nf4_layout_of(rows, k);
    size_t tail_bytes;
    const uint8_t *tail = il + nf4_tail(rows, k, g, &tail_bytes), *grp = il + (size_t)(row / NB_IL_ROWS) * g->group;
    const size_t lane = (size_t)(row % NB_IL_ROWS);
    float offset;
    memcpy(&offset, tail + (l.offset - l.scales), 4);
    for (int64_t b = 0; b < g->nb; b++) {
        float scale;
        memcpy(&scale, tail + 4 * (size_t)((row * g->nb + b) / NB_NF4_DQ), 4);
        const float v = nb_dynamic_map[grp[nb_il_scales_at(g, b) + lane]] * scale, a = v + offset;  // nb_nf4_absmax
        uint8_t c[32];
        for (int j = 0; j < 8; j++) memcpy(c + 4 * j, grp + nb_il_codes_at(g, b) + 64 * (size_t)j + 4 * lane, 4);
        for (int j = 0; j < 16; j++) {
            out[b * NB_QK64 + j] = nb_nf4_values[c[j] & 0x0F] * a;
            out[b * NB_QK64 + j + 16] = nb_nf4_values[c[j] >> 4] * a;
            out[b * NB_QK64 + j + 32] = nb_nf4_values[c[16 + j] & 0x0F] * a;
            out[b * NB_QK64 + j + 48] = nb_nf4_values[c[16 + j] >> 4] * a;
        }
    }
}

void nb_unpack_row_interleaved(nb_format fmt, const void *il, int64_t rows, int64_t k, int64_t row, float *out) {
    nb_il_geometry g;
    if (row < 0 || row >= rows || !nb_il_geometry_of(fmt, k, &g)) return;
    if (fmt == NB_FMT_NF4) {
        unpack_row_nf4(il, rows, k, row, &g, out);
        return;
    }
    const size_t row_bytes = nb_format_bytes(fmt, 1, k);
    uint8_t small[4096];
    uint8_t *blocks = row_bytes <= sizeof small ? small : malloc(row_bytes);
    if (!blocks) return;
    nb_deinterleave(fmt, rows, k, il, row, 1, blocks);
    nb_formats[fmt].unpack(blocks, out, g.nb);
    if (blocks != small) free(blocks);
}

// The scalar level: each group's rows in the range back to GGML blocks, then the scalar kernel.
static void matmul_il_scalar(nb_format fmt, const void *il, int64_t rows, int64_t k, const nb_q8a *xq, float *y,
                             int64_t n_tokens, int64_t ld_y, int64_t row_begin, int64_t row_end) {
    if (fmt == NB_FMT_NF4) {  // the whole matrix's layout (its side arrays are global), the range's rows filled
        uint8_t *whole = malloc(nb_format_bytes(fmt, rows, k));
        if (!whole) return;
        nb_deinterleave(fmt, rows, k, il, row_begin, row_end - row_begin, whole);
        const qmat m = qmat_of(fmt, whole, rows, k);
        nb_matmul_q_scalar(&m, xq, y, n_tokens, ld_y, row_begin, row_end);
        free(whole);
        return;
    }
    const size_t row_bytes = nb_format_bytes(fmt, 1, k);
    uint8_t *blocks = malloc(NB_IL_ROWS * row_bytes);
    if (!blocks) return;
    for (int64_t r = row_begin; r < row_end;) {
        const int64_t end = (r / NB_IL_ROWS + 1) * NB_IL_ROWS < row_end ? (r / NB_IL_ROWS + 1) * NB_IL_ROWS : row_end;
        nb_deinterleave(fmt, rows, k, il, r, end - r, blocks);
        if (nb_formats[fmt].info.activation == NB_ACT_Q8K) {  // the K-quants' own scalar kernel
            nb_formats[fmt].matmul[0](blocks, end - r, k, NULL, xq, y + r, n_tokens, ld_y, 0, end - r);
        } else {
            const qmat m = qmat_of(fmt, blocks, end - r, k);
            nb_matmul_q_scalar(&m, xq, y + r, n_tokens, ld_y, 0, end - r);
        }
        r = end;
    }
    free(blocks);
}

void nb_matmul_interleaved(nb_format fmt, const void *il, int64_t rows, int64_t k, const void *xq, float *y,
                           int64_t n_tokens, int64_t ld_y, int64_t row_begin, int64_t row_end) {
    nb_il_geometry g;
    if (n_tokens <= 0 || row_begin >= row_end || !nb_il_geometry_of(fmt, k, &g)) return;
#if defined(__x86_64__)
    switch (nb_kernel_level()) {
    case 1: nb_matmul_il_avx2(fmt, il, rows, k, xq, y, n_tokens, ld_y, row_begin, row_end); return;
    case 2: nb_matmul_il_avxvnni(fmt, il, rows, k, xq, y, n_tokens, ld_y, row_begin, row_end); return;
    case 3: nb_matmul_il_avx512(fmt, il, rows, k, xq, y, n_tokens, ld_y, row_begin, row_end); return;
    default: break;
    }
#endif
    matmul_il_scalar(fmt, il, rows, k, xq, y, n_tokens, ld_y, row_begin, row_end);
}
