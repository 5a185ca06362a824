import CKernels
import Foundation
@testable import Quantization
import Testing

// The formats that keep GGML's blocks (q4_0, q5_0, q5_1, q4_K, q5_K, q6_K): their unpack
// against gguf-py's dequantisation, their kernels at every ISA level against the scalar
// path bit for bit, and the scalar path against double-precision dot products.

/// Random blocks of a native format: random code bytes, with every f16 field set to a
/// finite scale of a plausible size (d, and dmin/m where the block has one).
func randomBlocks(_ fmt: nb_format, rows: Int, k: Int, seed: UInt64) -> [UInt8] {
    var rng = TestRNG(seed: seed)
    let info = nb_format_get(fmt)!.pointee
    var bytes = (0..<nb_format_bytes(fmt, Int64(rows), Int64(k))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    func half(_ value: Float, at offset: Int) {
        let h = Float16(value).bitPattern
        bytes[offset] = UInt8(h & 0xFF)
        bytes[offset + 1] = UInt8(h >> 8)
    }
    for b in 0..<rows * k / Int(info.block) {
        let o = b * Int(info.block_bytes)
        let d = Float(1 + rng.next() % 100) * 0.001 * (rng.next() & 1 == 0 ? 1 : -1)
        switch fmt {
        case NB_FMT_Q4_0, NB_FMT_Q5_0: half(d, at: o)
        case NB_FMT_Q5_1: half(d, at: o); half(0.01 * rng.gaussian(), at: o + 2)
        case NB_FMT_Q4_K, NB_FMT_Q5_K: half(abs(d) / 8, at: o); half(abs(d) / 16, at: o + 2)
        case NB_FMT_Q6_K: half(d / 64, at: o + 208)
        default: break
        }
    }
    return bytes
}

/// x quantised for `kind` (nb_quantize_for) as raw bytes.
func quantizeFor(_ kind: nb_activation, _ x: [Float], tokens: Int, k: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: nb_activation_bytes(kind, Int64(tokens), Int64(k)))
    x.withUnsafeBufferPointer { xs in out.withUnsafeMutableBytes { nb_quantize_for(kind, xs.baseAddress, Int64(tokens), Int64(k), $0.baseAddress) } }
    return out
}

/// The values quantised activations stand for (d · q per block).
func dequantizedActivations(_ kind: nb_activation, _ xq: [UInt8], tokens: Int, k: Int) -> [Float] {
    var out = [Float](repeating: 0, count: tokens * k)
    xq.withUnsafeBytes { raw in
        if kind == NB_ACT_Q8A {
            let blocks = raw.bindMemory(to: nb_q8a.self)
            for (b, block) in blocks.enumerated() {
                let qs = qsArray(block)
                for j in 0..<32 { out[b * 32 + j] = block.d * Float(qs[j]) }
            }
        } else {
            let blocks = raw.bindMemory(to: nb_q8k.self)
            for (b, block) in blocks.enumerated() {
                withUnsafeBytes(of: block.qs) { qs in
                    for j in 0..<256 { out[b * 256 + j] = block.d * Float(Int8(bitPattern: qs[j])) }
                }
            }
        }
    }
    return out
}

/// Y (tokens × ldY, pre-filled with a sentinel) after nb_matmul over `rowRange`.
func matmulRaw(_ fmt: nb_format, _ w: [UInt8], rows: Int, k: Int, xq: [UInt8], tokens: Int, ldY: Int, rowRange: Range<Int>) -> [Float] {
    var y = [Float](repeating: matmulSentinel, count: tokens * ldY)
    w.withUnsafeBytes { wb in
        xq.withUnsafeBytes { xqb in
            y.withUnsafeMutableBufferPointer { ys in
                nb_matmul(fmt, wb.baseAddress, Int64(rows), Int64(k), nil, xqb.baseAddress, ys.baseAddress,
                          Int64(tokens), Int64(ldY), Int64(rowRange.lowerBound), Int64(rowRange.upperBound))
            }
        }
    }
    return y
}

