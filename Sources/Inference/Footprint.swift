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
    /// KV cache bytes per token of context on the full-attention layers.
    public var kvBytesPerToken: Int
    /// The whole KV cache at the context length (sliding-window layers hold only their window).
    public var kvBytes: Int
    /// weights + KV cache at the context length + activation scratch.
    public var totalBytes: Int
    public var fits: Bool
    /// How this precision stands to the way the file stores its weights (set by `all`).
    public var versusFile: VersusFile?

    /// What running a model at some precision does to the weights its file stores.
    public enum VersusFile: String, Sendable, Codable {
        /// The file's own blocks, as they are (`native`, or the concrete precision whose
        /// plan is the native one: q4 for a Q4_1 file).
        case fileOwn = "file_own"
        /// At least as many bits per linear weight as the file: no information is lost,
        /// none can be gained (the file was quantised already).
        case noGain = "no_gain"
        /// Fewer bits per linear weight than the file: re-quantising loses information.
        case losesInformation = "loses_information"

        public var phrase: String {
            switch self {
            case .fileOwn: "the file's own"
            case .noGain: "no gain over the file"
            case .losesInformation: "loses information"
            }
        }
    }

    enum CodingKeys: String, CodingKey {
        case name, weightBytes = "weight_bytes", linearWeightBytes = "linear_weight_bytes"
        case kvBytesPerToken = "kv_bytes_per_token", kvBytes = "kv_bytes", totalBytes = "total_bytes", fits
        case versusFile = "versus_file"
    }

    /// Whether a tensor is one of the blocks' linear layers (quantised at low precision).
    public static func isLinear(_ t: GGUFTensorInfo) -> Bool { isLinear(name: t.name, shape: t.shape) }

    public static func isLinear(name: String, shape: [Int]) -> Bool {
        name.hasPrefix("blk.") && name.hasSuffix(".weight") && shape.count >= 2 && shape[1] > 1
    }

    /// Activation buffers of `ForwardState` plus the quantised-activation scratch, as
    /// the model's family sizes them.
    static func scratchBytes(config c: ModelConfig, batch: Int) -> Int {
        let sizes = ModelRegistry.family(of: c.architecture)?.scratchSizes(c) ?? ScratchSizes(c)
        return sizes.byteCount(batch: batch)
    }

    public static func estimate(file: any ModelSource, config: ModelConfig, plan: WeightPlan, context: Int, memoryLimit: Int) -> Footprint {
        var weights = 0, linear = 0
        for t in file.tensors {
            let isMatrix = t.shape.count >= 2 && t.shape[1] > 1
            // Norms and biases stay f32; matrices take the plan's format.
            let bytes = isMatrix
                ? plan.format(ofTensor: t.name).storedByteCount(rows: t.elementCount / t.shape[0], columns: t.shape[0])
                : 4 * t.elementCount
            weights += bytes
            if isLinear(t) { linear += bytes }
        }
        // Per token of a full-attention layer; sliding-window layers hold only their window.
        let kvPerToken = config.layerCount * 2 * plan.kvCache.bytesPerPosition(kvDim: config.kvDim, headDim: config.headDim)
        let kvBytes = KVCache.byteCount(capacities: Engine.kvCapacities(config: config, context: context), kvDim: config.kvDim,
                                        headDim: config.headDim, type: plan.kvCache)
        let total = weights + kvBytes + scratchBytes(config: config, batch: Engine.prefillChunk)
        return Footprint(name: plan.name, weightBytes: weights, linearWeightBytes: linear,
                         kvBytesPerToken: kvPerToken, kvBytes: kvBytes, totalBytes: total, fits: total <= memoryLimit)
    }

    /// The footprint of `native` when it is not one of the concrete precisions (a file of
    /// mixed types), then of every concrete precision, each with how it stands to the
    /// file's own weights: the file's own, no gain (as many bits per linear weight or
    /// more), or a loss (fewer).
    public static func all(file: any ModelSource, config: ModelConfig, context: Int, memoryLimit: Int) -> [Footprint] {
        let native = WeightPlan.native(file)
        let nativeFootprint = estimate(file: file, config: config, plan: native, context: context, memoryLimit: memoryLimit)
        var out: [Footprint] = []
        let plans = (native.isNative ? [native] : []) + WeightFormat.selectable.map { WeightPlan(linear: $0) }
        for plan in plans {
            var f = estimate(file: file, config: config, plan: plan, context: context, memoryLimit: memoryLimit)
            f.versusFile = plan == native ? .fileOwn
                : f.linearWeightBytes >= nativeFootprint.linearWeightBytes ? .noGain : .losesInformation
            out.append(f)
        }
        return out
    }

    /// Turns a requested precision into a plan: `native` from the file (each matrix in its
    /// own format where one keeps its blocks, `WeightPlan.native`), `auto` the native plan
    /// when it fits, else the highest concrete precision that fits and is not above the
    /// source's own.
    /// - Throws: `PrecisionError.doesNotFit` naming `auto` and the precisions that fit.
    /// - Parameter kvCache: the KV cache's type (nil: each precision's default).
    public static func plan(_ precision: Precision, file: any ModelSource, config: ModelConfig, context: Int, memoryLimit: Int,
                            kvCache: KVCacheType? = nil) throws -> WeightPlan {
        if let kvCache, !kvCache.supports(headDim: config.headDim) {
            throw PrecisionError.kvCacheUnsupported(path: file.path, type: kvCache, headDim: config.headDim)
        }
        let native = WeightPlan.native(file).withKVCache(kvCache)
        func footprint(_ plan: WeightPlan) -> Footprint {
            estimate(file: file, config: config, plan: plan.withKVCache(kvCache), context: context, memoryLimit: memoryLimit)
        }
        let fitting = WeightFormat.selectable.filter { footprint(WeightPlan(linear: $0)).fits }
        let plan: WeightPlan
        switch precision {
        case .auto:
            if footprint(native).fits { return native }
            guard let best = WeightFormat.selectable.first(where: { $0 <= native.linear && footprint(WeightPlan(linear: $0)).fits }) else {
                throw PrecisionError.doesNotFit(path: file.path, precision: "auto", needed: footprint(WeightPlan(linear: .q2)).totalBytes,
                                                limit: memoryLimit, fitting: fitting)
            }
            return WeightPlan(linear: best).withKVCache(kvCache)
        case .native: plan = native
        default: plan = WeightPlan(linear: precision.format!).withKVCache(kvCache)
        }
        let needed = footprint(plan).totalBytes
        guard needed <= memoryLimit else {
            throw PrecisionError.doesNotFit(path: file.path, precision: precision == .native ? "native (\(plan.linear.rawValue))" : plan.linear.rawValue,
                                            needed: needed, limit: memoryLimit, fitting: fitting)
        }
        return plan
    }

    /// The format `plan(...)` runs the linear layers at (for a native plan, the one that
    /// holds most of their weights).
    public static func resolve(_ precision: Precision, file: any ModelSource, config: ModelConfig, context: Int, memoryLimit: Int) throws -> WeightFormat {
        try plan(precision, file: file, config: config, context: context, memoryLimit: memoryLimit).linear
    }
}

