import CKernels
import Quantization

/// Keys and values of every layer: f32 at precision f32, f16 at every other precision
/// (DESIGN.md), or q8 when asked (`--kv-cache q8`): each head's row of keys is then its
/// headDim int8 codes and an f32 scale per 32 (`KVCacheType.rowBytes`).
///
/// Each layer has its own capacity. A full-attention layer holds every position of the
/// context; a sliding-window layer holds only its window (plus one prefill batch) as a
/// ring: position p lives in slot p mod capacity. Layout per layer:
/// `[kvHead][slot][headDim]`, so the keys of one KV head are one contiguous run that
/// attention streams from start to end (with `[slot][kvHeads × headDim]` it read 128 of
/// every 384 bytes on SmolLM2 and ran 1.6× slower from memory); a head's value in slot s is
/// at `(head * slots + s) * rowBytes` bytes, where `slots` is the capacity rounded up to
/// whole tiles of `NB_KV_TILE`. f32 and f16 keys are in those tiles, transposed
/// (`nb_kv_key_index`: element d of 16 slots side by side), so that attention scores 8 or
/// 16 positions with one chain of vector FMAs and no reductions; q8 keys are rows. Pages are committed only as slots are used:
/// the cache is in 4 KiB pages, not huge ones (`HugePages`), since every 2 MiB of it holds
/// slots of several heads and all of it would be committed with the first token. (In huge
/// pages decode at 1,024 tokens was about 4 % faster on SmolLM2, and a Gemma 3 process at
/// a 1,024-token context 7 MiB larger: BENCHMARKS.md, 2026-12-05 21:30.)
public final class KVCache: @unchecked Sendable {
    public let layerCount: Int
    /// Slots per layer.
    public let capacities: [Int]
    public let kvDim: Int
    /// Elements per head (kvDim / KV heads).
    public let headDim: Int
    public let type: KVCacheType
    /// Bytes of one head's keys (or values) in one slot.
    public let rowBytes: Int
    /// Byte offset of each layer's first slot.
    private let layerOffsets: [Int]
    private let keys: AlignedBuffer
    private let values: AlignedBuffer

    public var byteCount: Int { keys.byteCount + values.byteCount }

    /// Bytes a cache of these capacities takes (what `Footprint` counts).
    public static func byteCount(capacities: [Int], kvDim: Int, headDim: Int, type: KVCacheType) -> Int {
        2 * capacities.reduce(0) { $0 + Int(nb_kv_slots(Int64($1))) } * type.bytesPerPosition(kvDim: kvDim, headDim: headDim)
    }

    /// `headDim` divides `kvDim` (the default, kvDim: one KV head).
    /// - Precondition: `type.supports(headDim:)` (Footprint.plan checks it for a model).
    public init(capacities: [Int], kvDim: Int, headDim: Int? = nil, type: KVCacheType) throws {
        precondition(capacities.allSatisfy { $0 >= 1 })
        precondition(kvDim % (headDim ?? kvDim) == 0)
        layerCount = capacities.count
        self.capacities = capacities
        self.kvDim = kvDim
        self.headDim = headDim ?? kvDim
        precondition(type.supports(headDim: self.headDim))
        self.type = type
        rowBytes = type.rowBytes(headDim: self.headDim)
        var offsets: [Int] = []
        var total = 0
        for c in capacities {
            offsets.append(total)
            total += Int(nb_kv_slots(Int64(c))) * type.bytesPerPosition(kvDim: kvDim, headDim: self.headDim)
        }
        layerOffsets = offsets
        guard let keys = AlignedBuffer(byteCount: total), let values = AlignedBuffer(byteCount: total) else {
            throw QuantizationError.outOfMemory(bytes: 2 * total, what: "the KV cache")
        }
        self.keys = keys
        self.values = values
    }

    /// A cache with the same capacity for every layer (no sliding window).
    public convenience init(layerCount: Int, capacity: Int, kvDim: Int, headDim: Int? = nil, type: KVCacheType) throws {
        try self.init(capacities: [Int](repeating: capacity, count: layerCount), kvDim: kvDim, headDim: headDim, type: type)
    }

    @inline(__always)
    private func offset(_ layer: Int, head: Int, slot: Int) -> Int {
        layerOffsets[layer] + (head * Int(nb_kv_slots(Int64(capacities[layer]))) + slot) * rowBytes
    }

    /// The keys of KV head `head` of `layer`: `nb_kv_slots(capacity)` slots in tiles (f32,
    /// f16) or rows (q8), as `nb_kv_store_key` writes them.
    @inline(__always)
    public func keys(layer: Int, head: Int) -> UnsafeMutableRawPointer { keys.pointer + offset(layer, head: head, slot: 0) }

    @inline(__always)
    public func values(layer: Int, head: Int, slot: Int) -> UnsafeMutableRawPointer {
        values.pointer + offset(layer, head: head, slot: slot)
    }

    /// Stores `count` positions of f32 keys and values starting at `position`.
    /// - Precondition: `count <= capacities[layer]`.
    func store(layer: Int, position: Int, count: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>) {
        let capacity = capacities[layer]
        precondition(count <= capacity)
        var done = 0
        while done < count {
            // Up to the end of the ring, then from slot 0.
            let slot = (position + done) % capacity
            let n = min(count - done, capacity - slot)
            // Position i's head h comes from (done + i) * kvDim + h * headDim.
            for h in 0..<(kvDim / headDim) {
                let kd = keys(layer: layer, head: h)
                for i in 0..<n {
                    let from = (done + i) * kvDim + h * headDim
                    nb_kv_store_key(type.kernelFormat, k + from, Int64(headDim), kd, Int64(slot + i))
                    let vd = values(layer: layer, head: h, slot: slot + i)
                    switch type {
                    case .f32: vd.copyMemory(from: v + from, byteCount: headDim * 4)
                    case .f16: nb_f32_to_f16(v + from, vd.assumingMemoryBound(to: UInt16.self), Int64(headDim))
                    case .q8: nb_kv_q8_quantize(v + from, Int64(headDim), vd)
                    }
                }
            }
            done += n
        }
        // Decode: the lines the next layer's store will write (the first layer's, at the next
        // position, after the last), fetched while the layers in between run. A line last
        // written a token ago is back in memory by now, and the store's misses were the caller's
        // alone: SmolLM2 q4 decode, nb_kv_store_key and the values' conversion 0.48 → 0.28 % of
        // the samples.
        if count == 1 {
            let next = layer + 1 < layerCount ? layer + 1 : 0, at = next == layer + 1 ? position : position + 1
            let slot = at % capacities[next]
            for h in 0..<(kvDim / headDim) {
                nb_kv_prefetch_store(type.kernelFormat, keys(layer: next, head: h), values(layer: next, head: h, slot: slot),
                                     Int64(headDim), Int64(slot))
            }
        }
    }

    /// Whether, after positions `0..<written` were stored, a new sequence can keep the
    /// first `kept` of them and go on from there: every layer must still hold the keys
    /// that position `kept` will attend to (the last `window − 1` positions before it on
    /// a sliding layer). A later position that overwrote one of them in the ring means
    /// the history has to be read again from the start.
    func canKeep(_ kept: Int, of written: Int, windows: [Int?]) -> Bool {
        for (l, capacity) in capacities.enumerated() {
            guard written > capacity else { continue }  // nothing overwritten yet
            let needed = windows[l].map { max(0, kept - $0 + 1) } ?? 0
            // Slots hold positions written − capacity ..< written.
            if needed < kept && needed < written - capacity { return false }
        }
        return true
    }
}