func activationKind(_ fmt: nb_format) -> nb_activation { nb_format_get(fmt)!.pointee.activation }

/// Row lengths per format: whole blocks, Gemma 3's 640 and 2048 among them.
func nativeWidths(_ fmt: nb_format) -> [Int] {
    activationKind(fmt) == NB_ACT_Q8K ? [256, 512, 2048] : [64, 640, 2048]
}

extension KernelPaths {
    @Suite struct NativeFormatTests {
        static let formats = nativeFormats.map(\.rawValue)

        /// Every SIMD level equals the scalar path bit for bit: decode (1 token) and prefill
        /// (odd token counts, more than one 64-token group), several row ranges, a leading
        /// dimension wider than the row count; rows outside the range stay untouched. The
        /// activation quantisation gives the same bytes on every path too.
        @Test(arguments: formats)
        func simdEqualsScalar(format: UInt32) {
            let fmt = nb_format(format), kind = activationKind(fmt)
            let rows = 37, ldY = 41
            for k in nativeWidths(fmt) {
                let w = randomBlocks(fmt, rows: rows, k: k, seed: UInt64(k) &* 31 &+ UInt64(format))
                for tokens in [1, 2, 3, 7, 9, 67] {
                    let x = gaussianMatrix(rows: tokens, k: k, seed: UInt64(k * 100 + tokens))
                    let xq = withISA(NB_ISA_SCALAR) { quantizeFor(kind, x, tokens: tokens, k: k) }
                    for level in simdLevels {
                        #expect(withISA(level) { quantizeFor(kind, x, tokens: tokens, k: k) } == xq,
                                "\(formatName(fmt)) activations k \(k) tokens \(tokens), \(isaName(level))")
                    }
                    for range in [0..<rows, 3..<36, 5..<6, 16..<32, 17..<37] {
                        let ys = withISA(NB_ISA_SCALAR) { matmulRaw(fmt, w, rows: rows, k: k, xq: xq, tokens: tokens, ldY: ldY, rowRange: range) }
                        var untouched = true
                        for t in 0..<tokens {
                            for r in 0..<ldY where !range.contains(r) { untouched = untouched && ys[t * ldY + r] == matmulSentinel }
                        }
                        #expect(untouched, "\(formatName(fmt)) k \(k) tokens \(tokens) rows \(range): rows outside the range were written")
                        for level in simdLevels {
                            let yv = withISA(level) { matmulRaw(fmt, w, rows: rows, k: k, xq: xq, tokens: tokens, ldY: ldY, rowRange: range) }
                            #expect(yv.map(\.bitPattern) == ys.map(\.bitPattern),
                                    "\(formatName(fmt)) k \(k) tokens \(tokens) rows \(range), \(isaName(level))")
                        }
                    }
                }
            }
        }

        /// Against double-precision dot products of the unpacked rows with the activations as
        /// the kernels see them (dequantised nb_q8a / nb_q8k), relative to Σ|w·x|: only f32
        /// rounding is left. Measured at k 2048: 5e-9 (q4_K) to 2.4e-8 (q5_1).
        @Test(arguments: allLevels.map(\.rawValue))
        func matchesDoublePrecision(level: UInt32) {
            withISA(nb_isa(level)) {
                for fmt in nativeFormats {
                    let rows = 24, k = 2048, tokens = 9, kind = activationKind(fmt)
                    let w = randomBlocks(fmt, rows: rows, k: k, seed: 77 &+ UInt64(fmt.rawValue))
                    let x = gaussianMatrix(rows: tokens, k: k, seed: 78)
                    let xq = quantizeFor(kind, x, tokens: tokens, k: k)
                    let xd = dequantizedActivations(kind, xq, tokens: tokens, k: k)
                    let wf = unpack(fmt, w, rows: rows, k: k)
                    let y = matmulRaw(fmt, w, rows: rows, k: k, xq: xq, tokens: tokens, ldY: rows, rowRange: 0..<rows)
                    var worst = 0.0
                    for t in 0..<tokens {
                        for r in 0..<rows {
                            var dot = 0.0, norm = 0.0
                            for c in 0..<k {
                                let p = Double(wf[r * k + c]) * Double(xd[t * k + c])
                                dot += p
                                norm += abs(p)
                            }
                            worst = max(worst, abs(Double(y[t * rows + r]) - dot) / norm)
                        }
                    }
                    #expect(worst <= 3e-7, "\(formatName(fmt)), \(isaName(nb_isa(level))): \(worst)")
                }
            }
        }

        /// nb_q8k: d = absmax/127, q = round half away from zero of x/d, bsums the sums of each
        /// 16; zero blocks stay zero.
        @Test(arguments: allLevels.map(\.rawValue))
        func q8kActivations(level: UInt32) {
            var x = [Float](repeating: 0, count: 768)  // block 0 zeros
            x[256] = -127
            for j in 1..<256 { x[256 + j] = Float(j % 64 - 32) + 0.5 }  // block 1: d = 1, halves
            var rng = TestRNG(seed: 3)
            for i in 512..<768 { x[i] = rng.gaussian() * 5 }
            let bytes = withISA(nb_isa(level)) { quantizeFor(NB_ACT_Q8K, x, tokens: 1, k: 768) }
            bytes.withUnsafeBytes { raw in
                let blocks = Array(raw.bindMemory(to: nb_q8k.self))
                #expect(blocks[0].d == 0)
                #expect(blocks[1].d == 1)
                for b in 0..<3 {
                    let block = Array(x[b * 256..<(b + 1) * 256])
                    let d = block.map { abs($0) }.max()! / 127
                    #expect(blocks[b].d == d)
                    let qs = withUnsafeBytes(of: blocks[b].qs) { $0.map { Int8(bitPattern: $0) } }
                    let id: Float = d > 0 ? 1 / d : 0
                    #expect(qs == block.map { Int8(($0 * id).rounded(.toNearestOrAwayFromZero)) }, "block \(b)")
                    let sums = withUnsafeBytes(of: blocks[b].bsums) { Array($0.bindMemory(to: Int16.self)) }
                    #expect(sums == (0..<16).map { g in Int16(qs[16 * g..<16 * g + 16].reduce(0) { $0 + Int($1) }) }, "block \(b)")
                }
            }
        }

        /// Unpacking a native format's blocks gives gguf-py's values bit for bit (the
        /// synthetic blocks of Tools/reference_dequant.py), and equals nb_ggml_dequantize.
        @Test func unpackEqualsGGUF() throws {
            let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("ModelFilesTests/Resources/synthetic-dequant.json")
            let fixture = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
            var covered: [String] = []
            for entry in try #require(fixture["entries"] as? [[String: Any]]) {
                let ggml = try #require(entry["ggml_type"] as? Int)
                let format = nb_format_of_ggml(UInt32(ggml))
                guard format >= 0 else { continue }
                let fmt = nb_format(UInt32(format)), count = try #require(entry["count"] as? Int)
                let bytes = try base64Bytes(entry["bytes_base64"])
                let values = try #require(entry["values"] as? [Double]).map(Float.init)
                // As one row, and as rows of one block where the blocks allow it.
                #expect(unpack(fmt, bytes, rows: 1, k: count).map(\.bitPattern) == values.map(\.bitPattern), "\(formatName(fmt))")
                let block = Int(nb_format_get(fmt)!.pointee.block)
                if block > 1 {
                    let rows = count / block
                    #expect(unpack(fmt, bytes, rows: rows, k: block).map(\.bitPattern) == values.map(\.bitPattern), "\(formatName(fmt)) by block")
                }
                covered.append(formatName(fmt))
            }
            #expect(Set(covered) == Set(["f32", "f16", "bf16", "q8", "q4", "q4_0", "q5_0", "q5_1", "q4_K", "q5_K", "q6_K"]))
            for fmt in nativeFormats {
                let rows = 3, k = nativeWidths(fmt)[1]
                let w = randomBlocks(fmt, rows: rows, k: k, seed: 5)
                var viaGGML = [Float](repeating: .nan, count: rows * k)
                let ggml = UInt32(nb_format_get(fmt)!.pointee.ggml_type)
                w.withUnsafeBytes { raw in _ = nb_ggml_dequantize(ggml, raw.baseAddress, Int64(rows * k), &viaGGML) }
                #expect(unpack(fmt, w, rows: rows, k: k).map(\.bitPattern) == viaGGML.map(\.bitPattern), "\(formatName(fmt))")
            }
        }

        /// A fused product over matrices of different formats and activation kinds (Q5_0,
        /// Q4_K, Q6_K as in one Q4_K_M layer; q8) equals the products one at a time.
        @Test func fusedProductMixesFormats() throws {
            let k = 512, batch = 5
            let pool = WorkerPool(threads: 3)
            let scratch = try ActivationScratch(tokens: batch, columns: k)
            let formats: [WeightFormat] = [.q5_0, .q4_K, .q6_K, .q8]
            let matrices = try formats.enumerated().map { i, format in
                let rows = [24, 40, 8, 16][i]
                let bytes = format == .q8 ? pack(NB_FMT_Q8, gaussianMatrix(rows: rows, k: k, seed: 9), rows: rows, k: k)
                    : randomBlocks(format.c, rows: rows, k: k, seed: UInt64(i))
                return try bytes.withUnsafeBytes { try WeightMatrix(format: format, rows: rows, columns: k, name: format.rawValue, packed: $0) }
            }
            let x = gaussianMatrix(rows: batch, k: k, seed: 10)
            func products(_ ms: [WeightMatrix]) -> [[Float]] {
                var outs = ms.map { [Float](repeating: .nan, count: batch * $0.rows) }
                for i in ms.indices {
                    outs[i].withUnsafeMutableBufferPointer { y in
                        x.withUnsafeBufferPointer { ms[i].multiply($0.baseAddress!, batch: batch, into: y.baseAddress!, pool: pool, scratch: scratch) }
                    }
                }
                return outs
            }
            let separate = products(matrices)
            for trio in [[0, 1, 2], [1, 3, 0], [2, 1, 3]] {
                var a = [Float](repeating: .nan, count: batch * matrices[trio[0]].rows)
                var b = [Float](repeating: .nan, count: batch * matrices[trio[1]].rows)
                var c = [Float](repeating: .nan, count: batch * matrices[trio[2]].rows)
                x.withUnsafeBufferPointer { xs in
                    a.withUnsafeMutableBufferPointer { ya in
                        b.withUnsafeMutableBufferPointer { yb in
                            c.withUnsafeMutableBufferPointer { yc in
                                WeightMatrix.multiply((matrices[trio[0]], ya.baseAddress!), (matrices[trio[1]], yb.baseAddress!),
                                                      (matrices[trio[2]], yc.baseAddress!), x: xs.baseAddress!, batch: batch, pool: pool, scratch: scratch)
                            }
                        }
                    }
                }
                #expect(a.map(\.bitPattern) == separate[trio[0]].map(\.bitPattern) && b.map(\.bitPattern) == separate[trio[1]].map(\.bitPattern)
                        && c.map(\.bitPattern) == separate[trio[2]].map(\.bitPattern), "\(trio.map { formats[$0].rawValue })")
            }
        }

        /// The native formats cannot be made from f32 values: packing says so instead of
        /// writing garbage.
        @Test func nativeFormatsAreNotPackable() {
            let pool = WorkerPool(threads: 1)
            for format in WeightFormat.allCases where !format.isPackable {
                #expect(throws: QuantizationError.self) {
                    try WeightMatrix(format: format, rows: 2, columns: 256, name: "w", pool: pool) { _, _ in }
                }
            }
        }
    }
}
