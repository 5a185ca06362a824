// The SIMD body of attention.c, written once for any vector width: attention.c includes it
// once per instruction set with V (the float vector), VW (its lanes), VATTR (the target
// attribute), VNAME(x) (x with the set's suffix), V_ZERO(), V_LOAD, V_STORE, V_FMADD, V_MUL,
// V_SET1, V_LOADKV(base, fmt, o, d, hd) (elements d...d+VW−1 of the cache row at o, as
// floats), V_LOADKT(p, fmt) (VW elements of a key tile's row at p, as floats),
// NB_ATT_ACC(fmt) (the value accumulators a loop over a cache of format fmt may keep in
// registers) and NB_ATT_REGS (the vector registers) defined.
// No include guard: it is meant to be included repeatedly.
//
// G query heads share one KV head (grouped-query attention): each key and value vector is
// loaded and widened once and used for all G heads. The functions are always inlined into a
// switch over G = 1...NB_ATT_MAXG, so that every loop over the heads has a constant bound
// and its accumulators live in registers.

// NB_ATT_MAXT units of VW slots a step at most (AVX-512, G = 1...3: a chunk of 128 positions).
#define NB_ATT_MAXT 8
// A head's row of scores in tscores_run's t: a chunk and the units a run may reach past it.
#define NB_ATT_TSTRIDE (NB_ATT_CHUNK + (NB_ATT_MAXT + 1) * VW)

// One step of tscores_run: the T units from u on (u + T ≤ u1), G·T accumulators.
VATTR static inline __attribute__((always_inline)) void VNAME(tscores_step)(const float *q, const int G, const int T, const int fmt,
                                                                            kv_rows kv, int64_t u, int64_t u0, int64_t hd, V vscale,
                                                                            float *t) {
    const int shift = fmt == NB_KV_F32 ? 2 : 1;
    const int64_t row = (int64_t)NB_KV_TILE << shift;
    // The lines kv.ahead_positions ahead, spread over the step's FMAs: PFL lines a head
    // dimension, the T units' bytes of it rounded up to whole lines (so at least one: with
    // fewer bytes than a line, as AVX2's 3 units of 8 f16 keys, the lines run ahead of the
    // units' and the next step fetches them again). A tile's 32 or 64 lines fetched at once
    // when its first unit came made attention from memory 10 % slower than with rows.
    const int PFL = (((T * VW) << shift) + 63) / 64;
    const char *p[NB_ATT_MAXT];
    for (int i = 0; i < T; i++) p[i] = (const char *)kv.keys + (kt_unit(kv, (u + i) * VW, hd) << shift);
    const char *pf = (const char *)kv.keys + (kv_unit(kv, u * VW + kv.ahead_positions, hd) << shift);
    V acc[NB_ATT_MAXG][NB_ATT_MAXT];
    for (int g = 0; g < G; g++)
        for (int i = 0; i < T; i++) acc[g][i] = V_ZERO();
    for (int64_t d = 0, o = 0; d < hd; d++, o += row) {
        if (kv.ahead_positions)
            for (int l = 0; l < PFL; l++) NB_ATT_PREFETCH(kv, pf + (d * PFL + l) * 64);
        V qd[NB_ATT_MAXG];
        for (int g = 0; g < G; g++) qd[g] = V_SET1(q[g * hd + d]);
        for (int i = 0; i < T; i++) {
            const V k = V_LOADKT(p[i] + o, fmt);
            for (int g = 0; g < G; g++) acc[g][i] = V_FMADD(qd[g], k, acc[g][i]);
        }
    }
    for (int g = 0; g < G; g++)
        for (int i = 0; i < T; i++) V_STORE(t + g * NB_ATT_TSTRIDE + (u - u0 + i) * VW, V_MUL(acc[g][i], vscale));
}

