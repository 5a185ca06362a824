import CKernels
import Testing

/// The kernels' SIMD paths against their scalar references, and against double-precision
/// dot products. (nb_force_isa sets the level of the calling thread only.)
extension KernelPaths {
    @Suite struct MatmulKernelTests {

        /// Weights with varied row scales and a few outliers; activations normal with outliers.
        static func problem(rows: Int, k: Int, tokens: Int, seed: UInt64) -> (w: [Float], x: [Float]) {
            var w = gaussianMatrix(rows: rows, k: k, seed: seed) { 0.02 * Float(1 + $0 % 5) }
            w[k / 3] *= 20
            var x = gaussianMatrix(rows: tokens, k: k, seed: seed &+ 1)
            for t in 0..<tokens { x[t * k + (7 * t) % k] = 9 }
            return (w, x)
        }

        /// Scalar and SIMD results: bit for bit for the block formats (their summation order is
        /// fixed), within rounding for f32/f16/bf16. Odd row ranges, several token counts, a
        /// leading dimension wider than the row count; rows outside the range stay untouched.
        /// 64 and 71 tokens take AVX2's 16-row float panels (from 64 tokens; 71 leaves a 5-token
        /// tail), with the rows under 16 left to the 4-row tiles.
        @Test(arguments: [64, 576, 1536])
        func simdEqualsScalar(k: Int) {
            for level in simdLevels { simdEqualsScalar(k: k, level: level) }
            withoutBFloat16DotProducts { simdEqualsScalar(k: k, level: NB_ISA_AVX512) }
        }

        func simdEqualsScalar(k: Int, level: nb_isa) {
            let rows = 40, ldY = 43
            for tokens in [1, 2, 3, 5, 13, 64, 71] {
                let (w, x) = Self.problem(rows: rows, k: k, tokens: tokens, seed: UInt64(k * 100 + tokens))
                let xqScalar = withISA(NB_ISA_SCALAR) { quantizeActivations(x, tokens: tokens, k: k) }
                let xq = withISA(level) { quantizeActivations(x, tokens: tokens, k: k) }
                #expect(xq.map(\.d) == xqScalar.map(\.d) && xq.map(\.s) == xqScalar.map(\.s)
                        && xq.map(qsArray) == xqScalar.map(qsArray), "activation quantisation, k \(k) tokens \(tokens), \(isaName(level))")
                for f in allFormats {
                    let packed = pack(f, w, rows: rows, k: k)
                    for range in [0..<rows, 3..<37, 5..<6, 16..<32, 17..<40] {
                        let ys = withISA(NB_ISA_SCALAR) {
                            matmul(f, packed, rows: rows, k: k, x: x, xq: xq, tokens: tokens, ldY: ldY, rowRange: range)
                        }
                        let yv = withISA(level) {
                            matmul(f, packed, rows: rows, k: k, x: x, xq: xq, tokens: tokens, ldY: ldY, rowRange: range)
                        }
                        let label = "\(formatName(f)) k \(k) tokens \(tokens) rows \(range), \(isaName(level))"
                        var untouched = true, worst = 0.0
                        for t in 0..<tokens {
                            for r in 0..<ldY {
                                let i = t * ldY + r
                                if !range.contains(r) { untouched = untouched && ys[i] == matmulSentinel && yv[i] == matmulSentinel; continue }
                                if quantizedFormats.contains(f) {
                                    if ys[i].bitPattern != yv[i].bitPattern { worst = .infinity }
                                } else {
                                    // relative to Σ|w·x| (the result itself may cancel)
                                    var norm = 0.0
                                    for c in 0..<k { norm += abs(Double(w[r * k + c]) * Double(x[t * k + c])) }
                                    worst = max(worst, abs(Double(ys[i]) - Double(yv[i])) / norm)
                                }
                            }
                        }
                        #expect(untouched, "\(label): rows outside the range were written")
                        #expect(worst <= 1e-6, "\(label): scalar vs SIMD \(worst)")
                    }
                }
            }
        }

