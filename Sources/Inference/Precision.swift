import ModelFiles
import Quantization

/// A precision asked for by name (DESIGN.md, "Precision names").
public enum Precision: String, Sendable, CaseIterable, Codable {
    case f32, f16, bf16, q8, q4, nf4, q2
    /// The format nearest to how the file stores its linear weights.
    case native
    /// The highest precision that fits in memory, never above the source's own.
    case auto

    /// Parses a name or alias: 32 → f32, 16 → bf16, 8 → q8, 4 → q4, 2 → q2.
    public init?(argument: String) {
        switch argument.lowercased() {
        case "32", "fp32": self = .f32
        case "16": self = .bf16
        case "fp16": self = .f16
        case "8", "int8": self = .q8
        case "4", "int4": self = .q4
        case "2", "int2": self = .q2
        default:
            guard let p = Precision(rawValue: argument.lowercased()) else { return nil }
            self = p
        }
    }

    /// The format of a concrete precision (nil for `native` and `auto`).
    public var format: WeightFormat? { WeightFormat(rawValue: rawValue) }

    /// Every concrete precision, most precise first.
    public static let concrete: [Precision] = [.f32, .f16, .bf16, .q8, .q4, .nf4, .q2]

    public init(_ format: WeightFormat) { self = Precision(rawValue: format.rawValue)! }
}

/// Which format each tensor of a model takes at one precision, and whether its bytes
/// can be copied from the file as they are.
///
/// Two kinds of plan:
/// - `WeightPlan(linear:)`, the concrete precisions: every linear layer in one packable
///   format, re-quantised from the dequantised values unless the file's blocks already
///   are that format (Q8_0 → q8, Q4_1 → q4, F16 → f16; Q4_0 → q4 converted exactly).
/// - `WeightPlan.native(_:)`, the `native` precision: each matrix keeps its own GGML
///   blocks where a format does (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K,
///   Q6_K), so the weights take the file's bytes; the types that have no format (Q2_K,
///   Q3_K, IQ4_NL, IQ4_XS) are dequantised and packed as q8. A file whose matrices all map
///   to what one concrete precision would give is that precision's plan.
/// The element type of the KV cache.
public enum KVCacheType: String, Sendable, CaseIterable, Codable {
    /// q8: q8_0's blocks of 32 (d = max|x| / 127, codes round(x / d)) with d kept in f32
    /// after the row's codes, as llama.cpp's `--cache-type-k/v q8_0`: 1.125 bytes an element
    /// against f16's 2, so long contexts take 56 % of the memory and decode reads that much.
    case f32, f16, q8

    /// Elements per q8 block: a q8 cache needs head dimensions that are multiples of it.
    public static let q8Block = 32

    /// Bytes of one KV head's row of `headDim` keys (or values).
    public func rowBytes(headDim: Int) -> Int {
        switch self {
        case .f32: 4 * headDim
        case .f16: 2 * headDim
        case .q8: headDim + headDim / Self.q8Block * 4
        }
    }

    /// Bytes of one position's keys (or values) in one layer.
    public func bytesPerPosition(kvDim: Int, headDim: Int) -> Int { kvDim / headDim * rowBytes(headDim: headDim) }

    /// Whether heads of `headDim` elements can be stored at this type.
    public func supports(headDim: Int) -> Bool { self != .q8 || headDim % Self.q8Block == 0 }

    /// f32 when the weights are f32 (full precision end to end), else f16 (llama.cpp's default).
    public static func `default`(for linear: WeightFormat) -> KVCacheType { linear == .f32 ? .f32 : .f16 }
}

public struct WeightPlan: Sendable, Equatable {
    /// The format of the transformer blocks' linear layers; for a native plan, the one
    /// that holds most of their weights (what `Engine.format` reports).
    public let linear: WeightFormat
    /// The token (and GPT-2's position) embedding and output head: q8 or better when the linear layers go to
    /// 4 bits or below (as llama.cpp's mixes and bitsandbytes' skipped lm_head do).
    public let embedding: WeightFormat
    /// A native plan's format for every matrix tensor, by name; empty for the others.
    public let tensorFormats: [String: WeightFormat]
    /// The KV cache's element type: f32 at f32, f16 at every other precision, unless
    /// `withKVCache` chose (eval compares precisions at one KV type, as llama.cpp does).
    public private(set) var kvCache: KVCacheType
    /// Whether each tensor keeps its own format (`native` on a file of mixed types).
    public var isNative: Bool { !tensorFormats.isEmpty }
    /// "native" for a native plan, else the linear format's name.
    public var name: String { isNative ? "native" : linear.rawValue }