// s[g·NB_ATT_CHUNK + (slot − a)] = scale · q_g·k_slot for the slots a...a+len−1 of tiled keys
// (NB_KV_TILE), len ≤ NB_ATT_CHUNK. A unit is VW slots of a tile: element d of their keys is
// one vector, VW consecutive elements of the tile's row d. T units a step for all G heads
// (G·T accumulators, as many as the registers hold besides the G broadcast query elements and
// the converted key), each accumulator a chain of FMAs over d in order (tscores_scalar's
// arithmetic lane by lane): no reductions, which took a third of the scores' time with
// row-laid keys. The units the run touches are scored whole, into t, and its slots copied out.
// A run's last units, fewer than T, go in one step of as many. They went in a step of T,
// the units past the run repeating its last: at AVX-512 with 3 heads, 8 units' FMAs for as few
// as 1, and a chunk from a slot inside a tile (a split's second part) spans 9 units, so its
// scores took 16 units' work for 8. Decode's attention, SmolLM2, 2 threads (attention_bench,
// alternating builds): in cache 21.5–24.4 → 17.3–20.4 µs a layer at 1,000 positions, 3.5–5.5
// → 2.6–4.4 at 96. (Steps of 2 and 1 instead read a part's cold tiles two at a time: from
// memory 10 % slower at 200 positions; a step of 4 and one of the 1–3 left: 10 % slower
// there too.)
VATTR static inline __attribute__((always_inline)) void VNAME(tscores_run)(const float *q, const int G, const int fmt, kv_rows kv,
                                                                           int64_t a, int64_t len, int64_t hd, float scale, float *s) {
    const int free = NB_ATT_REGS - G - (fmt == NB_KV_F32 ? 1 : 2);
    const int T = free / G < 1 ? 1 : free / G > NB_ATT_MAXT ? NB_ATT_MAXT : free / G;
    const int64_t u0 = a / VW, u1 = (a + len + VW - 1) / VW;
    const V vscale = V_SET1(scale);
    float t[NB_ATT_MAXG * NB_ATT_TSTRIDE];
    int64_t u = u0;
    for (; u + T <= u1; u += T) VNAME(tscores_step)(q, G, T, fmt, kv, u, u0, hd, vscale, t);
    switch (u1 - u) {
#define NB_ATT_TAIL(N) \
    case N: \
        if (N < T) VNAME(tscores_step)(q, G, N < T ? N : 1, fmt, kv, u, u0, hd, vscale, t); \
        break;
    NB_ATT_TAIL(1) NB_ATT_TAIL(2) NB_ATT_TAIL(3) NB_ATT_TAIL(4) NB_ATT_TAIL(5) NB_ATT_TAIL(6) NB_ATT_TAIL(7)
#undef NB_ATT_TAIL
    default: break;
    }
    for (int g = 0; g < G; g++) memcpy(s + g * NB_ATT_CHUNK, t + g * NB_ATT_TSTRIDE + (a - u0 * VW), (size_t)len * sizeof(float));
}

// The chunk's c positions: j < run at slots slot0 + j, the rest at slots j − run (the ring's wrap).
VATTR static inline __attribute__((always_inline)) void VNAME(tscores_g)(const float *q, const int G, const int fmt, kv_rows kv, int64_t slot0,
                                                                         int64_t run, int64_t c, int64_t hd, float scale, float *s) {
    VNAME(tscores_run)(q, G, fmt, kv, slot0, run, hd, scale, s);
    if (run < c) VNAME(tscores_run)(q, G, fmt, kv, 0, c - run, hd, scale, s + run);
}

// out[g·hd + d] += Σ_j w[g·NB_ATT_CHUNK + j] · value_j[d] for the D vectors of head dimensions
// from d on, all G heads (G·D accumulators, G·D FMA chains side by side).
VATTR static inline __attribute__((always_inline)) void VNAME(values_pass)(const float *w, const int G, const int D, const int fmt,
                                                                           kv_rows kv, const int64_t *off, int64_t c, int64_t d,
                                                                           int64_t hd, float *out) {
    V o[NB_ATT_MAXG][4];
    for (int g = 0; g < G; g++)
        for (int e = 0; e < D; e++) o[g][e] = V_LOAD(out + g * hd + d + e * VW);
    for (int64_t j = 0; j < c; j++) {
        if (kv.ahead_positions && d == 0)  // off[NB_ATT_CHUNK + j]: the position ahead's row
            for (int64_t b = 0; b < kv.row_bytes; b += 64)
                NB_ATT_PREFETCH(kv, (const char *)kv.values + (off[NB_ATT_CHUNK + j] << kv.shift) + b);
        V wj[NB_ATT_MAXG];
        for (int g = 0; g < G; g++) wj[g] = V_SET1(w[g * NB_ATT_CHUNK + j]);
        for (int e = 0; e < D; e++) {
            const V v = V_LOADKV(kv.values, fmt, off[j], d + e * VW, hd);
            for (int g = 0; g < G; g++) o[g][e] = V_FMADD(wj[g], v, o[g][e]);
        }
    }
    for (int g = 0; g < G; g++)
        for (int e = 0; e < D; e++) V_STORE(out + g * hd + d + e * VW, o[g][e]);
}

