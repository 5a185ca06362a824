import CKernels
import Synchronization

/// How a weight matrix stores its values (DESIGN.md, "Precision formats"). The
/// engine's architecture code only sees `WeightMatrix`; formats live here and in
/// CKernels, whose format table (`nb_formats` in formats.c) describes each one: block
/// geometry, bits per weight, the GGML type it keeps, the activations it multiplies with,
/// packing and kernels. The cases mirror the C enum `nb_format` in order (a test checks
/// every name and number); the raw value is the table's name.
///
/// Adding a format: its block struct and enum value in CKernels.h, one row in
/// `nb_formats` with its kernels, a case here at the same position, and its place in
/// `precisionOrder`.
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
    // GGML's own blocks, kept as the file stores them at the `native` precision (no
    // packer: they are never produced from f32, so they are not precisions by themselves).
    /// GGML Q4_0: 32 × 4 bits, f16 scale, value d·(q − 8).
    case q4_0
    /// GGML Q5_0: 32 × 5 bits, f16 scale, value d·(q − 16).
    case q5_0
    /// GGML Q5_1: 32 × 5 bits, f16 scale and min.
    case q5_1
    /// GGML Q4_K: 256 × 4 bits in 8 sub-blocks with 6-bit scales and mins.
    case q4_K
    /// GGML Q5_K: Q4_K with a fifth bit.
    case q5_K
    /// GGML Q6_K: 256 × 6 bits in 16 sub-blocks with int8 scales.
    case q6_K

    var c: nb_format { nb_format(rawValue: UInt32(WeightFormat.allCases.firstIndex(of: self)!)) }

    /// The C table's row.
    var info: nb_format_info { nb_format_get(c)!.pointee }

    /// From most to least precise, for "never above the source's own". The K-quants rank
    /// above the plain formats of their size (llama.cpp's perplexity tables).
    public static let precisionOrder: [WeightFormat] = [.f32, .f16, .bf16, .q8, .q6_K, .q5_K, .q5_1, .q5_0, .q4_K, .q4, .q4_0, .nf4, .q2]
    var rank: Int { WeightFormat.precisionOrder.firstIndex(of: self)! }
    public static func < (a: WeightFormat, b: WeightFormat) -> Bool { a.rank > b.rank }

    /// The formats that can be made from f32 values: the concrete precisions.
    public static let selectable: [WeightFormat] = allCases.filter(\.isPackable)

    /// Whether `nb_pack` produces it from f32 (every format but GGML's native blocks).
    public var isPackable: Bool { info.packable != 0 }

    /// Elements per block.
    public var blockSize: Int { Int(info.block) }

    /// The GGML type number (ggml.h's `ggml_type`) whose blocks are this format's bytes.
    public var ggmlTypeNumber: UInt32? { info.ggml_type >= 0 ? UInt32(info.ggml_type) : nil }

    /// The format that keeps GGML type `number`'s blocks unchanged.
    public init?(ggmlTypeNumber number: UInt32) {
        let f = nb_format_of_ggml(number)
        guard f >= 0 else { return nil }
        self = WeightFormat.allCases[Int(f)]
    }

    /// Bytes taken by a `rows × columns` matrix in the format's blocks (a file's layout),
    /// side arrays included.
    public func byteCount(rows: Int, columns: Int) -> Int {
        Int(nb_format_bytes(c, Int64(rows), Int64(columns)))
    }

    /// Whether a matrix of rows of `columns` is kept interleaved in memory (q8, q4, q4_0, q5_0,
    /// q5_1, q2, nf4, q4_K, q5_K, q6_K: groups of 16 rows whose blocks the kernels read with
    /// aligned loads; CKernels.h,
    /// "interleaved weights"). Only on x86, whose SIMD levels read the layout: elsewhere the
    /// kernels are the scalar path, which would turn every group back into blocks per product.
    public func interleaves(columns: Int) -> Bool {
        #if arch(x86_64)
        nb_interleaved_bytes(c, 1, Int64(columns)) > 0
        #else
        false
        #endif
    }

    /// Bytes a `WeightMatrix` of this shape holds: the interleaved layout's (whole groups of
    /// 16 rows) where the format has one, else `byteCount`.
    public func storedByteCount(rows: Int, columns: Int) -> Int {
        interleaves(columns: columns) ? Int(nb_interleaved_bytes(c, Int64(rows), Int64(columns))) : byteCount(rows: rows, columns: columns)
    }

    /// Storage bits per weight for a typical matrix (4096 × 4096).
    public var bitsPerWeight: Double { info.bits_per_weight }

    /// What the kernels multiply with.
    var activation: nb_activation { info.activation }

    /// Whether activations are quantised to int8 blocks before the product.
    public var quantizesActivations: Bool { activation != NB_ACT_F32 }

    /// Whether rows are packed independently (every format but nf4, whose absmax
    /// statistics are double-quantised across the whole matrix).
    var rowsIndependent: Bool { info.rows_independent != 0 }
}