    public init(linear: WeightFormat) {
        self.linear = linear
        switch linear {
        case .q4, .nf4, .q2: embedding = .q8
        default: embedding = linear
        }
        tensorFormats = [:]
        kvCache = .default(for: linear)
    }

    private init(linear: WeightFormat, embedding: WeightFormat, tensorFormats: [String: WeightFormat]) {
        self.linear = linear
        self.embedding = embedding
        self.tensorFormats = tensorFormats
        kvCache = .default(for: linear)
    }

    /// This plan with its KV cache in `type` (nil: the precision's default).
    public func withKVCache(_ type: KVCacheType?) -> WeightPlan {
        var plan = self
        plan.kvCache = type ?? .default(for: linear)
        return plan
    }

    public func format(ofTensor name: String) -> WeightFormat {
        if let format = tensorFormats[name] { return format }
        return name == "token_embd.weight" || name == "output.weight" || name == "position_embd.weight" ? embedding : linear
    }

    /// The format that keeps a GGML type's blocks byte for byte (Q4_K → q4_K...), if any.
    public static func nativeFormat(of type: GGMLType) -> WeightFormat? { WeightFormat(ggmlTypeNumber: type.rawValue) }

    /// The concrete precision whose layout a ggml type already has, so its blocks are
    /// copied (Q8_0 → q8, Q4_1 → q4) or converted exactly (Q4_0 → q4 with m = −8·d).
    public static func exactFormat(of type: GGMLType) -> WeightFormat? {
        if type == .q4_0 { return .q4 }
        return nativeFormat(of: type).flatMap { $0.isPackable ? $0 : nil }
    }

    /// The `native` plan of a model's tensors (name, type, GGUF shape).
    public static func native(tensors: [(name: String, type: GGMLType, shape: [Int])]) -> WeightPlan {
        var formats: [String: WeightFormat] = [:]
        var counts: [WeightFormat: Int] = [:]
        for t in tensors where t.shape.count >= 2 && t.shape[1] > 1 {
            let format = nativeFormat(of: t.type) ?? .q8
            formats[t.name] = format
            if Footprint.isLinear(name: t.name, shape: t.shape) { counts[format, default: 0] += t.shape.reduce(1, *) }
        }
        // Most weights; ties go to the more precise format.
        let linear = counts.max { $0.value < $1.value || ($0.value == $1.value && $0.key < $1.key) }?.key ?? .f32
        let uniform = WeightPlan(linear: linear)
        if linear.isPackable && formats.allSatisfy({ uniform.format(ofTensor: $0.key) == $0.value }) { return uniform }
        let embedding = formats["token_embd.weight"] ?? uniform.embedding
        return WeightPlan(linear: linear, embedding: embedding, tensorFormats: formats)
    }

    /// "q4" for a concrete plan; for a native one, the format of most linear weights and
    /// the others it mixes in ("q5_0 with q4_K, q6_K, q8_0").
    public var summary: String {
        guard isNative else { return linear.rawValue }
        let others = Set(tensorFormats.values).subtracting([linear]).map(\.rawValue).sorted()
        return others.isEmpty ? linear.rawValue : "\(linear.rawValue) with \(others.joined(separator: ", "))"
    }

    /// The `native` plan of `file`.
    public static func native(_ file: any ModelSource) -> WeightPlan {
        native(tensors: file.tensors.map { ($0.name, $0.type, $0.shape) })
    }

    /// The format that holds most of the file's linear weights as they are (Q4_1 → q4,
    /// Q5_0 → q5_0, Q4_K → q4_K...; types without a format → q8).
    public static func nativeFormat(of file: any ModelSource) -> WeightFormat { native(file).linear }
}

extension WeightPlan {
    /// Loads one 2-D tensor of `file` as this plan stores it (for `nibble quantize`).
    public func matrix(file: any ModelSource, tensor: GGUFTensorInfo, pool: WorkerPool) throws -> WeightMatrix {
        try WeightLoader.matrix(file: file, tensor: tensor, format: format(ofTensor: tensor.name), pool: pool)
    }
}