public enum PrecisionError: Error, CustomStringConvertible, LocalizedError {
    /// The model at `path` needs `needed` bytes at `precision`, more than `limit`.
    case doesNotFit(path: String, precision: String, needed: Int, limit: Int, fitting: [WeightFormat])
    /// The model's heads cannot be stored at that KV cache type.
    case kvCacheUnsupported(path: String, type: KVCacheType, headDim: Int)

    public var errorDescription: String? { description }

    public var description: String {
        switch self {
        case let .doesNotFit(path, precision, needed, limit, fitting):
            let mib = { (b: Int) in "\(b / (1 << 20)) MiB" }
            let options = fitting.isEmpty ? "no precision fits; raise --memory-limit or lower --context"
                : "use --precision auto, or one that fits: \(fitting.map(\.rawValue).joined(separator: ", "))"
            return "\(path): precision \(precision) needs \(mib(needed)) but the memory limit is \(mib(limit))\n\(options)"
        case let .kvCacheUnsupported(path, type, headDim):
            return "\(path): a \(type.rawValue) KV cache needs head dimensions that are multiples of \(KVCacheType.q8Block); this model's are \(headDim)\nuse --kv-cache f16"
        }
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

    /// Parses "512M", "2G", "1.5G", "800000000" (bytes); nil when malformed.
    public static func parse(_ text: String) -> Int? {
        let text = text.trimmingCharacters(in: .whitespaces).uppercased()
        let k = 1024.0, m = k * k, g = m * k, t = g * k
        let units: [(String, Double)] = [("TIB", t), ("GIB", g), ("MIB", m), ("KIB", k), ("TB", t), ("GB", g), ("MB", m), ("KB", k),
                                         ("T", t), ("G", g), ("M", m), ("K", k), ("B", 1)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let v = Double(text.dropLast(suffix.count)), v > 0, v * scale < 9e18 else { return nil }
            return Int(v * scale)
        }
        guard let v = Int(text), v > 0 else { return nil }
        return v
    }

    /// Reads the resident set size of this process (VmRSS), in bytes.
    public static func residentBytes() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Int(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kb * 1024
    }
}