public enum QuantizationError: Error, CustomStringConvertible {
    case outOfMemory(bytes: Int, what: String)
    case unsupportedShape(what: String, columns: Int, format: WeightFormat)
    /// `format` keeps a file's blocks; it cannot be made from f32 values.
    case notPackable(what: String, format: WeightFormat)

    public var description: String {
        switch self {
        case let .outOfMemory(bytes, what): "cannot allocate \(bytes / (1 << 20)) MiB for \(what)"
        case let .unsupportedShape(what, columns, format):
            "\(what): rows of \(columns) weights cannot be stored as \(format.rawValue) (it needs a multiple of \(format.blockSize))"
        case let .notPackable(what, format):
            "\(what): \(format.rawValue) keeps GGML blocks as a file stores them and cannot be made from other values"
        }
    }
}

/// Scratch for one product: the activations quantised for each activation kind (int8
/// blocks of 32, nb_q8a, and of 256, nb_q8k), one region per kind, so a fused product over
/// matrices of different formats quantises once per kind.
public final class ActivationScratch: @unchecked Sendable {
    private let q8a: UnsafeMutableRawPointer
    private let q8k: UnsafeMutableRawPointer
    private let q8aBytes: Int, q8kBytes: Int
    private let buffer: AlignedBuffer

    /// Bytes of scratch for `tokens × columns` activations (columns rounded up to whole blocks).
    public static func byteCount(tokens: Int, columns: Int) -> Int {
        regions(tokens: tokens, columns: columns).q8a + regions(tokens: tokens, columns: columns).q8k
    }

    private static func regions(tokens: Int, columns: Int) -> (q8a: Int, q8k: Int) {
        let a = nb_activation_bytes(NB_ACT_Q8A, Int64(tokens), Int64((columns + 31) / 32 * 32))
        let k = nb_activation_bytes(NB_ACT_Q8K, Int64(tokens), Int64((columns + 255) / 256 * 256))
        return ((a + 63) / 64 * 64, (k + 63) / 64 * 64)
    }

    /// Room for `tokens × columns` activations.
    public init(tokens: Int, columns: Int) throws {
        (q8aBytes, q8kBytes) = ActivationScratch.regions(tokens: tokens, columns: columns)
        guard let buffer = AlignedBuffer(byteCount: q8aBytes + q8kBytes) else {
            throw QuantizationError.outOfMemory(bytes: q8aBytes + q8kBytes, what: "activation scratch")
        }
        self.buffer = buffer
        q8a = buffer.pointer
        q8k = buffer.pointer + q8aBytes
    }

    public var byteCount: Int { buffer.byteCount }

    /// `x` (tokens × columns) quantised for `kind` into its region.
    func quantize(_ kind: nb_activation, _ x: UnsafePointer<Float>, tokens: Int, columns: Int) -> UnsafeRawPointer {
        let region = kind == NB_ACT_Q8K ? q8k : q8a
        precondition(nb_activation_bytes(kind, Int64(tokens), Int64(columns)) <= (kind == NB_ACT_Q8K ? q8kBytes : q8aBytes),
                     "activation scratch too small")
        nb_quantize_for(kind, x, Int64(tokens), Int64(columns), region)
        return UnsafeRawPointer(region)
    }
}