        /// f16 and bf16 rows of any length (the SIMD kernels take 8, 16 or 32 columns a step
        /// and finish the rest one by one; AVX-512 bf16 decode without vdpbf16ps splits the
        /// activations into even and odd positions; vdpbf16ps takes k in 32s, and bf16 rounds
        /// the activations in chunks of at most 96 tokens): each level equals the scalar path to
        /// rounding.
        @Test(arguments: [8, 40, 64, 100, 1000, 1056])
        func halfRowsOfAnyLength(k: Int) {
            let rows = 9, ldY = 9
            for tokens in [1, 3, 7, 50, 100] {
                let (w, x) = Self.problem(rows: rows, k: k, tokens: tokens, seed: UInt64(7 * k + tokens))
                for f in [NB_FMT_F16, NB_FMT_BF16] {
                    let packed = pack(f, w, rows: rows, k: k)
                    let ys = withISA(NB_ISA_SCALAR) { matmul(f, packed, rows: rows, k: k, x: x, xq: [], tokens: tokens, ldY: ldY, rowRange: 0..<rows) }
                    // The scalar path itself against double precision with the activations it
                    // should see (bf16: rounded), which the chunking glue shared by every path
                    // cannot fake.
                    let seen = f == NB_FMT_BF16 ? x.map(roundedToBFloat16) : x
                    #expect(worstError(ys, unpack(f, packed, rows: rows, k: k), seen, rows: rows, k: k, tokens: tokens) <= 1e-6,
                            "\(formatName(f)) k \(k) tokens \(tokens): scalar vs double precision")
                    for (level, dot) in simdLevels.map({ ($0, true) }) + [(NB_ISA_AVX512, false)] where simdLevels.contains(level) {
                        let yv = withBFloat16DotProducts(dot) {
                            withISA(level) { matmul(f, packed, rows: rows, k: k, x: x, xq: [], tokens: tokens, ldY: ldY, rowRange: 0..<rows) }
                        }
                        for i in ys.indices {
                            let r = i % ldY, t = i / ldY
                            var norm = 0.0
                            for c in 0..<k { norm += abs(Double(w[r * k + c]) * Double(x[t * k + c])) }
                            #expect(abs(Double(ys[i]) - Double(yv[i])) <= 1e-6 * norm,
                                    "\(formatName(f)) k \(k) tokens \(tokens) row \(r), \(isaName(level)): \(ys[i]) vs \(yv[i])")
                        }
                    }
                }
            }
        }

        /// Against double-precision dot products of the unpacked rows: (a) with the activations
        /// as the kernel sees them (dequantised q8a for the block formats; for nf4 also with the
        /// int16 codebook, round(4096·v)/4096, the kernels use), which leaves only f32 rounding;
        /// and (b) with the f32 activations, which adds the int8 activation rounding.
        /// Errors are relative to Σ|w·x|. Measured (k 1536, 64 tokens): (a) ≤ 1e-7, q4/q2 ≤ 3.2e-7
        /// (nf4 against its exact codebook 2.0e-5; it was 1.0e-3 with an int8 codebook); (b)
        /// ≈ 7.6e-4 for the block formats, 4e-8 for f32/f16; bf16 rounds the activations to bf16
        /// (as llama.cpp and transformers' bf16 do), which is its (b).
        @Test(arguments: allLevels.map(\.rawValue))
        func matchesDoublePrecision(level: UInt32) {
            let rows = 24, k = 1536, tokens = 64
            let (w, x) = Self.problem(rows: rows, k: k, tokens: tokens, seed: 77)
            withISA(nb_isa(level)) {
                let xq = quantizeActivations(x, tokens: tokens, k: k)
                let xd = dequantizedActivation(xq, tokens: tokens, k: k)
                for f in allFormats {
                    let packed = pack(f, w, rows: rows, k: k)
                    var rowsF = unpack(f, packed, rows: rows, k: k)
                    let y = matmul(f, packed, rows: rows, k: k, x: x, xq: xq, tokens: tokens, ldY: rows, rowRange: 0..<rows)
                    let blockFormat = quantizedFormats.contains(f)
                    var trueCodebook = 0.0
                    if f == NB_FMT_NF4 {
                        // Effective weights: each code value v as round(4096·v)/4096 (x/absmax is
                        // within 1e-7 of v, far from the rounding ties), times the block's absmax.
                        let exact = rowsF, absmax = nf4BlockAbsmax(packed, rows: rows, k: k)
                        for i in 0..<rows * k where absmax[i / 64] > 0 {
                            let a = Double(absmax[i / 64])
                            rowsF[i] = Float((4096 * Double(exact[i]) / a).rounded() / 4096 * a)
                        }
                        trueCodebook = worstError(y, exact, xd, rows: rows, k: k, tokens: tokens)
                    }
                    // bf16 multiplies the activations rounded to bf16 (to nearest even).
                    let seen = blockFormat ? xd : f == NB_FMT_BF16 ? x.map(roundedToBFloat16) : x
                    let tight = worstError(y, rowsF, seen, rows: rows, k: k, tokens: tokens)
                    let loose = worstError(y, rowsF, x, rows: rows, k: k, tokens: tokens)
                    // q4/q2: d·Σqx and m·Σx partly cancel, and s = d·Σq is rounded: a looser bound.
                    let tightBound = f == NB_FMT_Q4 || f == NB_FMT_Q2 ? 1e-6 : 3e-7
                    #expect(tight <= tightBound, "\(formatName(f)): vs the inputs the kernel sees \(tight)")
                    // bf16's rounding of x is ≤ 2⁻⁹ relative per element, random in sign.
                    let looseBound = blockFormat ? 2e-3 : f == NB_FMT_BF16 ? 2e-3 : 3e-7
                    #expect(loose <= looseBound, "\(formatName(f)): vs f32 activations \(loose)")
                    if f == NB_FMT_BF16 { #expect(loose > 1e-5, "bf16: the activations were not rounded (\(loose))") }
                    if f == NB_FMT_NF4 { #expect(trueCodebook <= 1e-4, "nf4 vs its exact codebook \(trueCodebook)") }
                }
            }
        }

        func worstError(_ y: [Float], _ w: [Float], _ x: [Float], rows: Int, k: Int, tokens: Int) -> Double {
            var worst = 0.0
            for t in 0..<tokens {
                for r in 0..<rows {
                    var dot = 0.0, norm = 0.0
                    for c in 0..<k {
                        let p = Double(w[r * k + c]) * Double(x[t * k + c])
                        dot += p
                        norm += abs(p)
                    }
                    worst = max(worst, abs(Double(y[t * rows + r]) - dot) / norm)
                }
            }
            return worst
        }

        /// q8 blocks from other quantisers may hold -128 (ggml's own never do): the sign trick
        /// must still give the right products, on every path.
        @Test func q8WithMinus128() {
            let rows = 9, k = 64, tokens = 3
            let (w, x) = Self.problem(rows: rows, k: k, tokens: tokens, seed: 5)
            var packed = pack(NB_FMT_Q8, w, rows: rows, k: k)
            for block in 0..<rows * 2 {
                for j in stride(from: block % 5, to: 32, by: 3) { packed[block * 34 + 2 + j] = 0x80 }
            }
            let unpacked = unpack(NB_FMT_Q8, packed, rows: rows, k: k)
            let xq = quantizeActivations(x, tokens: tokens, k: k)
            let xd = dequantizedActivation(xq, tokens: tokens, k: k)
            let ys = withISA(NB_ISA_SCALAR) { matmul(NB_FMT_Q8, packed, rows: rows, k: k, x: x, xq: xq, tokens: tokens, ldY: rows, rowRange: 0..<rows) }
            for level in simdLevels {
                for n in [1, tokens] {
                    let yv = withISA(level) { matmul(NB_FMT_Q8, packed, rows: rows, k: k, x: x, xq: xq, tokens: n, ldY: rows, rowRange: 0..<rows) }
                    let expected = n == 1 ? Array(ys[0..<rows]) : ys
                    #expect(yv.map(\.bitPattern) == expected.map(\.bitPattern), "\(n) tokens, \(isaName(level))")
                }
            }
            #expect(worstError(ys, unpacked, xd, rows: rows, k: k, tokens: tokens) <= 3e-7)
        }

        /// d = absmax/127, q = round half away from zero of x/d, s = d·Σq; zero blocks stay zero.
        @Test(arguments: allLevels.map(\.rawValue))
        func activationQuantisation(level: UInt32) {
            let k = 128
            var x = [Float](repeating: 0, count: k)  // block 0: zeros
            // block 1: amax 127 → d = 1; halves round away from zero
            x[32] = 127
            for j in 1..<32 { x[32 + j] = Float(j - 16) + 0.5 }
            // blocks 2, 3: random
            var rng = TestRNG(seed: 1)
            for i in 64..<128 { x[i] = rng.gaussian() * 3 }
            let xq = withISA(nb_isa(level)) { quantizeActivations(x, tokens: 1, k: k) }
            #expect(xq[0].d == 0 && xq[0].s == 0 && qsArray(xq[0]).allSatisfy { $0 == 0 })
            #expect(xq[1].d == 1)
            #expect(qsArray(xq[1]) == [127] + (1..<32).map { Int8((Float($0 - 16) + 0.5).rounded(.toNearestOrAwayFromZero)) })
            for b in 1..<4 {
                let block = Array(x[b * 32..<(b + 1) * 32])
                let amax = block.map { abs($0) }.max()!
                let d = amax / 127, id = 1 / d
                #expect(xq[b].d == d)
                #expect(qsArray(xq[b]) == block.map { Int8(($0 * id).rounded()) })
                #expect(xq[b].s == d * Float(qsArray(xq[b]).reduce(0) { $0 + Int($1) }))
            }
        }
    }
}
