import CKernels
import Foundation
import Testing

// What the SIMD kernels' tiling could get wrong and the other kernel tests do not reach:
// many row tiles with a short last one, token counts around the decode/prefill split and
// past one 64-token group, and blocks at the extremes of their integer ranges (where an
// int16 partial sum would saturate if a path summed too much in int16).

/// Every block format: the packable ones and GGML's.
private let blockFormats: [nb_format] = quantizedFormats + nativeFormats

/// Weights of `fmt`: packed from Gaussian values, or random GGML blocks.
private func someWeights(_ fmt: nb_format, rows: Int, k: Int, seed: UInt64) -> [UInt8] {
    if nativeFormats.contains(fmt) { return randomBlocks(fmt, rows: rows, k: k, seed: seed) }
    return pack(fmt, gaussianMatrix(rows: rows, k: k, seed: seed) { 0.02 * Float(1 + $0 % 3) }, rows: rows, k: k)
}

/// Blocks whose code bits are all `fill` (0xFF: every code at the top of its range, 0: at the
/// bottom, the most negative weight of q4_0, q5_0 and q6_K; q8: 127, −128 and −127 in turn),
/// with finite scales (q6_K's 127 and −128 in turn).
private func extremeWeights(_ fmt: nb_format, rows: Int, k: Int, fill: UInt8) -> [UInt8] {
    let info = nb_format_get(fmt)!.pointee
    var bytes = [UInt8](repeating: fill, count: nb_format_bytes(fmt, Int64(rows), Int64(k)))
    func half(_ value: Float, at offset: Int) {
        let h = Float16(value).bitPattern
        bytes[offset] = UInt8(h & 0xFF)
        bytes[offset + 1] = UInt8(h >> 8)
    }
    if fmt == NB_FMT_NF4 {  // codes 15 (value 1.0); the side arrays as packed
        var packed = pack(fmt, gaussianMatrix(rows: rows, k: k, seed: 5), rows: rows, k: k)
        for i in 0..<rows * k / 2 { packed[i] = fill }
        return packed
    }
    for b in 0..<rows * k / Int(info.block) {
        let o = b * Int(info.block_bytes)
        switch fmt {
        case NB_FMT_Q8:
            half(0.01, at: o)
            for j in 0..<32 { bytes[o + 2 + j] = j % 3 == 0 ? 0x80 : j % 3 == 1 ? 0x7F : 0x81 }
        case NB_FMT_Q4, NB_FMT_Q2, NB_FMT_Q5_1: half(0.01, at: o); half(-0.02, at: o + 2)
        case NB_FMT_Q4_0, NB_FMT_Q5_0: half(0.01, at: o)
        case NB_FMT_Q4_K, NB_FMT_Q5_K: half(0.001, at: o); half(0.0005, at: o + 2)
        case NB_FMT_Q6_K:
            half(0.0002, at: o + 208)
            for s in 0..<16 { bytes[o + 192 + s] = s % 2 == 0 ? 0x7F : 0x80 }  // scales 127, −128
        default: break
        }
    }
    return bytes
}