/// A `rows × columns` matrix (rows = output features; each row is one contiguous run of
/// `columns` weights, as in GGUF and PyTorch's `Linear.weight`) in one `WeightFormat`.
/// The block formats (q8, q4, q4_0, q5_0, q5_1, q2, nf4 and the K-quants) are held interleaved
/// (`WeightFormat.interleaves`): the GGML blocks are
/// rearranged at load, and given back by `packedBytes`.
public final class WeightMatrix: @unchecked Sendable {
    public let format: WeightFormat
    public let rows: Int
    public let columns: Int
    /// Whether `storage` is the interleaved layout rather than the format's blocks.
    public let interleaved: Bool
    private let storage: AlignedBuffer

    /// Bytes held in memory.
    public var byteCount: Int { storage.byteCount }

    /// The weights in the format's blocks, as a file stores them (to compare with a file's
    /// blocks, or write them out): a copy.
    public var packedBytes: [UInt8] {
        guard interleaved else { return Array(UnsafeRawBufferPointer(start: storage.pointer, count: storage.byteCount)) }
        return [UInt8](unsafeUninitializedCapacity: format.byteCount(rows: rows, columns: columns)) { out, count in
            nb_deinterleave(format.c, Int64(rows), Int64(columns), storage.pointer, 0, Int64(rows), out.baseAddress)
            count = out.count
        }
    }

    /// Copies bytes that are already in `format`'s layout (a Q8_0 tensor as q8, Q4_1 as q4,
    /// Q4_K as q4_K...).
    /// - Parameters:
    ///   - arena: where the matrix's memory comes from (a model's matrices share huge
    ///     pages); nil: a buffer of its own.
    ///   - copied: called after each slab of up to 8 MiB with the part of
    ///     `packed` just copied, so a caller copying out of a mapped file can let those
    ///     pages go at once (the copy and the file never both hold a large tensor).
    public init(format: WeightFormat, rows: Int, columns: Int, name: String, packed: UnsafeRawBufferPointer,
                arena: WeightArena? = nil, copied: (UnsafeRawBufferPointer) -> Void = { _ in }) throws {
        self.format = format
        self.rows = rows
        self.columns = columns
        interleaved = format.interleaves(columns: columns)
        let bytes = format.byteCount(rows: rows, columns: columns)
        precondition(packed.count == bytes, "\(name): \(packed.count) bytes given, \(bytes) expected")
        let stored = format.storedByteCount(rows: rows, columns: columns)
        guard let storage = WeightMatrix.storage(stored, arena) else { throw QuantizationError.outOfMemory(bytes: stored, what: name) }
        if interleaved && !format.rowsIndependent {  // nf4: the whole matrix at once (its side arrays are global)
            nb_interleave(format.c, Int64(rows), Int64(columns), packed.baseAddress, 0, Int64(rows), storage.pointer)
            copied(packed)
        } else if interleaved {  // slabs of whole groups of rows, about 8 MiB
            let rowBytes = format.byteCount(rows: 1, columns: columns)
            let slabRows = max(16, (8 << 20) / rowBytes / 16 * 16)
            var row = 0
            while row < rows {
                let n = min(slabRows, rows - row)
                let slab = UnsafeRawBufferPointer(rebasing: packed[(row * rowBytes)..<((row + n) * rowBytes)])
                nb_interleave(format.c, Int64(rows), Int64(columns), slab.baseAddress, Int64(row), Int64(n), storage.pointer)
                copied(slab)
                row += n
            }
        } else {
            var done = 0
            while done < bytes {
                let n = min(8 << 20, bytes - done)
                (storage.pointer + done).copyMemory(from: packed.baseAddress! + done, byteCount: n)
                copied(UnsafeRawBufferPointer(rebasing: packed[done..<(done + n)]))
                done += n
            }
        }
        self.storage = storage
    }

    private static func storage(_ bytes: Int, _ arena: WeightArena?) -> AlignedBuffer? {
        arena.map { $0.allocate(byteCount: bytes) } ?? AlignedBuffer(byteCount: bytes)
    }

