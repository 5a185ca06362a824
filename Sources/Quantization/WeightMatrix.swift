import CKernels
import Synchronization

/// How a weight matrix stores its values (DESIGN.md, "Precision formats"). The
/// engine's architecture code only sees `WeightMatrix`; formats live here and in
/// CKernels.
public enum WeightFormat: String, Sendable, CaseIterable, Comparable {
    /// 32-bit IEEE floats, the reference that must match transformers.
    case f32
    case f16
    case bf16
    /// Blocks of 32 int8 with an f16 scale; byte-identical to GGML Q8_0.
    case q8
    /// Blocks of 32 uint4 with f16 scale and min; byte-identical to GGML Q4_1.
    case q4
    /// Blocks of 64 NormalFloat-4 codes, absmax double-quantised (QLoRA / bitsandbytes'
    /// layout and decoding), each block's scale searched for the lowest error.
    case nf4
    /// Groups of 64 2-bit codes with f16 scale and min.
    case q2

    var c: nb_format {
        switch self {
        case .f32: NB_FMT_F32
        case .f16: NB_FMT_F16
        case .bf16: NB_FMT_BF16
        case .q8: NB_FMT_Q8
        case .q4: NB_FMT_Q4
        case .nf4: NB_FMT_NF4
        case .q2: NB_FMT_Q2
        }
    }

    /// Rank from most to least precise, for "never above the source's own".
    var rank: Int { WeightFormat.allCases.firstIndex(of: self)! }
    public static func < (a: WeightFormat, b: WeightFormat) -> Bool { a.rank > b.rank }

    /// Bytes taken by a `rows × columns` matrix, side arrays included.
    public func byteCount(rows: Int, columns: Int) -> Int {
        Int(nb_format_bytes(c, Int64(rows), Int64(columns)))
    }

    /// Storage bits per weight for a typical matrix.
    public var bitsPerWeight: Double { Double(byteCount(rows: 4096, columns: 4096) * 8) / (4096 * 4096) }

    /// Whether activations are quantised to int8 blocks before the product.
    public var quantizesActivations: Bool { nb_format_wants_q8a(c) != 0 }

    /// Whether rows are packed independently (every format but nf4, whose absmax
    /// statistics are double-quantised across the whole matrix).
    var rowsIndependent: Bool { self != .nf4 }
}

public enum QuantizationError: Error, CustomStringConvertible {
    case outOfMemory(bytes: Int, what: String)
    case unsupportedShape(what: String, columns: Int, format: WeightFormat)

    public var description: String {
        switch self {
        case let .outOfMemory(bytes, what): "cannot allocate \(bytes / (1 << 20)) MiB for \(what)"
        case let .unsupportedShape(what, columns, format):
            "\(what): rows of \(columns) weights cannot be stored as \(format.rawValue) (q8 and q4 need a multiple of 32, nf4 and q2 of 64)"
        }
    }
}

/// Scratch for one product: the activations quantised to int8 blocks.
public final class ActivationScratch: @unchecked Sendable {
    let blocks: UnsafeMutablePointer<nb_q8a>
    let capacity: Int
    private let buffer: AlignedBuffer

    /// Room for `tokens × columns` activations.
    public init(tokens: Int, columns: Int) throws {
        capacity = tokens * ((columns + 31) / 32)
        guard let buffer = AlignedBuffer(byteCount: capacity * MemoryLayout<nb_q8a>.stride) else {
            throw QuantizationError.outOfMemory(bytes: capacity * MemoryLayout<nb_q8a>.stride, what: "activation scratch")
        }
        self.buffer = buffer
        blocks = buffer.typed(nb_q8a.self)
    }

    public var byteCount: Int { buffer.byteCount }
}

/// A `rows × columns` matrix (rows = output features; each row is one contiguous run of
/// `columns` weights, as in GGUF and PyTorch's `Linear.weight`) in one `WeightFormat`.
public final class WeightMatrix: @unchecked Sendable {
    public let format: WeightFormat
    public let rows: Int
    public let columns: Int
    private let storage: AlignedBuffer

    /// Bytes of packed weights.
    public var byteCount: Int { storage.byteCount }

