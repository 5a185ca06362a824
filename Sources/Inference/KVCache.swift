import CKernels
import Quantization

/// Keys and values of every layer for positions `0..<capacity`: f32 at precision f32,
/// f16 at every other precision (DESIGN.md).
///
/// Layout per layer: `[position][kvHeads × headDim]`, so one position's keys are
/// contiguous (written once per token) and a head's key at position j is at
/// `j * kvDim + head * headDim`. Pages are committed only as positions are used.
public final class KVCache: @unchecked Sendable {
    public let layerCount: Int
    public let capacity: Int
    public let kvDim: Int
    /// 4 (f32) or 2 (f16).
    public let elementBytes: Int
    private let keys: AlignedBuffer
    private let values: AlignedBuffer

    public var byteCount: Int { keys.byteCount + values.byteCount }

    public init(layerCount: Int, capacity: Int, kvDim: Int, elementBytes: Int) throws {
        precondition(elementBytes == 4 || elementBytes == 2)
        self.layerCount = layerCount
        self.capacity = capacity
        self.kvDim = kvDim
        self.elementBytes = elementBytes
        let bytes = layerCount * capacity * kvDim * elementBytes
        guard let keys = AlignedBuffer(byteCount: bytes), let values = AlignedBuffer(byteCount: bytes) else {
            throw QuantizationError.outOfMemory(bytes: 2 * bytes, what: "the KV cache")
        }
        self.keys = keys
        self.values = values
    }

    @inline(__always)
    private func offset(_ layer: Int, _ position: Int) -> Int { ((layer * capacity + position) * kvDim) * elementBytes }

    /// Keys of `layer` from `position` on (f32 or f16 per `elementBytes`).
    @inline(__always)
    public func keys(layer: Int, position: Int) -> UnsafeMutableRawPointer { keys.pointer + offset(layer, position) }

    @inline(__always)
    public func values(layer: Int, position: Int) -> UnsafeMutableRawPointer { values.pointer + offset(layer, position) }

    /// Stores `count` positions of f32 keys and values starting at `position`.
    func store(layer: Int, position: Int, count: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>) {
        let n = count * kvDim
        if elementBytes == 4 {
            keys(layer: layer, position: position).copyMemory(from: k, byteCount: n * 4)
            values(layer: layer, position: position).copyMemory(from: v, byteCount: n * 4)
        } else {
            nb_f32_to_f16(k, keys(layer: layer, position: position).assumingMemoryBound(to: UInt16.self), Int64(n))
            nb_f32_to_f16(v, values(layer: layer, position: position).assumingMemoryBound(to: UInt16.self), Int64(n))
        }
    }

    /// Attention of one query head (`q`, headDim floats) of `layer` over positions
    /// `0..<length` of KV head `kvHead`, written to `out`.
    func attend(layer: Int, kvHead: Int, headDim: Int, length: Int, q: UnsafePointer<Float>, scale: Float, out: UnsafeMutablePointer<Float>) {
        let k = keys(layer: layer, position: 0) + kvHead * headDim * elementBytes
        let v = values(layer: layer, position: 0) + kvHead * headDim * elementBytes
        if elementBytes == 4 {
            nb_attention_f32(q, k.assumingMemoryBound(to: Float.self), v.assumingMemoryBound(to: Float.self),
                             Int64(kvDim), Int64(length), Int64(headDim), scale, out)
        } else {
            nb_attention_f16kv(q, k.assumingMemoryBound(to: UInt16.self), v.assumingMemoryBound(to: UInt16.self),
                               Int64(kvDim), Int64(length), Int64(headDim), scale, out)
        }
    }
}