    /// Builds the matrix by asking `fill(rowRange, out)` for f32 rows (it writes
    /// `rowRange.count × columns` floats) and packing them into `format`, in parallel:
    /// `fill` is called concurrently for disjoint row ranges (`arena` as above).
    /// - Throws: `QuantizationError` when memory cannot be had or the shape does not fit
    ///   the format; whatever `fill` throws.
    public init(format: WeightFormat, rows: Int, columns: Int, name: String, pool: WorkerPool, arena: WeightArena? = nil,
                fill: (Range<Int>, UnsafeMutablePointer<Float>) throws -> Void) throws {
        self.format = format
        self.rows = rows
        self.columns = columns
        interleaved = format.interleaves(columns: columns)
        let bytes = format.byteCount(rows: rows, columns: columns)
        if !format.isPackable { throw QuantizationError.notPackable(what: name, format: format) }
        if bytes == 0 { throw QuantizationError.unsupportedShape(what: name, columns: columns, format: format) }
        let stored = format.storedByteCount(rows: rows, columns: columns)
        guard let storage = WeightMatrix.storage(stored, arena) else { throw QuantizationError.outOfMemory(bytes: stored, what: name) }
        self.storage = storage
        if format == .f32 {
            try fill(0..<rows, storage.typed(Float.self))
            return
        }
        // f32 staging in slabs of rows (whole groups of 16 when interleaving), packed in parallel.
        var slab = format.rowsIndependent ? max(1, min(rows, (8 << 20) / (4 * columns))) : rows
        if interleaved && format.rowsIndependent { slab = max(16, slab / 16 * 16) }
        // nf4 interleaved: its blocks are packed after the f32 rows in the same buffer (a
        // separate one per matrix fragmented the heap: +27 MiB of peak RSS at nf4).
        let packedAt = (slab * columns * 4 + 63) / 64 * 64
        let stagingBytes = interleaved && !format.rowsIndependent ? packedAt + bytes : slab * columns * 4
        guard let staging = AlignedBuffer(byteCount: stagingBytes, mapped: true) else {
            throw QuantizationError.outOfMemory(bytes: stagingBytes, what: name)
        }
        let f = staging.typed(Float.self)
        let rowBytes = format.rowsIndependent ? format.byteCount(rows: 1, columns: columns) : 0
        var start = 0
        while start < rows {
            let n = min(slab, rows - start)
            if format.rowsIndependent {
                // Each chunk of rows (whole groups when interleaving: chunks share no group) is
                // filled and packed by the thread that claims it.
                let out = storage.pointer + start * rowBytes
                let failure = FirstError()
                pool.parallelChunks(n, granularity: interleaved ? 16 : 1) { range in
                    do {
                        try fill((start + range.lowerBound)..<(start + range.upperBound), f + range.lowerBound * columns)
                    } catch {
                        failure.record(error)
                        return
                    }
                    if interleaved {
                        nb_pack_interleaved(format.c, f + range.lowerBound * columns, Int64(rows), Int64(columns),
                                            Int64(start + range.lowerBound), Int64(range.count), storage.pointer)
                    } else {
                        nb_pack(format.c, f + range.lowerBound * columns, Int64(range.count), Int64(columns), out + range.lowerBound * rowBytes)
                    }
                }
                if let error = failure.error { throw error }
            } else {
                try fill(start..<(start + n), f)
                // nf4: the whole matrix at once; the packer splits its blocks over the pool.
                if interleaved {  // packed, then interleaved
                    nb_pack_nf4(f, Int64(rows), Int64(columns), NB_NF4_SEARCH, pool.pool, staging.pointer + packedAt)
                    nb_interleave(format.c, Int64(rows), Int64(columns), staging.pointer + packedAt, 0, Int64(rows), storage.pointer)
                } else {
                    nb_pack_nf4(f, Int64(rows), Int64(columns), NB_NF4_SEARCH, pool.pool, storage.pointer)
                }
            }
            start += n
        }
    }

