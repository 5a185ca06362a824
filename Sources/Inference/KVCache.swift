import Quantization

/// Keys and values of every layer for positions `0..<capacity`, f32.
///
/// Layout per layer: `[position][kvHeads × headDim]`, so one position's keys are
/// contiguous (written once per token) and a head's key at position j is at
/// `j * kvDim + head * headDim`. The buffer is zero-filled by `calloc`-like lazy pages:
/// memory is committed only as positions are used.
public final class KVCache: @unchecked Sendable {
    public let layerCount: Int
    public let capacity: Int
    public let kvDim: Int
    private let keys: AlignedBuffer
    private let values: AlignedBuffer

    public var byteCount: Int { keys.byteCount + values.byteCount }

    public init(layerCount: Int, capacity: Int, kvDim: Int) throws {
        self.layerCount = layerCount
        self.capacity = capacity
        self.kvDim = kvDim
        let count = layerCount * capacity * kvDim
        guard let keys = AlignedBuffer(byteCount: count * 4), let values = AlignedBuffer(byteCount: count * 4) else {
            throw QuantizationError.outOfMemory(bytes: 2 * count * 4, what: "the KV cache")
        }
        self.keys = keys
        self.values = values
    }

    /// Keys of `layer` starting at position `position`.
    @inline(__always)
    public func keys(layer: Int, position: Int) -> UnsafeMutablePointer<Float> {
        keys.typed(Float.self) + (layer * capacity + position) * kvDim
    }

    @inline(__always)
    public func values(layer: Int, position: Int) -> UnsafeMutablePointer<Float> {
        values.typed(Float.self) + (layer * capacity + position) * kvDim
    }
}