extension KernelPaths {
    @Suite struct KernelTilingTests {
        /// Every SIMD level against the scalar path, bit for bit: 100 rows (several 8- and
        /// 16-row tiles and a short last one), row ranges that start and end inside tiles,
        /// 1...5 tokens (decode, and the few-token tiles that prefetch further ahead) and 130
        /// (three token groups). The formats with an interleaved layout in it too, at every level.
        @Test func manyTilesAndTokenGroups() {
            let rows = 100, k = 512, ldY = 103
            for (f, fmt) in blockFormats.enumerated() {
                let kind = activationKind(fmt)
                let w = someWeights(fmt, rows: rows, k: k, seed: UInt64(17 + f))
                for tokens in [1, 2, 4, 5, 130] {
                    let x = gaussianMatrix(rows: tokens, k: k, seed: UInt64(1000 + tokens))
                    let xq = withISA(NB_ISA_SCALAR) { quantizeFor(kind, x, tokens: tokens, k: k) }
                    for range in [0..<rows, 7..<93, 90..<100, 33..<34] {
                        let ys = withISA(NB_ISA_SCALAR) { matmulRaw(fmt, w, rows: rows, k: k, xq: xq, tokens: tokens, ldY: ldY, rowRange: range) }
                        for level in simdLevels {
                            let yv = withISA(level) { matmulRaw(fmt, w, rows: rows, k: k, xq: xq, tokens: tokens, ldY: ldY, rowRange: range) }
                            #expect(yv.map(\.bitPattern) == ys.map(\.bitPattern),
                                    "\(formatName(fmt)) tokens \(tokens) rows \(range), \(isaName(level))")
                        }
                        // The interleaved layout at every level, the scalar one too.
                        if let il = interleavedFormats.contains(fmt) ? interleave(fmt, w, rows: rows, k: k) : nil {
                            for level in allLevels {
                                let yi = withISA(level) {
                                    matmulInterleaved(fmt, il, rows: rows, k: k, xq: xq, tokens: tokens, ldY: ldY, rowRange: range)
                                }
                                #expect(yi.map(\.bitPattern) == ys.map(\.bitPattern),
                                        "\(formatName(fmt)) interleaved, tokens \(tokens) rows \(range), \(isaName(level))")
                            }
                        }
                    }
                }
            }
        }

        /// Codes at the top and at the bottom of their range against activations of ±127 (all
        /// positive, all negative, alternating): the largest int16 partial sums any path forms.
        /// Every SIMD level equals the scalar path, and the scalar path equals the exact products.
        @Test(arguments: [UInt8(0xFF), 0x00])
        func extremeCodesAndActivations(fill: UInt8) {
            let rows = 20, k = 256
            for fmt in blockFormats {
                let kind = activationKind(fmt)
                let w = extremeWeights(fmt, rows: rows, k: k, fill: fill)
                var x = [Float](repeating: 1, count: 3 * k)
                for i in 0..<k { x[k + i] = -1; x[2 * k + i] = i % 2 == 0 ? 1 : -1 }
                for tokens in [1, 3] {
                    let xq = quantizeFor(kind, Array(x.prefix(tokens * k)), tokens: tokens, k: k)
                    let ys = withISA(NB_ISA_SCALAR) { matmulRaw(fmt, w, rows: rows, k: k, xq: xq, tokens: tokens, ldY: rows, rowRange: 0..<rows) }
                    for level in simdLevels {
                        let yv = withISA(level) { matmulRaw(fmt, w, rows: rows, k: k, xq: xq, tokens: tokens, ldY: rows, rowRange: 0..<rows) }
                        #expect(yv.map(\.bitPattern) == ys.map(\.bitPattern), "\(formatName(fmt)) fill \(fill) tokens \(tokens), \(isaName(level))")
                        if interleavedFormats.contains(fmt) {
                            let il = interleave(fmt, w, rows: rows, k: k)
                            let yi = withISA(level) {
                                matmulInterleaved(fmt, il, rows: rows, k: k, xq: xq, tokens: tokens, ldY: rows, rowRange: 0..<rows)
                            }
                            #expect(yi.map(\.bitPattern) == ys.map(\.bitPattern),
                                    "\(formatName(fmt)) interleaved, fill \(fill) tokens \(tokens), \(isaName(level))")
                        }
                    }
                    // The scalar path against double-precision products of what it multiplies.
                    let wf = unpack(fmt, w, rows: rows, k: k)
                    let xf = dequantizedActivations(kind, xq, tokens: tokens, k: k)
                    for t in 0..<tokens {
                        for r in 0..<rows {
                            var exact = 0.0, norm = 0.0
                            for c in 0..<k {
                                exact += Double(wf[r * k + c]) * Double(xf[t * k + c])
                                norm += abs(Double(wf[r * k + c]) * Double(xf[t * k + c]))
                            }
                            let error = abs(Double(ys[t * rows + r]) - exact) / max(norm, 1e-30)
                            #expect(error < (fmt == NB_FMT_NF4 ? 1e-3 : 1e-5), "\(formatName(fmt)) token \(t) row \(r): \(error)")
                        }
                    }
                }
            }
        }
    }
}
