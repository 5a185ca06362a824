import ModelFiles
import Quantization

/// Turns a model source's tensors into engine weights following a `WeightPlan`,
/// checking every shape against the config so that a mismatched file fails with the
/// tensor's name instead of reading out of bounds. It counts the bytes it hands out,
/// which is what the model's weights take.
public final class WeightLoader {
    let gguf: any ModelSource
    let plan: WeightPlan
    let pool: WorkerPool
    /// Asked before each matrix: true stops the load with `EngineError.cancelled`.
    let shouldStop: () -> Bool
    /// The context the engine runs with (LongRoPE picks its factors by it, as llama.cpp does).
    let contextLength: Int
    /// Bytes of the matrices and vectors loaded so far (a matrix loaded twice, e.g. a
    /// tied embedding, is counted once because it is loaded once).
    private(set) var loadedBytes = 0
    /// The matrices' memory, in huge pages: the small ones back to back in one chunk of
    /// what the plan says they take.
    let arena: WeightArena

    init(gguf: any ModelSource, plan: WeightPlan, pool: WorkerPool, contextLength: Int, shouldStop: @escaping () -> Bool = { false }) {
        self.gguf = gguf
        self.contextLength = contextLength
        self.plan = plan
        self.pool = pool
        self.shouldStop = shouldStop
        let small = gguf.tensors.reduce(0) { sum, t in
            guard t.shape.count >= 2 && t.shape[1] > 1 else { return sum }  // matrices, as Footprint counts them
            let bytes = plan.format(ofTensor: t.name).storedByteCount(rows: t.elementCount / t.shape[0], columns: t.shape[0])
            return sum + WeightArena.sliceBytes(bytes)
        }
        arena = WeightArena(smallBytes: small)
    }

    func has(_ name: String) -> Bool { gguf.tensor(named: name) != nil }

    private func tensor(_ name: String, shape: [Int]) throws -> GGUFTensorInfo {
        guard let t = gguf.tensor(named: name) else {
            // A block's tensor missing usually means `block_count` claims more blocks
            // than the file has: say so.
            var context: String?
            if name.hasPrefix("blk."), let arch = gguf.architecture, let blocks = gguf.int("\(arch).block_count") {
                context = "\(arch).block_count says \(blocks) blocks"
            }
            throw ModelFileError.missingTensor(path: gguf.path, name: name, context: context)
        }
        // Trailing dimensions of 1 are equivalent ([576] == [576, 1]).
        func trimmed(_ s: [Int]) -> [Int] { var s = s; while s.count > 1, s.last == 1 { s.removeLast() }; return s }
        guard trimmed(t.shape) == trimmed(shape) else {
            throw ModelFileError.invalidValue(path: gguf.path, key: name, reason: "has shape \(t.shape), expected \(shape)")
        }
        guard t.type.canDequantize else {
            throw ModelFileError.invalidValue(path: gguf.path, key: name, reason: "has ggml type \(t.type.name), which Nibble cannot read yet")
        }
        return t
    }

    /// A `rows × columns` matrix (GGUF shape `[columns, rows]`) in the plan's format.
    func matrix(_ name: String, rows: Int, columns: Int) throws -> WeightMatrix {
        try matrix(name, rows: 0..<rows, of: rows, columns: columns)
    }

    /// Rows `part` of a `rows × columns` matrix: one of the matrices a fused tensor
    /// holds one after the other (Phi-3's Q, K and V in `attn_qkv`, its gate and up in
    /// `ffn_up`).
    func matrix(_ name: String, rows part: Range<Int>, of rows: Int, columns: Int) throws -> WeightMatrix {
        if shouldStop() { throw EngineError.cancelled }
        precondition(part.lowerBound >= 0 && part.upperBound <= rows && !part.isEmpty)
        let t = try tensor(name, shape: [columns, rows])
        let m = try Self.matrix(file: gguf, tensor: t, rows: part, format: plan.format(ofTensor: name), pool: pool, arena: arena)
        loadedBytes += m.byteCount
        gguf.releasePages(of: Self.rows(part, of: t, in: gguf))
        return m
    }

