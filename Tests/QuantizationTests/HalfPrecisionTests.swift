import CKernels
import Foundation
import Testing

/// f16/bf16 conversion and attention over an f16 KV cache, on the scalar and SIMD paths.
/// (nb_force_isa sets the level of the calling thread only.)
extension KernelPaths {
    @Suite struct HalfPrecisionTests {
        static let paths: [nb_isa] = allLevels

        func toF32(_ h: [UInt16]) -> [Float] {
            var out = [Float](repeating: 0, count: h.count)
            h.withUnsafeBufferPointer { src in out.withUnsafeMutableBufferPointer { nb_f16_to_f32(src.baseAddress, $0.baseAddress, Int64(h.count)) } }
            return out
        }

        func toF16(_ f: [Float]) -> [UInt16] {
            var out = [UInt16](repeating: 0, count: f.count)
            f.withUnsafeBufferPointer { src in out.withUnsafeMutableBufferPointer { nb_f32_to_f16(src.baseAddress, $0.baseAddress, Int64(f.count)) } }
            return out
        }

        /// Keys laid out as rows (position j's element d at j * stride + d) in the cache's
        /// tiles (nb_kv_key_index), for nb_kv_slots(positions) slots, the unused ones 0.
        func tiled<T: Numeric>(_ rows: [T], positions: Int, stride: Int, headDim: Int) -> [T] {
            var out = [T](repeating: .zero, count: Int(nb_kv_slots(Int64(positions))) * headDim)
            for j in 0..<positions {
                for d in 0..<headDim { out[Int(nb_kv_key_index(Int64(j), Int64(d), Int64(headDim)))] = rows[j * stride + d] }
            }
            return out
        }

        /// nb_kv_store_key writes what tiled lays out (f32, f16) and a q8 row, in any slot.
        @Test func storedKeysAreTiled() {
            let headDim = 64, capacity = 37
            var rng = TestRNG(seed: 5)
            let rows = (0..<capacity * headDim).map { _ in rng.gaussian() }
            let slots = Int(nb_kv_slots(Int64(capacity)))
            #expect(slots == 48)
            var f32 = [Float](repeating: 0, count: slots * headDim), f16 = [UInt16](repeating: 0, count: slots * headDim)
            var q8 = [UInt8](repeating: 0, count: slots * Int(nb_kv_row_bytes(Int32(NB_KV_Q8), Int64(headDim))))
            for j in (0..<capacity).reversed() {  // any order: each slot is its own column
                rows.withUnsafeBufferPointer { r in
                    nb_kv_store_key(Int32(NB_KV_F32), r.baseAddress! + j * headDim, Int64(headDim), &f32, Int64(j))
                    nb_kv_store_key(Int32(NB_KV_F16), r.baseAddress! + j * headDim, Int64(headDim), &f16, Int64(j))
                    nb_kv_store_key(Int32(NB_KV_Q8), r.baseAddress! + j * headDim, Int64(headDim), &q8, Int64(j))
                }
            }
            #expect(f32 == tiled(rows, positions: capacity, stride: headDim, headDim: headDim))
            #expect(f16 == tiled(toF16(rows), positions: capacity, stride: headDim, headDim: headDim))
            let rowBytes = Int(nb_kv_row_bytes(Int32(NB_KV_Q8), Int64(headDim)))
            var row = [UInt8](repeating: 0, count: rowBytes)
            rows.withUnsafeBufferPointer { nb_kv_q8_quantize($0.baseAddress! + 5 * headDim, Int64(headDim), &row) }
            #expect(Array(q8[(5 * rowBytes)..<(6 * rowBytes)]) == row)
        }

