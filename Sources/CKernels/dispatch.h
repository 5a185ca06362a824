// Internal: target attributes for per-function ISA selection.
#pragma once
#include "CKernels.h"

#if defined(__x86_64__)
#define NB_AVX2 __attribute__((target("avx2,fma,f16c")))
#define NB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define NB_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#else
#define NB_AVX2
#define NB_AVX512
#define NB_AVX512VNNI
#endif

#include <math.h>

/// One step of attention's online softmax: folds score `s` into the running maximum
/// `*m` and sum `*l`, rescaling the accumulated output `out` (n values) when the maximum
/// grows, and returns the weight of the new value (e^(s − m)).
static inline float nb_online_softmax_step(float s, float *m, float *l, float *out, int64_t n) {
    if (s > *m) {
        float c = expf(*m - s);  // 0 on the first step (m = -inf)
        for (int64_t d = 0; d < n; d++) out[d] *= c;
        *l *= c;
        *m = s;
    }
    float w = expf(s - *m);
    *l += w;
    return w;
}