// The passes over the head dimensions: as many vectors a pass as the accumulators allow (≤ 24
// with AVX-512's 32 registers, ≤ 12 with AVX2's 16), then what is left in passes of 2 and 1.
// Each chain adds one FMA per position, so a pass runs at an FMA's latency per position
// unless it has twice as many chains as the FMA's latency in cycles: with AVX2 at G = 3
// (SmolLM2) passes of 2 vectors (6 chains) took 4.1 cycles per position on Zen 3 (6 FMAs);
// passes of 3 (9 chains) take 4.9 for 9, and 64 head dimensions take passes of 3, 3, 2
// instead of four of 2 (one thread, the loop alone, in L1).
VATTR static inline __attribute__((always_inline)) void VNAME(values_g)(const float *w, const int G, const int fmt, kv_rows kv, const int64_t *off,
                                                                        int64_t c, int64_t hd, float *out) {
    // (3 only where the G broadcast weights and two temporaries fit beside the accumulators)
    const int acc = NB_ATT_ACC(fmt), D = G * 4 <= acc ? 4 : G * 3 <= acc && G * 4 + 2 <= NB_ATT_REGS ? 3 : G * 2 <= acc ? 2 : 1;
    int64_t d = 0;
    for (; d + D * VW <= hd; d += D * VW) VNAME(values_pass)(w, G, D, fmt, kv, off, c, d, hd, out);
    if (D > 2 && d + 2 * VW <= hd) {
        VNAME(values_pass)(w, G, 2, fmt, kv, off, c, d, hd, out);
        d += 2 * VW;
    }
    for (; d < hd; d += VW) VNAME(values_pass)(w, G, 1, fmt, kv, off, c, d, hd, out);
}

#define NB_ATT_CASES(CALL) \
    CALL(2) CALL(3) CALL(4) CALL(5) CALL(6) CALL(7) CALL(8)

// hd a multiple of VW (q8: of 32), 1 ≤ G ≤ NB_ATT_MAXG. One instance per cache format, so
// the loads' format is a constant in every loop.
VATTR static inline __attribute__((always_inline)) void VNAME(tscores_f)(const float *q, int G, const int fmt, kv_rows kv, int64_t slot0,
                                                                         int64_t run, int64_t c, int64_t hd, float scale, float *s) {
    switch (G) {
    case 1: VNAME(tscores_g)(q, 1, fmt, kv, slot0, run, c, hd, scale, s); break;
#define NB_ATT_SCORES(N) case N: VNAME(tscores_g)(q, N, fmt, kv, slot0, run, c, hd, scale, s); break;
    NB_ATT_CASES(NB_ATT_SCORES)
#undef NB_ATT_SCORES
    default: break;
    }
}

VATTR static inline __attribute__((always_inline)) void VNAME(values_f)(const float *w, int G, const int fmt, kv_rows kv, const int64_t *off,
                                                                        int64_t c, int64_t hd, float *out) {
    switch (G) {
    case 1: VNAME(values_g)(w, 1, fmt, kv, off, c, hd, out); break;
#define NB_ATT_VALUES(N) case N: VNAME(values_g)(w, N, fmt, kv, off, c, hd, out); break;
    NB_ATT_CASES(NB_ATT_VALUES)
#undef NB_ATT_VALUES
    default: break;
    }
}

#undef NB_ATT_CASES
#undef NB_ATT_MAXT
#undef NB_ATT_TSTRIDE

VATTR static void VNAME(tscores)(const float *q, int G, kv_rows kv, int64_t slot0, int64_t run, int64_t c, int64_t hd, float scale,
                                 float *s) {
    if (kv.fmt == NB_KV_F32) VNAME(tscores_f)(q, G, NB_KV_F32, kv, slot0, run, c, hd, scale, s);
    else VNAME(tscores_f)(q, G, NB_KV_F16, kv, slot0, run, c, hd, scale, s);
}

VATTR static void VNAME(values)(const float *w, int G, kv_rows kv, const int64_t *off, int64_t c, int64_t hd, float *out) {
    switch (kv.fmt) {
    case NB_KV_F32: VNAME(values_f)(w, G, NB_KV_F32, kv, off, c, hd, out); break;
    case NB_KV_F16: VNAME(values_f)(w, G, NB_KV_F16, kv, off, c, hd, out); break;
    default: VNAME(values_f)(w, G, NB_KV_Q8, kv, off, c, hd, out); break;
    }
}
