import CKernels

/// How a weight matrix stores its values. The engine's architecture code only sees
/// `WeightMatrix`; formats are added here without touching it.
public enum WeightFormat: String, Sendable, CaseIterable {
    /// 32-bit IEEE floats, the reference that must match transformers.
    case f32

    /// Storage bits per weight, block overhead included.
    public var bitsPerWeight: Double {
        switch self {
        case .f32: 32
        }
    }

    /// Bytes taken by a `rows × columns` matrix.
    public func byteCount(rows: Int, columns: Int) -> Int {
        switch self {
        case .f32: rows * columns * 4
        }
    }
}

public enum QuantizationError: Error, CustomStringConvertible {
    case outOfMemory(bytes: Int, what: String)

    public var description: String {
        switch self {
        case let .outOfMemory(bytes, what): "cannot allocate \(bytes / (1 << 20)) MiB for \(what)"
        }
    }
}

/// A `rows × columns` matrix (rows = output features; each row is one contiguous run of
/// `columns` weights, as in GGUF and PyTorch's `Linear.weight`) in one `WeightFormat`.
public final class WeightMatrix: @unchecked Sendable {
    public let format: WeightFormat
    public let rows: Int
    public let columns: Int
    private let storage: AlignedBuffer

    /// Bytes of packed weights.
    public var byteCount: Int { format.byteCount(rows: rows, columns: columns) }

    /// Builds the matrix by asking `source` for f32 rows (`fill(rowRange, out)` writes
    /// `rowRange.count × columns` floats) and converting them to `format`.
    /// - Throws: `QuantizationError.outOfMemory` when the buffer cannot be allocated.
    public init(format: WeightFormat, rows: Int, columns: Int, name: String,
                fill: (Range<Int>, UnsafeMutablePointer<Float>) throws -> Void) throws {
        self.format = format
        self.rows = rows
        self.columns = columns
        let bytes = format.byteCount(rows: rows, columns: columns)
        guard let storage = AlignedBuffer(byteCount: bytes) else {
            throw QuantizationError.outOfMemory(bytes: bytes, what: name)
        }
        self.storage = storage
        switch format {
        case .f32:
            try fill(0..<rows, storage.typed(Float.self))
        }
    }

    /// Writes row `r` as f32 (`columns` values) — the embedding lookup.
    public func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(r >= 0 && r < rows)
        switch format {
        case .f32:
            out.update(from: storage.typed(Float.self) + r * columns, count: columns)
        }
    }

    /// `y[t, :] = W · x[t, :]` for `t` in `0..<batch`: x is `batch × columns`, y is
    /// `batch × rows`, both row-major. One token is a matrix-vector product (decode);
    /// several are a matrix-matrix product (prefill). Rows are split across the pool.
    public func multiply(_ x: UnsafePointer<Float>, batch: Int, into y: UnsafeMutablePointer<Float>, pool: WorkerPool) {
        switch format {
        case .f32:
            let w = UnsafePointer(storage.typed(Float.self))
            let k = Int64(columns), ldy = Int64(rows)
            pool.parallelChunks(rows, granularity: 16) { range in
                if batch == 1 {
                    nb_matvec_f32(w, x, y, k, Int64(range.lowerBound), Int64(range.upperBound))
                } else {
                    nb_matmul_f32(w, x, y, k, Int64(batch), ldy, Int64(range.lowerBound), Int64(range.upperBound))
                }
            }
        }
    }
}
