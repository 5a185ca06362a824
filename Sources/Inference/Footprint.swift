import Foundation
import ModelFiles
import Quantization

/// Memory a model needs at one precision, computed from the tensor table alone, so it
/// works for files far too large to load.
public struct Footprint: Sendable, Codable, Equatable {
    public var name: String
    /// All weights, as the engine stores them.
    public var weightBytes: Int
    /// Only the transformer blocks' linear (matrix) weights.
    public var linearWeightBytes: Int
    public var kvBytesPerToken: Int
    /// weights + KV cache at the context length + activation scratch.
    public var totalBytes: Int
    public var fits: Bool

    enum CodingKeys: String, CodingKey {
        case name, weightBytes = "weight_bytes", linearWeightBytes = "linear_weight_bytes"
        case kvBytesPerToken = "kv_bytes_per_token", totalBytes = "total_bytes", fits
    }

    /// Whether a tensor is one of the blocks' linear layers (quantised at low precision).
    public static func isLinear(_ t: GGUFTensorInfo) -> Bool {
        t.name.hasPrefix("blk.") && t.name.hasSuffix(".weight") && t.shape.count >= 2 && t.shape[1] > 1
    }

    public static func estimate(file: GGUFFile, config: ModelConfig, precision: Precision, context: Int, memoryLimit: Int) -> Footprint {
        let format = precision.format
        var weights = 0, linear = 0
        for t in file.tensors {
            let isMatrix = t.shape.count >= 2 && t.shape[1] > 1
            // Norms and biases stay f32; matrices take the precision's format.
            let bytes = isMatrix ? format.byteCount(rows: t.elementCount / t.shape[0], columns: t.shape[0]) : 4 * t.elementCount
            weights += bytes
            if isLinear(t) { linear += bytes }
        }
        let kvPerToken = config.layerCount * 2 * config.kvDim * 4
        let scratch = 4 * Engine.prefillChunk * (2 * config.embeddingLength + 2 * config.qDim + 2 * config.feedForwardLength + config.vocabSize)
        let total = weights + kvPerToken * context + scratch
        return Footprint(name: precision.rawValue, weightBytes: weights, linearWeightBytes: linear,
                         kvBytesPerToken: kvPerToken, totalBytes: total, fits: total <= memoryLimit)
    }
}

/// The memory Nibble may use: MemAvailable or the cgroup limit, whichever is lower,
/// less 10 % (DESIGN.md, `--memory-limit` default).
public enum MemoryLimit {
    public static func detect() -> Int {
        var limit = Int.max
        if let meminfo = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = meminfo.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
           let kb = Int(line.split(separator: " ").dropFirst().first ?? "") {
            limit = kb * 1024
        }
        for path in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            if let text = try? String(contentsOfFile: path, encoding: .utf8),
               let bytes = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                limit = min(limit, bytes)
            }
        }
        if limit == Int.max { limit = Int(ProcessInfo.processInfo.physicalMemory) }
        return limit / 10 * 9
    }

    /// Reads the resident set size of this process (VmRSS), in bytes.
    public static func residentBytes() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Int(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kb * 1024
    }
}
