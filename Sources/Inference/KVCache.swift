import CKernels
import Quantization

/// Keys and values of every layer: f32 at precision f32, f16 at every other precision
/// (DESIGN.md), or q8 when asked (`--kv-cache q8`): each head's row of keys is then its
/// headDim int8 codes and an f32 scale per 32 (`KVCacheType.rowBytes`).
///
/// Each layer has its own capacity. A full-attention layer holds every position of the
/// context; a sliding-window layer holds only its window (plus one prefill batch) as a
/// ring: position p lives in slot p mod capacity.
///
/// Layout: the slots come in blocks of `blockSlots` (256), and the layers of one capacity
/// lie block by block: `[block][layer][kvHead][blockSlots slots][headDim]`. Within a block,
/// the keys of one KV head are one contiguous run that attention streams from start to end
/// (with `[slot][kvHeads × headDim]` it read 128 of every 384 bytes on SmolLM2 and ran 1.6×
/// slower from memory). f32 and f16 keys are in tiles of `NB_KV_TILE` slots, transposed
/// (`nb_kv_key_index`: element d of 16 slots side by side), so that attention scores 8 or
/// 16 positions with one chain of vector FMAs and no reductions; q8 keys are rows.
///
/// The cache is in transparent huge pages (`HugePages`): decode reads all of it every
/// token, and in 4 KiB pages that is a TLB miss every 4 KiB (attention 4–19 % slower;
/// BENCHMARKS.md, 2026-12-07 04:05). Blocks keep it committed as it fills:
/// positions 0..<256 of every layer are the first blocks, and a huge page is committed
/// only when a position in it is first stored. (Laid out by layer and head, every 2 MiB
/// would hold slots of several heads, and the first token would commit all of it.) The
/// first 2 MiB stay in 4 KiB pages (`smallHead`), so a short conversation commits what it
/// uses: in a huge page, Gemma 3's first 32 positions committed 4 MiB where they take
/// 0.6, past `make test`'s bound on peak RSS.
/// A layer of `blockSlots` or fewer is one block of its capacity rounded up to whole tiles
/// (`geometry`: a longer ring may have narrower blocks).
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
    /// Slots per block (a power of two, a multiple of `NB_KV_TILE`).
    public let blockSlots: Int
    /// Per layer: the byte offset of its head 0, slot 0; its block's width in slots
    /// (`blockSlots`, or the whole layer when it is one block); the bytes from one of its
    /// blocks to the next.
    private let layout: [(base: Int, width: Int, stride: Int)]
    private let keys: AlignedBuffer
    private let values: AlignedBuffer

    public var byteCount: Int { keys.byteCount + values.byteCount }

    public static let defaultBlockSlots = 256

    /// The slots a layer of `capacity` takes and its blocks' width: one block of whole tiles
    /// up to `blockSlots`; above, whole blocks of `blockSlots`, or of the widest power of two
    /// below it that wastes at most 1/16 of the capacity (Gemma 3's rings of 575 slots: 9
    /// blocks of 64, where blocks of 256 would leave 193 slots unused).
    static func geometry(capacity: Int, blockSlots: Int) -> (slots: Int, width: Int) {
        if capacity <= blockSlots {
            let slots = Int(nb_kv_slots(Int64(capacity)))
            return (slots, slots)
        }
        func whole(_ w: Int) -> Int { (capacity + w - 1) / w * w }
        var width = blockSlots
        while width > Int(NB_KV_TILE) && whole(width) - capacity > capacity / 16 { width /= 2 }
        return (whole(width), width)
    }

    /// Bytes a cache of these capacities takes (what `Footprint` counts).
    public static func byteCount(capacities: [Int], kvDim: Int, headDim: Int, type: KVCacheType,
                                 blockSlots: Int = defaultBlockSlots) -> Int {
        2 * capacities.reduce(0) { $0 + geometry(capacity: $1, blockSlots: blockSlots).slots } * type.bytesPerPosition(kvDim: kvDim, headDim: headDim)
    }

    /// `headDim` divides `kvDim` (the default, kvDim: one KV head).
    /// - Precondition: `type.supports(headDim:)` (Footprint.plan checks it for a model);
    ///   `blockSlots` a power of two and a multiple of `NB_KV_TILE`.
    public init(capacities: [Int], kvDim: Int, headDim: Int? = nil, type: KVCacheType, blockSlots: Int = defaultBlockSlots) throws {
        precondition(capacities.allSatisfy { $0 >= 1 })
        precondition(kvDim % (headDim ?? kvDim) == 0)
        precondition(blockSlots > 0 && blockSlots & (blockSlots - 1) == 0 && blockSlots % Int(NB_KV_TILE) == 0)
        layerCount = capacities.count
        self.capacities = capacities
        self.kvDim = kvDim
        self.headDim = headDim ?? kvDim
        precondition(type.supports(headDim: self.headDim))
        self.type = type
        self.blockSlots = blockSlots
        rowBytes = type.rowBytes(headDim: self.headDim)
        // The layers of one slot count together, block by block, in the order they first come.
        let geometry = capacities.map { Self.geometry(capacity: $0, blockSlots: blockSlots) }
        let perPosition = type.bytesPerPosition(kvDim: kvDim, headDim: self.headDim)
        var layout = [(base: Int, width: Int, stride: Int)](repeating: (0, 0, 0), count: capacities.count)
        var total = 0, seen = Set<[Int]>()
        for (n, width) in geometry where seen.insert([n, width]).inserted {
            let group = geometry.indices.filter { geometry[$0] == (n, width) }
            let stride = group.count * width * perPosition
            for (i, l) in group.enumerated() { layout[l] = (total + i * width * perPosition, width, stride) }
            total += n / width * stride
        }
        self.layout = layout
        guard let keys = AlignedBuffer(byteCount: total, hugePages: true, smallHead: true),
              let values = AlignedBuffer(byteCount: total, hugePages: true, smallHead: true) else {
            throw QuantizationError.outOfMemory(bytes: 2 * total, what: "the KV cache")
        }
        self.keys = keys
        self.values = values
    }

    /// A cache with the same capacity for every layer (no sliding window).
    public convenience init(layerCount: Int, capacity: Int, kvDim: Int, headDim: Int? = nil, type: KVCacheType) throws {
        try self.init(capacities: [Int](repeating: capacity, count: layerCount), kvDim: kvDim, headDim: headDim, type: type)
    }

    /// Byte offset of `head`'s slot `slot` of `layer` (of the key tile it is in, for f32 and f16 keys).
    @inline(__always)
    private func offset(_ layer: Int, head: Int, slot: Int) -> Int {
        let (base, width, stride) = layout[layer]
        return base + slot / width * stride + (head * width + slot % width) * rowBytes
    }

    /// What `nb_attention_job` needs of layer `layer`: head 0's keys and values at slot 0,
    /// `block_slots` (0: one block) and `block_bytes`.
    func attentionLayout(layer: Int) -> (keys: UnsafeRawPointer, values: UnsafeRawPointer, blockSlots: Int64, blockBytes: Int64) {
        let (base, width, stride) = layout[layer]
        let oneBlock = Self.geometry(capacity: capacities[layer], blockSlots: blockSlots).slots == width
        return (UnsafeRawPointer(keys.pointer + base), UnsafeRawPointer(values.pointer + base),
                oneBlock ? 0 : Int64(width), oneBlock ? 0 : Int64(stride))
    }

    /// The keys of KV head `head` of `layer` in the block that holds `slot`, as `nb_kv_store_key`
    /// takes them, and the slot's index in that block.
    @inline(__always)
    func keyBlock(layer: Int, head: Int, slot: Int) -> (UnsafeMutableRawPointer, Int) {
        let width = layout[layer].width
        return (keys.pointer + offset(layer, head: head, slot: slot / width * width), slot % width)
    }

    @inline(__always)
    func values(layer: Int, head: Int, slot: Int) -> UnsafeMutableRawPointer {
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
                for i in 0..<n {
                    let from = (done + i) * kvDim + h * headDim
                    let (kd, index) = keyBlock(layer: layer, head: h, slot: slot + i)
                    nb_kv_store_key(type.kernelFormat, k + from, Int64(headDim), kd, Int64(index))
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
                let (kd, index) = keyBlock(layer: next, head: h, slot: slot)
                nb_kv_prefetch_store(type.kernelFormat, kd, values(layer: next, head: h, slot: slot), Int64(headDim), Int64(index))
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
