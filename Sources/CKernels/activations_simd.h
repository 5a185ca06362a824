// The SIMD body of activations.c, written once for any vector width: activations.c
// includes it once per instruction set with V (the float vector), VI (the int vector),
// VW (its lanes), VATTR (the target attribute), VNAME(x) (x with the set's suffix) and
// the V_* operations defined. No include guard: it is meant to be included repeatedly.

VATTR static inline V VNAME(exp)(V z) {
    z = V_MIN(V_MAX(z, V_SET1(EXP_LO)), V_SET1(EXP_HI));
    V n = V_ROUND(V_MUL(z, V_SET1(LOG2E)));
    V r = V_FMADD(n, V_SET1(-LN2_HI), z);
    r = V_FMADD(n, V_SET1(-LN2_LO), r);
    V p = V_FMADD(V_SET1(P0), r, V_SET1(P1));
    p = V_FMADD(p, r, V_SET1(P2));
    p = V_FMADD(p, r, V_SET1(P3));
    p = V_FMADD(p, r, V_SET1(P4));
    p = V_FMADD(p, r, V_SET1(P5));
    V r2 = V_MUL(r, r);
    p = V_FMADD(p, r2, r);
    p = V_ADD(p, V_SET1(1.0f));
    VI bits = VI_SLLI(VI_ADD(V_TO_INT(n), VI_SET1(127)), 23);
    return V_MUL(p, VI_AS_FLOAT(bits));
}

VATTR static float VNAME(exp_sum)(float *x, int64_t n, float sub) {
    const V vs = V_SET1(sub);
    V acc = V_ZERO();
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        const V e = VNAME(exp)(V_SUB(V_LOAD(x + i), vs));
        V_STORE(x + i, e);
        acc = V_ADD(acc, e);
    }
    // The lanes' sum by a tree: a chain of VW dependent adds was 2–4 % of attention (one thread
    // in cache), which calls this once per chunk of 128 positions and head.
    float sum = i > 0 ? V_HSUM(acc) : 0;
    for (; i < n; i++) sum += x[i] = exp_scalar(x[i] - sub);
    return sum;
}

VATTR static void VNAME(gate)(int gelu, float *gate, const float *up, int64_t n) {
    const V one = V_SET1(1.0f);
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        V g = V_LOAD(gate + i), z;
        if (gelu) {
            V g3 = V_MUL(V_MUL(g, g), g);
            V u = V_MUL(V_SET1(GELU_C), V_FMADD(V_SET1(GELU_A), g3, g));
            z = V_MUL(V_SET1(-2.0f), u);
        } else {
            z = V_SUB(V_ZERO(), g);
        }
        V a = V_DIV(g, V_ADD(one, VNAME(exp)(z)));
        if (up) a = V_MUL(a, V_LOAD(up + i));
        V_STORE(gate + i, a);
    }
    gate_scalar(gelu, gate + i, up ? up + i : NULL, n - i);
}