    /// The packed bytes (to compare with a file's blocks, or write them out).
    public var packedBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: storage.pointer, count: storage.byteCount) }

    /// Copies bytes that are already in `format`'s layout (a Q8_0 tensor as q8, Q4_1 as q4).
    public init(format: WeightFormat, rows: Int, columns: Int, name: String, packed: UnsafeRawBufferPointer) throws {
        self.format = format
        self.rows = rows
        self.columns = columns
        let bytes = format.byteCount(rows: rows, columns: columns)
        precondition(packed.count == bytes, "\(name): \(packed.count) bytes given, \(bytes) expected")
        guard let storage = AlignedBuffer(byteCount: bytes) else { throw QuantizationError.outOfMemory(bytes: bytes, what: name) }
        storage.pointer.copyMemory(from: packed.baseAddress!, byteCount: bytes)
        self.storage = storage
    }

    /// Builds the matrix by asking `fill(rowRange, out)` for f32 rows (it writes
    /// `rowRange.count × columns` floats) and packing them into `format`, in parallel:
    /// `fill` is called concurrently for disjoint row ranges.
    /// - Throws: `QuantizationError` when memory cannot be had or the shape does not fit
    ///   the format; whatever `fill` throws.
    public init(format: WeightFormat, rows: Int, columns: Int, name: String, pool: WorkerPool,
                fill: (Range<Int>, UnsafeMutablePointer<Float>) throws -> Void) throws {
        self.format = format
        self.rows = rows
        self.columns = columns
        let bytes = format.byteCount(rows: rows, columns: columns)
        if bytes == 0 { throw QuantizationError.unsupportedShape(what: name, columns: columns, format: format) }
        guard let storage = AlignedBuffer(byteCount: bytes) else { throw QuantizationError.outOfMemory(bytes: bytes, what: name) }
        self.storage = storage
        if format == .f32 {
            try fill(0..<rows, storage.typed(Float.self))
            return
        }
        // f32 staging in slabs of rows, packed in parallel.
        let slab = format.rowsIndependent ? max(1, min(rows, (8 << 20) / (4 * columns))) : rows
        guard let staging = AlignedBuffer(byteCount: slab * columns * 4) else {
            throw QuantizationError.outOfMemory(bytes: slab * columns * 4, what: name)
        }
        let f = staging.typed(Float.self)
        let rowBytes = format.rowsIndependent ? format.byteCount(rows: 1, columns: columns) : 0
        var start = 0
        while start < rows {
            let n = min(slab, rows - start)
            if format.rowsIndependent {
                // Each chunk of rows is filled and packed by the thread that claims it.
                let out = storage.pointer + start * rowBytes
                let failure = FirstError()
                pool.parallelChunks(n) { range in
                    do {
                        try fill((start + range.lowerBound)..<(start + range.upperBound), f + range.lowerBound * columns)
                    } catch {
                        failure.record(error)
                        return
                    }
                    nb_pack(format.c, f + range.lowerBound * columns, Int64(range.count), Int64(columns), out + range.lowerBound * rowBytes)
                }
                if let error = failure.error { throw error }
            } else {
                try fill(start..<(start + n), f)
                // nf4: the whole matrix at once; the packer splits its blocks over the pool.
                nb_pack_nf4(f, Int64(rows), Int64(columns), NB_NF4_SEARCH, pool.pool, storage.pointer)
            }
            start += n
        }
    }

    /// Writes row `r` as f32 (`columns` values) — the embedding lookup.
    public func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(r >= 0 && r < rows)
        nb_unpack_row(format.c, storage.pointer, Int64(rows), Int64(columns), Int64(r), out)
    }

    /// `y[t, :] = W · x[t, :]` for `t` in `0..<batch`: x is `batch × columns`, y is
    /// `batch × rows`, both row-major. One token is a matrix-vector product (decode);
    /// several are a matrix-matrix product (prefill). Rows are split across the pool.
    /// `scratch` holds the quantised activations for the integer formats.
    public func multiply(_ x: UnsafePointer<Float>, batch: Int, into y: UnsafeMutablePointer<Float>,
                         pool: WorkerPool, scratch: ActivationScratch) {
        WeightMatrix.multiply((self, y), nil, nil, x: x, batch: batch, pool: pool, scratch: scratch)
    }

    /// Up to three products with the same input (Q, K, V; gate, up) in one dispatch to
    /// the pool: the activations are quantised once and the rows of all the matrices are
    /// split across the threads together, which saves a pool round trip per matrix in
    /// the decode loop. The matrices must share `columns` and `format`.
    public static func multiply(_ a: (WeightMatrix, UnsafeMutablePointer<Float>),
                                _ b: (WeightMatrix, UnsafeMutablePointer<Float>)?,
                                _ c: (WeightMatrix, UnsafeMutablePointer<Float>)?,
                                x: UnsafePointer<Float>, batch: Int, pool: WorkerPool, scratch: ActivationScratch) {
        let first = a.0
        precondition((b.map { $0.0.columns == first.columns && $0.0.format == first.format } ?? true)
                     && (c.map { $0.0.columns == first.columns && $0.0.format == first.format } ?? true),
                     "fused products need one shape and format")
        var xq: UnsafePointer<nb_q8a>? = nil
        if first.format.quantizesActivations {
            precondition(batch * first.columns / 32 <= scratch.capacity)
            nb_quantize_activations(x, Int64(batch), Int64(first.columns), scratch.blocks)
            xq = UnsafePointer(scratch.blocks)
        }
        let rowsA = first.rows, rowsB = b?.0.rows ?? 0, rowsC = c?.0.rows ?? 0
        let k = Int64(first.columns), n = Int64(batch), fmt = first.format.c
        // Runs rows [lo, hi) of the concatenation that fall in one matrix starting at `base`.
        func run(_ m: (WeightMatrix, UnsafeMutablePointer<Float>), base: Int, _ lo: Int, _ hi: Int) {
            let begin = max(lo, base) - base, end = min(hi, base + m.0.rows) - base
            guard begin < end else { return }
            nb_matmul(fmt, UnsafeRawPointer(m.0.storage.pointer), Int64(m.0.rows), k, x, xq, m.1, n, Int64(m.0.rows),
                      Int64(begin), Int64(end))
        }
        pool.parallelChunks(rowsA + rowsB + rowsC, granularity: 16) { range in
            run(a, base: 0, range.lowerBound, range.upperBound)
            if let b { run(b, base: rowsA, range.lowerBound, range.upperBound) }
            if let c { run(c, base: rowsA + rowsB, range.lowerBound, range.upperBound) }
        }
    }
}

/// The first error thrown by any of several concurrent tasks.
private final class FirstError: Sendable {
    private let first = Mutex<Error?>(nil)

    func record(_ error: Error) { first.withLock { if $0 == nil { $0 = error } } }

    var error: Error? { first.withLock { $0 } }
}
