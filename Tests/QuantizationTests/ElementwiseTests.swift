import CKernels
import Foundation
import Testing

extension KernelPaths {
    /// RMSNorm, the residual add and RoPE in C (the steps between decode's products): at every
    /// ISA level they give what the Swift they replaced computed, bit for bit (the same
    /// operations in the same order, written out here); the add and RoPE give the same floats
    /// at every level, RMSNorm the level's own (its sum of squares is nb_dot_f32's).
    @Suite struct ElementwiseTests {
        @Test(arguments: [1, 7, 64, 576, 1001])
        func rmsNormAndAddAgreeAtEveryLevel(width: Int) {
            var rng = TestRNG(seed: UInt64(width) * 17)
            let rows = 3, eps: Float = 1e-5
            let x = (0..<(rows * width)).map { _ in rng.gaussian() * 3 }
            let weight = (0..<width).map { _ in rng.gaussian() }
            let a = (0..<(rows * width)).map { _ in rng.gaussian() }
            // Layers.swift's RMSNorm before it moved to C, at `isa` (nb_dot_f32 sums in the
            // level's order, so the norm is per level what it was, not the same at every level).
            func reference(_ isa: nb_isa) -> [Float] {
                var want = [Float](repeating: 0, count: rows * width)
                x.withUnsafeBufferPointer { xs in
                    for r in 0..<rows {
                        let xr = xs.baseAddress! + r * width
                        let meanSquare = withISA(isa) { nb_dot_f32(xr, xr, Int64(width)) } / Float(width)
                        let inv = 1 / (meanSquare + eps).squareRoot()
                        for i in 0..<width { want[r * width + i] = weight[i] * (xr[i] * inv) }
                    }
                }
                return want
            }
            let wantSum = zip(x, a).map { $0 + $1 }
            for isa in [NB_ISA_SCALAR] + simdLevels {
                let want = reference(isa)
                var out = [Float](repeating: .nan, count: rows * width)
                withISA(isa) { nb_rms_norm(x, weight, Int64(width), Int64(rows), eps, &out) }
                #expect(out.map(\.bitPattern) == want.map(\.bitPattern), "\(isaName(isa)) width \(width)")
                var inPlace = x  // x and out the same buffer (Qwen 3's and Gemma 3's Q/K norms)
                withISA(isa) { inPlace.withUnsafeMutableBufferPointer { nb_rms_norm($0.baseAddress!, weight, Int64(width), Int64(rows), eps, $0.baseAddress!) } }
                #expect(inPlace.map(\.bitPattern) == want.map(\.bitPattern), "\(isaName(isa)) width \(width), in place")
                var sum = x
                withISA(isa) { nb_add_f32(a, &sum, Int64(sum.count)) }
                #expect(sum.map(\.bitPattern) == wantSum.map(\.bitPattern), "\(isaName(isa)) width \(width)")
            }
        }

        /// Both layouts, whole and partial rotation (the first `pairs` pairs of a head), several
        /// tokens with a row stride past the heads.
        @Test(arguments: [(64, 32), (64, 16), (128, 64), (80, 40), (24, 12), (10, 3)])
        func ropeAgreesAtEveryLevel(headDim: Int, pairs: Int) {
            var rng = TestRNG(seed: UInt64(headDim * 131 + pairs))
            let heads = 3, count = 4, stride = heads * headDim + 5
            let v = (0..<(count * stride)).map { _ in rng.gaussian() }
            let table = (0..<(count * 2 * pairs)).map { _ in rng.gaussian() }
            for halves in [false, true] {
                var want = v
                for t in 0..<count {
                    let c = t * 2 * pairs, s = c + pairs
                    for h in 0..<heads {
                        let head = t * stride + h * headDim
                        for i in 0..<pairs {
                            let (ia, ib) = halves ? (head + i, head + i + pairs) : (head + 2 * i, head + 2 * i + 1)
                            let x0 = v[ia], x1 = v[ib]
                            want[ia] = x0 * table[c + i] - x1 * table[s + i]
                            want[ib] = x0 * table[s + i] + x1 * table[c + i]
                        }
                    }
                }
                #expect(want != v)
                for isa in [NB_ISA_SCALAR] + simdLevels {
                    var out = v
                    withISA(isa) {
                        nb_rope(&out, Int64(heads), Int64(headDim), Int64(stride), Int64(count), table, Int64(pairs), halves ? 1 : 0)
                    }
                    #expect(out.map(\.bitPattern) == want.map(\.bitPattern), "\(isaName(isa)) \(headDim)/\(pairs) halves \(halves)")
                }
            }
        }

        /// Decode's activation quantisation (q8, blocks of 32: eight at a time at AVX2, the rest one
        /// by one) gives the scalar path's bytes at every level: all-zero blocks (d = 0), halves
        /// that round away from zero, tiny and huge magnitudes, at block counts around 8.
        @Test(arguments: [32, 256, 288, 576, 1536])
        func activationQuantisationAgreesAtEveryLevel(k: Int) {
            var rng = TestRNG(seed: UInt64(k))
            var x = (0..<(2 * k)).map { _ in rng.gaussian() * 2 }
            for i in 0..<min(32, x.count) { x[i] = 0 }                      // a zero block
            if k >= 96 {  // absmax 127: d = 1, so x·(1/d) = ±n.5 rounds away from zero
                for i in 64..<96 { x[i] = Float(i - 80) + 0.5 }
                x[64] = 127
            }
            if k >= 128 { for i in 96..<128 { x[i] = Float(i % 3 - 1) * 1e-30 } }
            if k >= 160 { for i in 128..<160 { x[i] = Float(i % 5 - 2) * 1e30 } }
            let scalar = withISA(NB_ISA_SCALAR) { quantizeActivations(x, tokens: 2, k: k) }
            for isa in simdLevels {
                let q = withISA(isa) { quantizeActivations(x, tokens: 2, k: k) }
                #expect(q.map(\.d.bitPattern) == scalar.map(\.d.bitPattern) && q.map(\.s.bitPattern) == scalar.map(\.s.bitPattern)
                        && q.map(qsArray) == scalar.map(qsArray), "\(isaName(isa)) k \(k)")
            }
        }
    }
}
