import CKernels
import Quantization

/// Keys and values of every layer: f32 at precision f32, f16 at every other precision
/// (DESIGN.md).
///
/// Each layer has its own capacity. A full-attention layer holds every position of the
/// context; a sliding-window layer holds only its window (plus one prefill batch) as a
/// ring: position p lives in slot p mod capacity. Layout per layer:
/// `[slot][kvHeads × headDim]`, so one position's keys are contiguous (written once per
/// token) and a head's key in slot s is at `s * kvDim + head * headDim`. Pages are
/// committed only as slots are used.
public final class KVCache: @unchecked Sendable {
    public let layerCount: Int
    /// Slots per layer.
    public let capacities: [Int]
    public let kvDim: Int
    /// 4 (f32) or 2 (f16).
    public let elementBytes: Int
    /// Byte offset of each layer's first slot.
    private let layerOffsets: [Int]
    private let keys: AlignedBuffer
    private let values: AlignedBuffer

    public var byteCount: Int { keys.byteCount + values.byteCount }

    /// Bytes a cache of these capacities takes (what `Footprint` counts).
    public static func byteCount(capacities: [Int], kvDim: Int, elementBytes: Int) -> Int {
        2 * capacities.reduce(0, +) * kvDim * elementBytes
    }

    public init(capacities: [Int], kvDim: Int, elementBytes: Int) throws {
        precondition(elementBytes == 4 || elementBytes == 2)
        precondition(capacities.allSatisfy { $0 >= 1 })
        layerCount = capacities.count
        self.capacities = capacities
        self.kvDim = kvDim
        self.elementBytes = elementBytes
        var offsets: [Int] = []
        var total = 0
        for c in capacities {
            offsets.append(total)
            total += c * kvDim * elementBytes
        }
        layerOffsets = offsets
        guard let keys = AlignedBuffer(byteCount: total), let values = AlignedBuffer(byteCount: total) else {
            throw QuantizationError.outOfMemory(bytes: 2 * total, what: "the KV cache")
        }
        self.keys = keys
        self.values = values
    }

    /// A cache with the same capacity for every layer (no sliding window).
    public convenience init(layerCount: Int, capacity: Int, kvDim: Int, elementBytes: Int) throws {
        try self.init(capacities: [Int](repeating: capacity, count: layerCount), kvDim: kvDim, elementBytes: elementBytes)
    }

    @inline(__always)
    private func offset(_ layer: Int, slot: Int) -> Int { layerOffsets[layer] + slot * kvDim * elementBytes }

    /// Keys of `layer` in `slot` (f32 or f16 per `elementBytes`).
    @inline(__always)
    public func keys(layer: Int, slot: Int) -> UnsafeMutableRawPointer { keys.pointer + offset(layer, slot: slot) }

    @inline(__always)
    public func values(layer: Int, slot: Int) -> UnsafeMutableRawPointer { values.pointer + offset(layer, slot: slot) }

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
            let elements = n * kvDim, from = done * kvDim
            if elementBytes == 4 {
                keys(layer: layer, slot: slot).copyMemory(from: k + from, byteCount: elements * 4)
                values(layer: layer, slot: slot).copyMemory(from: v + from, byteCount: elements * 4)
            } else {
                nb_f32_to_f16(k + from, keys(layer: layer, slot: slot).assumingMemoryBound(to: UInt16.self), Int64(elements))
                nb_f32_to_f16(v + from, values(layer: layer, slot: slot).assumingMemoryBound(to: UInt16.self), Int64(elements))
            }
            done += n
        }
    }

    /// Attention of `heads` query heads that share KV head `kvHead` (`q`: heads × headDim
    /// floats) of `layer` over positions `first...last`, written to `out` (likewise).
    /// - Precondition: those positions are still in the layer's ring.
    func attend(layer: Int, kvHead: Int, heads: Int, headDim: Int, first: Int, last: Int, q: UnsafePointer<Float>, scale: Float,
                out: UnsafeMutablePointer<Float>) {
        let capacity = capacities[layer], n = last - first + 1
        precondition(n >= 1 && n <= capacity)
        let k = keys(layer: layer, slot: 0) + kvHead * headDim * elementBytes
        let v = values(layer: layer, slot: 0) + kvHead * headDim * elementBytes
        let slot = Int64(first % capacity)
        if elementBytes == 4 {
            nb_attention_f32(q, Int64(heads), k.assumingMemoryBound(to: Float.self), v.assumingMemoryBound(to: Float.self),
                             Int64(kvDim), Int64(capacity), slot, Int64(n), Int64(headDim), scale, out)
        } else {
            nb_attention_f16kv(q, Int64(heads), k.assumingMemoryBound(to: UInt16.self), v.assumingMemoryBound(to: UInt16.self),
                               Int64(kvDim), Int64(capacity), slot, Int64(n), Int64(headDim), scale, out)
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
