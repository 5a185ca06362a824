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
public struct WeightPlan: Sendable, Equatable {
    /// The format of the transformer blocks' linear layers.
    public let linear: WeightFormat
    /// The token (and GPT-2's position) embedding and output head: q8 or better when the linear layers go to
    /// 4 bits or below (as llama.cpp's mixes and bitsandbytes' skipped lm_head do).
    public let embedding: WeightFormat
    /// The KV cache: f32 at f32, f16 at every other precision.
    public var kvBytesPerElement: Int { linear == .f32 ? 4 : 2 }

    public init(linear: WeightFormat) {
        self.linear = linear
        switch linear {
        case .q4, .nf4, .q2: embedding = .q8
        default: embedding = linear
        }
    }

    public func format(ofTensor name: String) -> WeightFormat {
        name == "token_embd.weight" || name == "output.weight" || name == "position_embd.weight" ? embedding : linear
    }

    /// The format whose layout a ggml type already has, so its blocks are copied
    /// (Q8_0 → q8, Q4_1 → q4) or converted exactly (Q4_0 → q4 with m = −8·d).
    public static func exactFormat(of type: GGMLType) -> WeightFormat? {
        switch type {
        case .f32: .f32
        case .f16: .f16
        case .bf16: .bf16
        case .q8_0: .q8
        case .q4_0, .q4_1: .q4
        default: nil
        }
    }

    /// The precision nearest to how the file stores its linear weights: F32 → f32,
    /// F16 → f16, BF16 → bf16, Q8_0 → q8, Q4_0/Q4_1 → q4; Q5_x and K-quants → q8
    /// until they run as they are.
    public static func nativeFormat(of file: any ModelSource) -> WeightFormat {
        var counts: [GGMLType: Int] = [:]
        for t in file.tensors where Footprint.isLinear(t) { counts[t.type, default: 0] += t.elementCount }
        guard let dominant = counts.max(by: { $0.value < $1.value })?.key else { return .f32 }
        return exactFormat(of: dominant) ?? .q8
    }
}

extension WeightPlan {
    /// Loads one 2-D tensor of `file` as this plan stores it (for `nibble quantize`).
    public func matrix(file: any ModelSource, tensor: GGUFTensorInfo, pool: WorkerPool) throws -> WeightMatrix {
        try WeightLoader.matrix(file: file, tensor: tensor, format: format(ofTensor: tensor.name), pool: pool)
    }
}
