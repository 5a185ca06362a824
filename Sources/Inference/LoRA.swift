import CKernels
import Foundation
import ModelFiles

/// A LoRA adapter checked against a loaded model and applied unmerged: each adapted
/// projection computes y = W·x + s·B(A·x), with A and B in f32 beside the base weights
/// at whatever precision they run (QLoRA's arrangement), so taking the adapter off is
/// instant and the base is never touched.
public final class LoRAAdapter: @unchecked Sendable {
    /// The path the user gave.
    public let path: String
    public let format: LoRAAdapterFile.Format
    /// sha256 of the weights file.
    public let sha256: String
    /// Adapted weights (GGUF names).
    public var targets: [String] { pairs.keys.sorted() }
    /// Parameters (A and B elements).
    public let parameterCount: Int
    /// The largest rank.
    public let maxRank: Int

    struct Pair {
        let rank, inputs, outputs: Int
        let a: [Float]  // rank × inputs
        let b: [Float]  // outputs × rank
        let scale: Float
    }

    private let pairs: [String: Pair]
    /// A·x for a batch (maxBatch × maxRank) and B·(A·x) (maxBatch × widest output).
    private var low: [Float]
    private var wide: [Float]

    /// Reads the adapter at `path` and checks each pair against the model's tensor.
    /// - Throws: `ModelFileError` for an unreadable file, `EngineError.adapterDoesNotFit`
    ///   naming the module and both shapes.
    init(path: String, source: any ModelSource, config: ModelConfig, maxBatch: Int) throws {
        let file = try LoRAAdapterFile(path: path, base: LoRABase(architecture: config.architecture, headCount: config.headCount,
                                                                  kvHeadCount: config.kvHeadCount))
        var pairs: [String: Pair] = [:]
        var widest = 0, maxRank = 0, parameters = 0
        for p in file.pairs {
            guard let tensor = source.tensor(named: p.target) else {
                throw EngineError.adapterDoesNotFit(path: path, module: p.module, reason: "the model has no \(p.target)")
            }
            // GGUF shape [columns, rows]: the weight is rows × columns = outputs × inputs.
            let rows = tensor.shape.count >= 2 ? tensor.shape[1] : 1, columns = tensor.shape[0]
            guard rows == p.outputs, columns == p.inputs else {
                throw EngineError.adapterDoesNotFit(path: path, module: p.module,
                                                    reason: "the model's \(p.target) is \(rows)×\(columns) (out×in) and the adapter's B·A is \(p.outputs)×\(p.inputs)")
            }
            pairs[p.target] = Pair(rank: p.rank, inputs: p.inputs, outputs: p.outputs, a: p.a, b: p.b, scale: p.scale)
            widest = max(widest, p.outputs)
            maxRank = max(maxRank, p.rank)
            parameters += p.a.count + p.b.count
        }
        self.path = path
        format = file.format
        sha256 = file.sha256
        self.pairs = pairs
        self.maxRank = maxRank
        parameterCount = parameters
        low = [Float](repeating: 0, count: maxBatch * maxRank)
        wide = [Float](repeating: 0, count: maxBatch * widest)
    }

    /// Bytes A and B take.
    public var byteCount: Int { 4 * parameterCount }

    /// Adds s·B[rows]·(A·x) to y for `count` tokens: x is count × inputs, y count × rows.count
    /// (row stride `rows.count`). No-op when `target` is not adapted.
    func apply(_ target: LoRATarget, x: UnsafePointer<Float>, count: Int, y: UnsafeMutablePointer<Float>) {
        guard let p = pairs[target.tensor] else { return }
        let rows = target.rows ?? 0..<p.outputs
        let width = rows.count
        low.withUnsafeMutableBufferPointer { low in
            wide.withUnsafeMutableBufferPointer { wide in
                p.a.withUnsafeBufferPointer { a in
                    nb_matmul_f32(a.baseAddress!, x, low.baseAddress!, Int64(p.inputs), Int64(count), Int64(p.rank), 0, Int64(p.rank))
                }
                p.b.withUnsafeBufferPointer { b in
                    nb_matmul_f32(b.baseAddress! + rows.lowerBound * p.rank, low.baseAddress!, wide.baseAddress!, Int64(p.rank),
                                  Int64(count), Int64(width), 0, Int64(width))
                }
                for t in 0..<count {
                    nb_axpy_f32(p.scale, wide.baseAddress! + t * width, y + t * width, Int64(width))
                }
            }
        }
    }
}

/// Which weight (GGUF name) a projection multiplies by, and which of its rows when the
/// file fuses several projections in one tensor (Phi-3's and GPT-2's `attn_qkv`).
struct LoRATarget {
    let tensor: String
    let rows: Range<Int>?

    init(_ tensor: String, rows: Range<Int>? = nil) {
        self.tensor = tensor
        self.rows = rows
    }
}