    /// Writes row `r` as f32 (`columns` values) — the embedding lookup.
    public func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(r >= 0 && r < rows)
        if interleaved {
            nb_unpack_row_interleaved(format.c, storage.pointer, Int64(rows), Int64(columns), Int64(r), out)
        } else {
            nb_unpack_row(format.c, storage.pointer, Int64(rows), Int64(columns), Int64(r), out)
        }
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
    /// the pool: the activations are quantised once per activation kind the matrices'
    /// formats need (a Q4_K_M file mixes Q4_K, Q6_K and Q5_0 matrices in one layer), and the
    /// rows of all the matrices are split across the threads together, which saves a pool
    /// round trip per matrix in the decode loop. The matrices must share `columns`.
    public static func multiply(_ a: (WeightMatrix, UnsafeMutablePointer<Float>),
                                _ b: (WeightMatrix, UnsafeMutablePointer<Float>)?,
                                _ c: (WeightMatrix, UnsafeMutablePointer<Float>)?,
                                x: UnsafePointer<Float>, batch: Int, pool: WorkerPool, scratch: ActivationScratch) {
        let first = a.0
        precondition((b.map { $0.0.columns == first.columns } ?? true) && (c.map { $0.0.columns == first.columns } ?? true),
                     "fused products need one shape")
        // Each activation kind in use, quantised once.
        func uses(_ kind: nb_activation) -> Bool {
            a.0.format.activation == kind || b?.0.format.activation == kind || c?.0.format.activation == kind
        }
        let q8a = uses(NB_ACT_Q8A) ? scratch.quantize(NB_ACT_Q8A, x, tokens: batch, columns: first.columns) : nil
        let q8k = uses(NB_ACT_Q8K) ? scratch.quantize(NB_ACT_Q8K, x, tokens: batch, columns: first.columns) : nil
        // What the threads need of each matrix, as plain values: the C pool runs the products
        // itself (a Swift closure called from both threads, or one that reached the matrices,
        // retained and released them on every piece: 3 % of a q4 decode's samples).
        func product(_ m: (WeightMatrix, UnsafeMutablePointer<Float>), base: Int) -> nb_product {
            let kind = m.0.format.activation
            return nb_product(fmt: m.0.format.c, interleaved: m.0.interleaved ? 1 : 0, w: UnsafeRawPointer(m.0.storage.pointer),
                              rows: Int64(m.0.rows), base: Int64(base), y: m.1, xq: kind == NB_ACT_Q8A ? q8a : kind == NB_ACT_Q8K ? q8k : nil)
        }
        let rows = first.rows + (b?.0.rows ?? 0) + (c?.0.rows ?? 0)
        // Pieces of about 1 MiB of weights: SmolLM2's q4 and q8 layers are one piece per
        // thread, the head (30 MiB at q8) and the f32 matrices (up to 7 MiB) several, which the
        // threads balance at the end (decode measured in nb_pool_run_ranges' note). Against
        // 256 KiB, SmolLM2 decode on Zen 3 with the piece size alternating token by token in
        // one process: q4 2 %, q8 3 % faster, f32 the same; 64 KiB 5 %, 32 KiB 13 % slower
        // (each piece's stream starts cold). 16 MiB (no piece of SmolLM2's q4 and q8 matrices
        // to steal) was another 2–4 % faster there, but took f32's balance away, which on
        // Zen 5 made f32 decode 6–8 % slower.
        let bytes = first.byteCount + (b?.0.byteCount ?? 0) + (c?.0.byteCount ?? 0)
        let piece = max(1, (1 << 20) * rows / max(bytes, 1) / 16)
        withExtendedLifetime((a.0, b?.0, c?.0)) {
            withUnsafeTemporaryAllocation(of: nb_product.self, capacity: 3) { p in  // on the stack: no allocation per product
                p[0] = product(a, base: 0)
                var count = 1
                if let b {
                    p[count] = product(b, base: first.rows)
                    count += 1
                }
                if let c {
                    p[count] = product(c, base: first.rows + (b?.0.rows ?? 0))
                    count += 1
                }
                nb_matmul_fused(pool.pool, p.baseAddress, Int32(count), x, Int64(first.columns), Int64(batch), 16, Int64(piece))
            }
        }
    }
}

/// The first error thrown by any of several concurrent tasks.
private final class FirstError: Sendable {
    private let first = Mutex<Error?>(nil)

    func record(_ error: Error) { first.withLock { if $0 == nil { $0 = error } } }

    var error: Error? { first.withLock { $0 } }
}
