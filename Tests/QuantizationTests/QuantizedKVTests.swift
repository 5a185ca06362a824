import CKernels
import Foundation
import Testing

/// The q8 KV cache (`--kv-cache q8`): rows quantised as llama.cpp's q8_0, and attention
/// over them (integer scores against the quantised query) at every ISA level.
extension KernelPaths {
    @Suite struct QuantizedKVTests {
        /// Rows of `headDim` floats at `stride` bytes, quantised, and what they stand for.
        static func q8Rows(_ x: [Float], rows: Int, headDim: Int, stride: Int) -> (bytes: [UInt8], dequantised: [Float]) {
            var bytes = [UInt8](repeating: 0xA5, count: rows * stride), back = [Float](repeating: .nan, count: rows * headDim)
            bytes.withUnsafeMutableBytes { b in
                for r in 0..<rows {
                    x.withUnsafeBufferPointer { nb_kv_q8_quantize($0.baseAddress! + r * headDim, Int64(headDim), b.baseAddress! + r * stride) }
                    back.withUnsafeMutableBufferPointer { nb_kv_q8_dequantize(b.baseAddress! + r * stride, Int64(headDim), $0.baseAddress! + r * headDim) }
                }
            }
            return (bytes, back)
        }

        /// Each block of 32 gets the codes gguf-py's Q8_0 quantiser (ggml's
        /// quantize_row_q8_0_ref) gives the same floats, and its scale rounded to f16 is the
        /// block's f16 d (Tools/reference_quants.py: edge blocks, ties, f16 limits, outliers).
        @Test func rowsHaveGGUFQ8_0Codes() throws {
            let cases = try #require(try quantFixture("reference-quants.json")["ggml"] as? [[String: Any]])
            var blocks = 0
            for c in cases {
                let name = c["name"] as? String ?? "?"
                let rows = try #require(c["rows"] as? Int), k = try #require(c["k"] as? Int)
                guard k % 32 == 0 else { continue }
                let x = try base64Floats(c["input_f32"]), q8_0 = try base64Bytes(c["q8_0"])
                let rowBytes = Int(nb_kv_row_bytes(Int32(NB_KV_Q8), Int64(k)))
                #expect(rowBytes == k + k / 32 * 4)
                let (bytes, _) = Self.q8Rows(x, rows: rows, headDim: k, stride: rowBytes)
                for isa in allLevels {  // AVX2 quantises where it can: the same bytes
                    #expect(withISA(isa) { Self.q8Rows(x, rows: rows, headDim: k, stride: rowBytes).bytes } == bytes, "\(name), isa \(isa)")
                }
                for r in 0..<rows {
                    for b in 0..<(k / 32) {
                        let block = (r * k / 32 + b) * 34
                        let codes = Array(bytes[(r * rowBytes + b * 32)..<(r * rowBytes + b * 32 + 32)])
                        #expect(codes == Array(q8_0[(block + 2)..<(block + 34)]), "\(name) row \(r) block \(b)")
                        var d: Float = 0
                        withUnsafeMutableBytes(of: &d) { $0.copyBytes(from: bytes[(r * rowBytes + k + 4 * b)..<(r * rowBytes + k + 4 * b + 4)]) }
                        var h: UInt16 = 0
                        nb_f32_to_f16([d], &h, 1)
                        #expect(h == UInt16(q8_0[block]) | UInt16(q8_0[block + 1]) << 8, "\(name) row \(r) block \(b): d \(d)")
                        blocks += 1
                    }
                }
            }
            #expect(blocks >= 100)
        }