        /// All 65536 halves to f32 equal Swift's Float16 → Float, and back to the same bits
        /// (NaNs: still NaN, same sign, quiet; both paths give the same bits).
        @Test func everyHalfPatternRoundTrips() {
            let halves = (0...0xFFFF).map { UInt16($0) } + [0x3C00, 0x7BFF, 0x0001]  // odd length: SIMD tail
            var perPath: [[Float]] = []
            for isa in Self.paths {
                withISA(isa) {
                    let floats = toF32(halves)
                    perPath.append(floats)
                    let back = toF16(floats)
                    for (i, h) in halves.enumerated() {
                        let reference = Float(Float16(bitPattern: h))
                        if reference.isNaN {
                            #expect(floats[i].isNaN && floats[i].sign == reference.sign, "\(h)")
                            #expect(back[i] & 0x7E00 == 0x7E00 && back[i] & 0x8000 == h & 0x8000, "\(h) → \(back[i])")
                        } else {
                            #expect(floats[i].bitPattern == reference.bitPattern, "\(h)")
                            #expect(back[i] == h, "\(h)")
                        }
                    }
                }
            }
            #expect(perPath.dropFirst().allSatisfy { $0.map(\.bitPattern) == perPath[0].map(\.bitPattern) })
        }

        /// f32 → f16 rounds to nearest even: at every midpoint between neighbouring halves, one
        /// f32 ulp either side, overflow to infinity, subnormals, and random values.
        @Test func floatToHalfRoundsToNearestEven() {
            var inputs: [Float] = [0, -0, .infinity, -.infinity, 65504, 65519.996, 65520, 1e9, -1e9, 1e-8, 2.9802322e-8, 2.98e-8, 5.96e-8]
            for h in UInt16(0)..<0x7BFF {
                let a = Double(Float16(bitPattern: h)), b = Double(Float16(bitPattern: h + 1))
                let mid = Float((a + b) / 2)  // exact: halves have 11 significant bits
                inputs += [mid, mid.nextUp, mid.nextDown, -mid, -mid.nextUp]
            }
            var rng = TestRNG(seed: 42)
            for _ in 0..<20000 { inputs.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()) & 0x7FFF_FFFF | (rng.next() & 1 == 0 ? 0 : 0x8000_0000))) }
            inputs = inputs.filter { !$0.isNaN }
            var perPath: [[UInt16]] = []
            for isa in Self.paths {
                let out = withISA(isa) { toF16(inputs) }
                perPath.append(out)
                let wrong = inputs.indices.filter { out[$0] != Float16(inputs[$0]).bitPattern }
                #expect(wrong.isEmpty, "\(wrong.prefix(5).map { (inputs[$0], out[$0]) })")
            }
            #expect(perPath.dropFirst().allSatisfy { $0 == perPath[0] })
        }

        /// bf16 packing rounds to nearest even (ties to even), keeps infinities and NaNs.
        @Test func bfloat16Packing() {
            let values: [Float] = [1, 1 + 0x1p-8, 1 + 0x1p-7 + 0x1p-8, 1 + 0x1p-8 + 0x1p-20, -3.14159, .greatestFiniteMagnitude, .infinity, -0.0, Float(bitPattern: 0x0001_16C2)]
            let expected: [UInt16] = [0x3F80, 0x3F80, 0x3F82, 0x3F81, 0xC049, 0x7F80, 0x7F80, 0x8000, 0x0001]
            let packed = pack(NB_FMT_BF16, values, rows: 1, k: values.count)
            let bits = packed.withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) }
            #expect(bits == expected)
            #expect(unpack(NB_FMT_BF16, pack(NB_FMT_BF16, [.nan], rows: 1, k: 1), rows: 1, k: 1)[0].isNaN)
            let back = unpack(NB_FMT_BF16, packed, rows: 1, k: values.count)
            #expect(back[0] == 1 && back[2] == 1 + 0x1p-6 && back[4] == -3.140625)
        }

        /// nb_attention_f16kv equals nb_attention_f32 run on the same (f16-rounded) keys and values.
        @Test(arguments: [1, 7, 100])
        func attentionOverHalfKV(positions: Int) {
            let headDim = 64, stride = 80
            var rng = TestRNG(seed: UInt64(positions))
            let q = (0..<headDim).map { _ in rng.gaussian() }
            let keys16 = toF16((0..<positions * stride).map { _ in rng.gaussian() * 2 })
            let values16 = toF16((0..<positions * stride).map { _ in rng.gaussian() })
            let keys = toF32(keys16), values = toF32(values16)
            var reference = [Float](repeating: 0, count: headDim)
            let n = Int64(positions)
            let tiles = tiled(keys, positions: positions, stride: stride, headDim: headDim)
            let tiles16 = tiled(keys16, positions: positions, stride: stride, headDim: headDim)
            nb_attention_f32(q, 1, tiles, values, Int64(stride), n, 0, n, Int64(headDim), 0.125, &reference, nil)
            for isa in Self.paths {
                var out = [Float](repeating: .nan, count: headDim)
                withISA(isa) {
                    nb_attention_f16kv(q, 1, tiles16, values16, Int64(stride), n, 0, n, Int64(headDim), 0.125, &out, nil)
                }
                let scale = reference.map { abs($0) }.max()!
                let worst = zip(out, reference).map { abs($0 - $1) }.max()!
                #expect(worst <= 2e-6 * max(scale, 1), "isa \(isa.rawValue): \(worst)")
            }
        }

        /// A ring (a sliding-window layer's cache) read from slot `first` on, wrapping at
        /// its capacity, gives what the same keys and values laid out in order give,
        /// bit for bit, in f32 and f16.
        @Test(arguments: [(7, 3, 7), (9, 5, 6), (100, 99, 100), (5, 0, 3), (300, 250, 290), (200, 37, 200), (40, 21, 33)])
        func attentionOverRing(capacity: Int, first: Int, count: Int) {
            let headDim = 32
            var rng = TestRNG(seed: UInt64(capacity * 100 + first))
            let q = (0..<headDim).map { _ in rng.gaussian() }
            let keys = toF32(toF16((0..<capacity * headDim).map { _ in rng.gaussian() * 2 }))
            let values = toF32(toF16((0..<capacity * headDim).map { _ in rng.gaussian() }))
            // The same positions in order: slot (first + j) % capacity becomes row j.
            let order = (0..<count).map { (first + $0) % capacity }
            let keysInOrder = order.flatMap { keys[($0 * headDim)..<(($0 + 1) * headDim)] }
            let valuesInOrder = order.flatMap { values[($0 * headDim)..<(($0 + 1) * headDim)] }
            let h = Int64(headDim), c = Int64(count)
            var expected = [Float](repeating: 0, count: headDim), ring = expected
            let inOrderTiles = tiled(keysInOrder, positions: count, stride: headDim, headDim: headDim)
            let ringTiles = tiled(keys, positions: capacity, stride: headDim, headDim: headDim)
            nb_attention_f32(q, 1, inOrderTiles, valuesInOrder, h, c, 0, c, h, 0.25, &expected, nil)
            nb_attention_f32(q, 1, ringTiles, values, h, Int64(capacity), Int64(first), c, h, 0.25, &ring, nil)
            #expect(ring == expected)
            for isa in Self.paths {
                var inOrder32 = [Float](repeating: 0, count: headDim), ring32 = inOrder32, inOrder16 = inOrder32, ring16 = inOrder32
                withISA(isa) {
                    nb_attention_f32(q, 1, inOrderTiles, valuesInOrder, h, c, 0, c, h, 0.25, &inOrder32, nil)
                    nb_attention_f32(q, 1, ringTiles, values, h, Int64(capacity), Int64(first), c, h, 0.25, &ring32, nil)
                    nb_attention_f16kv(q, 1, toF16(inOrderTiles), toF16(valuesInOrder), h, c, 0, c, h, 0.25, &inOrder16, nil)
                    nb_attention_f16kv(q, 1, toF16(ringTiles), toF16(values), h, Int64(capacity), Int64(first), c, h, 0.25, &ring16, nil)
                }
                #expect(ring32 == inOrder32 && ring16 == inOrder16, "isa \(isa.rawValue)")
            }
        }

        /// Attention over f32 and f16 caches at every ISA level against softmax(q·K)·V in
        /// double precision: within a chunk of 128 positions, across chunks (where the
        /// running maximum rescales the output), with the largest score early or late, head
        /// dimensions that take the AVX-512 (64, 256), the AVX2 (40) and the scalar (36)
        /// path, and 1, 3, 4, 5 or 11 query heads on one KV head (11: a group of 8, then of 3;
        /// at AVX2 an f16 cache's scores take 8, 3, 2 or 1 units of 8 positions a step with 1,
        /// 3, 4 or 5–8 heads, so runs end inside a step and inside a tile).
        @Test(arguments: [(1, 64, 1), (5, 36, 3), (127, 40, 3), (128, 64, 1), (129, 64, 3), (300, 256, 4), (1000, 64, 11), (259, 64, 5)])
        func attentionEqualsDoubleSoftmax(positions: Int, headDim: Int, heads: Int) {
            let stride = headDim + 8
            for peak in [0, positions - 1] {
                var rng = TestRNG(seed: UInt64(positions * 1000 + headDim + peak))
                let q = (0..<heads * headDim).map { _ in rng.gaussian() }
                var keysF = (0..<positions * stride).map { _ in rng.gaussian() }
                for d in 0..<headDim { keysF[peak * stride + d] = q[d] * 0.5 }  // one clearly larger score (head 0)
                let keys16 = toF16(keysF), values16 = toF16((0..<positions * stride).map { _ in rng.gaussian() })
                let keys = toF32(keys16), values = toF32(values16)
                let scale = Float(1 / Double(headDim).squareRoot())
                let expected = doubleSoftmaxAttention(q: q, keys: keys, values: values, heads: heads, headDim: headDim, positions: positions,
                                                      stride: stride, scale: scale)
                let n = Int64(positions), g = Int64(heads)
                let tiles = tiled(keys, positions: positions, stride: stride, headDim: headDim)
                let tiles16 = tiled(keys16, positions: positions, stride: stride, headDim: headDim)
                for isa in Self.paths {
                    var out32 = [Float](repeating: .nan, count: heads * headDim), out16 = out32
                    withISA(isa) {
                        nb_attention_f32(q, g, tiles, values, Int64(stride), n, 0, n, Int64(headDim), scale, &out32, nil)
                        nb_attention_f16kv(q, g, tiles16, values16, Int64(stride), n, 0, n, Int64(headDim), scale, &out16, nil)
                    }
                    let worst32 = zip(out32, expected).map { abs(Double($0) - $1) }.max()!
                    let worst16 = zip(out16, expected).map { abs(Double($0) - $1) }.max()!
                    #expect(worst32 <= 5e-6 && worst16 <= 5e-6,  // f32 rounding of 256-term scores: ~2e-6
                            "\(positions) positions, head \(headDim) × \(heads), peak \(peak), isa \(isa.rawValue): f32 \(worst32), f16 \(worst16)")
                }
            }
        }

        /// Every run of 1...140 positions from slots 0, 5, 16 and 100 (aligned and unaligned to
        /// a tile, within a chunk of 128 and across one) with 3 and 4 query heads, so that the
        /// scores' last step of each run takes every number of units its step size leaves
        /// (1–7 at AVX-512 with 3 heads, 1–5 with 4; at AVX2 up to 2 and 1), at every ISA
        /// level, against softmax(q·K)·V in double precision.
        @Test(arguments: [3, 4])
        func attentionOverEveryRunLength(heads: Int) {
            let (positions, headDim) = (300, 64), stride = headDim
            var rng = TestRNG(seed: UInt64(heads * 31))
            let q = (0..<heads * headDim).map { _ in rng.gaussian() }
            let keys16 = toF16((0..<positions * stride).map { _ in rng.gaussian() })
            let values16 = toF16((0..<positions * stride).map { _ in rng.gaussian() })
            let keys = toF32(keys16), values = toF32(values16)
            let tiles = tiled(keys, positions: positions, stride: stride, headDim: headDim)
            let tiles16 = tiled(keys16, positions: positions, stride: stride, headDim: headDim)
            let scale: Float = 0.125
            var failures: [String] = []
            for first in [0, 5, 16, 100] {
                for n in 1...140 {
                    let rows = first * stride..<(first + n) * stride
                    let expected = doubleSoftmaxAttention(q: q, keys: Array(keys[rows]), values: Array(values[rows]), heads: heads,
                                                          headDim: headDim, positions: n, stride: stride, scale: scale)
                    for isa in Self.paths {
                        var out32 = [Float](repeating: .nan, count: heads * headDim), out16 = out32
                        withISA(isa) {
                            nb_attention_f32(q, Int64(heads), tiles, values, Int64(stride), Int64(positions), Int64(first), Int64(n),
                                             Int64(headDim), scale, &out32, nil)
                            nb_attention_f16kv(q, Int64(heads), tiles16, values16, Int64(stride), Int64(positions), Int64(first), Int64(n),
                                               Int64(headDim), scale, &out16, nil)
                        }
                        let worst = zip(out32 + out16, expected + expected).map { abs(Double($0) - $1) }.max()!
                        if !(worst <= 5e-6) { failures.append("from \(first), \(n) positions, isa \(isa.rawValue): \(worst)") }
                    }
                }
            }
            #expect(failures.isEmpty, "\(failures.prefix(8))")
        }

        /// A split over the positions (decode with few KV heads): parts over disjoint ranges,
        /// merged by nb_attention_merge, equal the unsplit attention to rounding, with the
        /// largest score in any part, at every ISA level.
        @Test(arguments: [(2, 300, 3, 64), (3, 1000, 3, 64), (4, 257, 1, 64), (2, 700, 4, 256)])
        func splitAttentionMerges(parts: Int, positions: Int, heads: Int, headDim: Int) {
            let stride = headDim
            var rng = TestRNG(seed: UInt64(parts * 7919 + positions))
            let q = (0..<heads * headDim).map { _ in rng.gaussian() }
            let keys = tiled(toF16((0..<positions * stride).map { _ in rng.gaussian() * 1.5 }), positions: positions, stride: stride,
                             headDim: headDim)
            let values = toF16((0..<positions * stride).map { _ in rng.gaussian() })
            let n = Int64(positions), g = Int64(heads)
            for isa in Self.paths {
                var whole = [Float](repeating: .nan, count: heads * headDim)
                var partial = [Float](repeating: .nan, count: parts * heads * headDim)
                var ml = [Float](repeating: .nan, count: parts * heads * 2), merged = whole
                withISA(isa) {
                    nb_attention_f16kv(q, g, keys, values, Int64(stride), n, 0, n, Int64(headDim), 0.125, &whole, nil)
                    for p in 0..<parts {  // positions lo..<hi: from slot lo of the whole cache (lo need not start a tile)
                        let lo = positions * p / parts, hi = positions * (p + 1) / parts
                        partial.withUnsafeMutableBufferPointer { out in
                            ml.withUnsafeMutableBufferPointer { m in
                                nb_attention_f16kv(q, g, keys, values, Int64(stride), n, Int64(lo), Int64(hi - lo), Int64(headDim), 0.125,
                                                   out.baseAddress! + p * heads * headDim, m.baseAddress! + p * heads * 2)
                            }
                        }
                    }
                    nb_attention_merge(partial, ml, Int64(parts), g, Int64(headDim), &merged)
                }
                let worst = zip(whole, merged).map { abs($0 - $1) }.max()!
                #expect(worst <= 2e-6, "\(parts) parts of \(positions), isa \(isa.rawValue): \(worst)")
            }
        }
    }
}
