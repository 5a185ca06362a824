import CKernels
import Foundation
@testable import Quantization
import Testing

extension KernelPaths {
    /// nb_attention_job's blocks of slots (KVCache's layout, `[block][layer][head][slots]`)
    /// against each head's slots contiguous: the same keys and values give the same
    /// attention bit for bit, at every level, in every cache format.
    @Suite struct KVBlockTests {
        struct Case: CustomStringConvertible, Sendable {
            let format: Int32, headDim: Int
            var description: String { "\(["f32", "f16", "q8"][Int(format)]), head dimension \(headDim)" }
        }

        static let cases = [Case(format: Int32(NB_KV_F32), headDim: 64), Case(format: Int32(NB_KV_F16), headDim: 64),
                            Case(format: Int32(NB_KV_Q8), headDim: 64), Case(format: Int32(NB_KV_F16), headDim: 256),
                            Case(format: Int32(NB_KV_Q8), headDim: 96)]

        /// Two layers of 3 KV heads (3 query heads each) in a ring of 200 slots, blocks of 32
        /// (7, the last one short of the ring's end): decode at position 350 over the last 200
        /// positions (slots 151...199, then 0...150), whole and split in 3 parts, on layer 1
        /// (its heads after layer 0's in every block); and a prefill of 5 tokens.
        @Test(arguments: cases)
        func blocksAttendAsContiguousSlots(_ c: Case) throws {
            let (layers, heads, group, capacity, block) = (2, 3, 3, 200, 32)
            let hd = c.headDim, row = Int(nb_kv_row_bytes(c.format, Int64(hd)))
            let contiguousSlots = Int(nb_kv_slots(Int64(capacity))), blockedSlots = (capacity + block - 1) / block * block
            let blockBytes = layers * heads * block * row
            let bytes = max(layers * heads * contiguousSlots, layers * heads * blockedSlots) * row
            let keys = [UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64),
                        UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)]
            let values = [UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64),
                          UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)]
            defer { (keys + values).forEach { $0.deallocate() } }
            // Layout 0: contiguous; 1: blocks. The key tiles (f32, f16) of `slot`'s block and its index there.
            func keyTiles(_ layout: Int, _ l: Int, _ h: Int, _ s: Int) -> (UnsafeMutableRawPointer, Int) {
                layout == 0 ? (keys[0] + (l * heads + h) * contiguousSlots * row, s)
                    : (keys[1] + s / block * blockBytes + (l * heads + h) * block * row, s % block)
            }
            func valueRow(_ layout: Int, _ l: Int, _ h: Int, _ s: Int) -> UnsafeMutableRawPointer {
                layout == 0 ? values[0] + ((l * heads + h) * contiguousSlots + s) * row
                    : values[1] + s / block * blockBytes + ((l * heads + h) * block + s % block) * row
            }
            var rng = TestRNG(seed: UInt64(hd * 7 + Int(c.format)))
            for l in 0..<layers {
                for h in 0..<heads {
                    for s in 0..<capacity {
                        let k = (0..<hd).map { _ in rng.gaussian() }, v = (0..<hd).map { _ in rng.gaussian() }
                        for layout in 0..<2 {
                            let (tiles, index) = keyTiles(layout, l, h, s)
                            nb_kv_store_key(c.format, k, Int64(hd), tiles, Int64(index))
                            let dst = valueRow(layout, l, h, s)
                            switch c.format {
                            case Int32(NB_KV_F32): v.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: hd * 4) }
                            case Int32(NB_KV_F16): nb_f32_to_f16(v, dst.assumingMemoryBound(to: UInt16.self), Int64(hd))
                            default: nb_kv_q8_quantize(v, Int64(hd), dst)
                            }
                        }
                    }
                }
            }
            let qDim = heads * group * hd, tokens = 5
            let q = (0..<(tokens * qDim)).map { _ in rng.gaussian() }
            let pool = WorkerPool(threads: 1)  // the tasks on this thread, at its forced level

            /// Layer 1's attention in `layout`: `parts` 0: 5 tokens at positions 346...350 over
            /// their last 200; otherwise the token at 350, in that many parts (merged).
            func attention(_ layout: Int, parts: Int) -> [Float] {
                var out = [Float](repeating: 0, count: tokens * qDim)
                var scratch = [Float](repeating: 0, count: 3 * qDim), ml = [Float](repeating: 0, count: 3 * heads * group * 2)
                q.withUnsafeBufferPointer { q in
                    out.withUnsafeMutableBufferPointer { out in
                        scratch.withUnsafeMutableBufferPointer { scratch in
                            ml.withUnsafeMutableBufferPointer { ml in
                                var job = nb_attention_job(keys: keyTiles(layout, 1, 0, 0).0, values: valueRow(layout, 1, 0, 0),
                                                           format: c.format, capacity: Int64(capacity), head_dim: Int64(hd),
                                                           block_slots: layout == 0 ? 0 : Int64(block),
                                                           block_bytes: layout == 0 ? 0 : Int64(blockBytes),
                                                           kv_heads: Int64(heads), group: Int64(group), q: q.baseAddress, out: out.baseAddress,
                                                           q_stride: Int64(qDim), scale: 0.125, count: Int64(tokens), start: 346,
                                                           window: Int64(capacity), parts: 1, first: 0, n: 0, ml: nil)
                                if parts > 0 {
                                    job.q = q.baseAddress! + (tokens - 1) * qDim
                                    (job.count, job.start) = (1, 350)
                                }
                                if parts > 1 {
                                    (job.parts, job.first, job.n) = (Int64(parts), 151, 200)
                                    (job.out, job.ml) = (scratch.baseAddress, ml.baseAddress)
                                }
                                nb_attention_run(pool.pool, &job)
                                if parts > 1 {
                                    nb_attention_merge(scratch.baseAddress, ml.baseAddress, Int64(parts), Int64(heads * group), Int64(hd),
                                                       out.baseAddress)
                                }
                            }
                        }
                    }
                }
                return parts > 0 ? Array(out[0..<qDim]) : out
            }
            for level in allLevels {
                for parts in [0, 1, 3] {
                    let contiguous = withISA(level) { attention(0, parts: parts) }, blocked = withISA(level) { attention(1, parts: parts) }
                    #expect(contiguous.allSatisfy(\.isFinite) && contiguous.contains { $0 != 0 })
                    #expect(blocked.map(\.bitPattern) == contiguous.map(\.bitPattern), "\(c), \(isaName(level)), parts \(parts)")
                }
            }
        }
    }
}