        /// Attention over q8 rows: the query is quantised as the keys are (q8_0 blocks of 32)
        /// and each score is Σ_b d_key · d_query · an integer dot product: at every level the
        /// output is softmax(q'·K)·V in double precision to rounding, q' the query's q8
        /// values and K, V the rows' (for 1, 3 and
        /// 11 query heads, within one chunk and across chunks, head dimensions 32, 64 and 256,
        /// 96: blocks that are not whole 64s on AVX-512), and within a few percent of the
        /// unquantised query's. A ring read from any slot, and a split merged, too.
        @Test(arguments: [(1, 64, 1), (7, 32, 3), (129, 64, 3), (300, 256, 4), (1000, 64, 11), (77, 96, 2), (259, 64, 5)])
        func attentionEqualsDoubleSoftmaxOfTheQ8Values(positions: Int, headDim: Int, heads: Int) throws {
            var rng = TestRNG(seed: UInt64(positions * 31 + headDim))
            let q = (0..<heads * headDim).map { _ in rng.gaussian() }
            let rowBytes = Int(nb_kv_row_bytes(Int32(NB_KV_Q8), Int64(headDim))), stride = rowBytes + 8
            let (keys, keysF) = Self.q8Rows((0..<positions * headDim).map { _ in rng.gaussian() * 2 }, rows: positions, headDim: headDim, stride: stride)
            let (values, valuesF) = Self.q8Rows((0..<positions * headDim).map { _ in rng.gaussian() }, rows: positions, headDim: headDim, stride: stride)
            let qQ8 = Self.q8Rows(q, rows: heads, headDim: headDim, stride: rowBytes).dequantised
            let n = Int64(positions), g = Int64(heads), h = Int64(headDim), scale = Float(1 / Double(headDim).squareRoot())
            func softmaxAttention(_ query: [Float]) -> [Double] {
                doubleSoftmaxAttention(q: query, keys: keysF, values: valuesF, heads: heads, headDim: headDim, positions: positions,
                                       stride: headDim, scale: scale)
            }
            let expected = softmaxAttention(qQ8), unquantised = softmaxAttention(q)
            let peak = unquantised.map { abs($0) }.max()!
            for isa in allLevels {
                var out = [Float](repeating: .nan, count: heads * headDim)
                withISA(isa) { nb_attention_q8kv(q, g, keys, values, Int64(stride), n, 0, n, h, scale, &out, nil) }
                let worst = zip(out, expected).map { abs(Double($0) - $1) }.max()!
                #expect(worst <= 5e-6, "isa \(isa.rawValue) against double: \(worst)")
                let drift = zip(out, unquantised).map { abs(Double($0) - $1) }.max()!
                #expect(drift <= 0.05 * peak, "isa \(isa.rawValue): the query's quantisation moved the output by \(drift) of \(peak)")
            }
            // A ring of `positions` slots read from slot first = positions / 3 on, wrapping,
            // gives what the same rows laid out in order give.
            let first = Int64(positions / 3)
            let order = (0..<positions).map { (positions / 3 + $0) % positions }
            let keysInOrder = order.flatMap { keys[($0 * stride)..<(($0 + 1) * stride)] }
            let valuesInOrder = order.flatMap { values[($0 * stride)..<(($0 + 1) * stride)] }
            for isa in allLevels {
                var inOrder = [Float](repeating: .nan, count: heads * headDim), ring = inOrder
                withISA(isa) {
                    nb_attention_q8kv(q, g, keysInOrder, valuesInOrder, Int64(stride), n, 0, n, h, scale, &inOrder, nil)
                    nb_attention_q8kv(q, g, keys, values, Int64(stride), n, first, n, h, scale, &ring, nil)
                }
                #expect(ring == inOrder, "ring, isa \(isa.rawValue)")
            }
            // Two parts over disjoint ranges, merged, equal the whole to rounding.
            guard positions >= 2 else { return }
            let half = positions / 2
            for isa in allLevels {
                var whole = [Float](repeating: .nan, count: heads * headDim), merged = whole
                var parts = [Float](repeating: .nan, count: 2 * heads * headDim), ml = [Float](repeating: .nan, count: 2 * heads * 2)
                withISA(isa) {
                    nb_attention_q8kv(q, g, keys, values, Int64(stride), n, 0, n, h, scale, &whole, nil)
                    keys.withUnsafeBytes { k in
                        values.withUnsafeBytes { v in
                            parts.withUnsafeMutableBufferPointer { o in
                                ml.withUnsafeMutableBufferPointer { m in
                                    for (p, (lo, hi)) in [(0, half), (half, positions)].enumerated() {
                                        nb_attention_q8kv(q, g, k.baseAddress! + lo * stride, v.baseAddress! + lo * stride, Int64(stride),
                                                          Int64(hi - lo), 0, Int64(hi - lo), h, scale,
                                                          o.baseAddress! + p * heads * headDim, m.baseAddress! + p * heads * 2)
                                    }
                                }
                            }
                        }
                    }
                    nb_attention_merge(parts, ml, 2, g, h, &merged)
                }
                let worst = zip(whole, merged).map { abs($0 - $1) }.max()!
                #expect(worst <= 2e-6, "split, isa \(isa.rawValue): \(worst)")
            }
        }
    }
}