    /// A 2-D tensor in `format`: its blocks copied when the file already has that
    /// layout (Q8_0 → q8, Q4_1 → q4, F16 → f16, BF16 → bf16, and at `native` Q4_K → q4_K
    /// etc.: `Self.keepsBlocks`), Q4_0 converted exactly to q4, anything else dequantised
    /// to f32 and packed.
    static func matrix(file: any ModelSource, tensor t: GGUFTensorInfo, format: WeightFormat, pool: WorkerPool,
                       arena: WeightArena? = nil) throws -> WeightMatrix {
        try matrix(file: file, tensor: t, rows: 0..<(t.elementCount / t.shape[0]), format: format, pool: pool, arena: arena)
    }

    /// Rows `part` of a 2-D tensor in `format` (rows of every file type are whole blocks).
    static func matrix(file: any ModelSource, tensor t: GGUFTensorInfo, rows part: Range<Int>, format: WeightFormat,
                       pool: WorkerPool, arena: WeightArena? = nil) throws -> WeightMatrix {
        let columns = t.shape[0], rows = part.count
        let data = Self.rows(part, of: t, in: file)
        if format != .f32, keepsBlocks(t.type, format) {
            return try WeightMatrix(format: format, rows: rows, columns: columns, name: t.name, packed: data, arena: arena) {
                file.releasePages(of: $0)
            }
        }
        if format == .q4, t.type == .q4_0 {
            let converted = q4_1(fromQ4_0: data)
            defer { converted.deallocate() }
            return try WeightMatrix(format: .q4, rows: rows, columns: columns, name: t.name, packed: UnsafeRawBufferPointer(converted),
                                    arena: arena)
        }
        let rowBytes = t.type.byteCount(elements: columns)!
        return try WeightMatrix(format: format, rows: rows, columns: columns, name: t.name, pool: pool, arena: arena) { range, out in
            t.type.dequantize(data.baseAddress! + range.lowerBound * rowBytes, count: range.count * columns, into: out)
        }
    }

    /// The file bytes of rows `part` of a 2-D tensor.
    static func rows(_ part: Range<Int>, of t: GGUFTensorInfo, in file: any ModelSource) -> UnsafeRawBufferPointer {
        let rowBytes = t.type.byteCount(elements: t.shape[0])!
        return UnsafeRawBufferPointer(rebasing: file.data(of: t)[(part.lowerBound * rowBytes)..<(part.upperBound * rowBytes)])
    }

    /// A vector kept in f32 at every precision (norm weights, biases).
    func vector(_ name: String, count: Int) throws -> [Float] {
        let t = try tensor(name, shape: [count])
        defer { gguf.releasePages(of: gguf.data(of: t)) }
        let v = try gguf.dequantize(t)
        loadedBytes += 4 * v.count
        return v
    }

    /// The vector when the file has it (optional biases), else nil.
    func optionalVector(_ name: String, count: Int) throws -> [Float]? {
        has(name) ? try vector(name, count: count) : nil
    }

    /// Whether a tensor of GGML type `type` is stored in `format` as the file has it: the
    /// format's blocks are that type's (the format table's GGML column).
    static func keepsBlocks(_ type: GGMLType, _ format: WeightFormat) -> Bool { format.ggmlTypeNumber == type.rawValue }

    /// Q4_0 blocks {d, qs[16]} (value d·(q − 8)) as Q4_1 blocks {d, m = −8·d, qs[16]}
    /// (value d·q + m): the same numbers, since multiplying an f16 by 8 is exact.
    static func q4_1(fromQ4_0 source: UnsafeRawBufferPointer) -> UnsafeMutableRawBufferPointer {
        let blocks = source.count / 18
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: blocks * 20, alignment: 64)
        for b in 0..<blocks {
            let d = source.loadUnaligned(fromByteOffset: b * 18, as: UInt16.self)
            let m = (-8 * Float16(bitPattern: d)).bitPattern
            out.storeBytes(of: d, toByteOffset: b * 20, as: UInt16.self)
            out.storeBytes(of: m, toByteOffset: b * 20 + 2, as: UInt16.self)
            for i in 0..<16 { out[b * 20 + 4 + i] = source[b * 18 + 2 + i] }
        }
        return out
    }
}
