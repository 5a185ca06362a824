import Foundation

// LoRA adapters as files: a PEFT folder (adapter_config.json + adapter_model.safetensors)
// or llama.cpp's GGUF LoRA (general.type = "adapter", from convert_lora_to_gguf.py).
// Each becomes pairs (A, B) in f32 under the GGUF name of the weight they adapt, in the
// layout the engine's weights have: a GGUF base's Llama Q/K rows are permuted into
// adjacent rope pairs, so a PEFT adapter's B rows for q_proj/k_proj get the same
// permutation (llama.cpp's converter applies it to the GGUF adapter already).
//
// The weight they add is s·B·A, with s = alpha / r (PEFT; alpha / √r with `use_rslora`;
// a GGUF adapter's `adapter.lora.alpha` / r, as llama.cpp's `get_scale`).

/// What an adapter must fit: the base model's architecture and heads (for the Q/K row
/// permutation of Llama-family GGUF layouts).
public struct LoRABase: Sendable {
    public let architecture: String
    public let headCount: Int
    public let kvHeadCount: Int

    public init(architecture: String, headCount: Int, kvHeadCount: Int) {
        self.architecture = architecture
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
    }
}

/// A LoRA adapter read from disk, not yet checked against a model's shapes.
public struct LoRAAdapterFile: Sendable {
    public enum Format: String, Sendable { case peft, gguf }

    /// One adapted weight: ΔW = scale · B · A.
    public struct Pair: Sendable {
        /// The GGUF name of the adapted weight (`blk.0.attn_q.weight`).
        public let target: String
        /// The module as the adapter file names it (for messages).
        public let module: String
        public let rank: Int
        public let inputs: Int
        public let outputs: Int
        /// rank × inputs, row-major.
        public let a: [Float]
        /// outputs × rank, row-major.
        public let b: [Float]
        public let scale: Float
    }

    /// The folder or `.gguf` file given.
    public let path: String
    public let format: Format
    /// Sorted by target.
    public let pairs: [Pair]
    /// sha256 of the weights file (`adapter_model.safetensors` or the `.gguf`).
    public let sha256: String
    /// The file that holds the weights.
    public let weightsPath: String

    /// Reads the adapter at `path` (a PEFT folder, its `adapter_model.safetensors`, or a
    /// GGUF LoRA file) for a model of `base`.
    /// - Throws: `ModelFileError` naming the file and what is wrong.
    public init(path: String, base: LoRABase) throws {
        self.path = path
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw ModelFileError.cannotOpen(path: path, reason: "no such file or folder")
        }
        let folder: String
        if isFolder.boolValue {
            folder = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        } else if path.hasSuffix(".gguf") || Self.startsWithGGUFMagic(path) {
            format = .gguf
            weightsPath = path
            pairs = try Self.readGGUF(path, base: base)
            sha256 = try Self.digest(path)
            return
        } else if path.hasSuffix(".bin") || path.hasSuffix(".pt") || path.hasSuffix(".pth") {
            throw Self.pickle(path)
        } else {
            folder = (path as NSString).deletingLastPathComponent
        }
        let weights = folder + "/adapter_model.safetensors"
        if !FileManager.default.fileExists(atPath: weights) {
            for pickled in ["adapter_model.bin", "adapter_model.pt"] where FileManager.default.fileExists(atPath: folder + "/" + pickled) {
                throw Self.pickle(folder + "/" + pickled)
            }
            throw ModelFileError.cannotOpen(path: path, reason: isFolder.boolValue
                ? "has no adapter_model.safetensors (a LoRA adapter is a PEFT folder or a GGUF LoRA file)"
                : "is not a LoRA adapter (a PEFT folder or a GGUF LoRA file)")
        }
        format = .peft
        weightsPath = weights
        pairs = try Self.readPEFT(folder: folder, weights: weights, base: base)
        sha256 = try Self.digest(weights)
    }

    static func pickle(_ path: String) -> ModelFileError {
        .malformed(path: path, reason: "is a PyTorch pickle, which Nibble does not load (unpickling can run code): convert it to safetensors, "
            + "e.g. PeftModel.from_pretrained(base, folder).save_pretrained(folder, safe_serialization=True)")
    }

    static func startsWithGGUFMagic(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 4)) == Data("GGUF".utf8)
    }

    static func digest(_ path: String) throws -> String {
        let file = try MappedFile(path: path)
        return SHA256.hex(file.bytes)
    }

    // MARK: - PEFT

    struct PEFTConfig: Decodable {
        var peftType: String?
        var r: Int?
        var loraAlpha: Double?
        var useRslora: Bool?
        var useDora: Bool?
        var fanInFanOut: Bool?
        var bias: String?
        var modulesToSave: [String]?
        var rankPattern: [String: Int]?
        var alphaPattern: [String: Double]?

        enum CodingKeys: String, CodingKey {
            case peftType = "peft_type", r, loraAlpha = "lora_alpha", useRslora = "use_rslora", useDora = "use_dora"
            case fanInFanOut = "fan_in_fan_out", bias, modulesToSave = "modules_to_save"
            case rankPattern = "rank_pattern", alphaPattern = "alpha_pattern"
        }
    }

    static func readPEFT(folder: String, weights: String, base: LoRABase) throws -> [Pair] {
        let configPath = folder + "/adapter_config.json"
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw ModelFileError.cannotOpen(path: configPath, reason: "is missing: a PEFT adapter folder has adapter_config.json next to adapter_model.safetensors")
        }
        func bad(_ reason: String) -> ModelFileError { .malformed(path: configPath, reason: reason) }
        let config: PEFTConfig
        do {
            config = try JSONDecoder().decode(PEFTConfig.self, from: data)
        } catch let error as DecodingError {
            throw bad(HFConfig.describe(error))
        } catch {
            throw bad("is not JSON: \(error)")
        }
        if let type = config.peftType, type != "LORA" { throw bad("'peft_type' is \(type.printable()); Nibble applies LoRA adapters only") }
        guard let rank = config.r, rank > 0 else { throw bad("'r' is missing or not a positive integer") }
        guard let alpha = config.loraAlpha, alpha.isFinite else { throw bad("'lora_alpha' is missing or not a number") }
        if config.useDora == true { throw bad("'use_dora' is true; DoRA adapters are not supported") }
        if let bias = config.bias, bias != "none" { throw bad("'bias' is \(bias.printable()); only adapters without bias terms (\"none\") are supported") }
        if let modules = config.modulesToSave, !modules.isEmpty {
            throw bad("'modules_to_save' lists \(modules.joined(separator: ", ")); adapters that replace whole modules are not supported")
        }
        let rslora = config.useRslora ?? false

        let file = try SafetensorsFile(path: weights)
        var byModule: [String: (a: SafetensorsTensor?, b: SafetensorsTensor?)] = [:]
        for t in file.tensors {
            let name = t.name
            if name.contains("lora_embedding_") {
                throw ModelFileError.malformed(path: weights, reason: "adapts an embedding (\(name.printable())); only linear layers are supported")
            }
            let isA = name.hasSuffix(".lora_A.weight"), isB = name.hasSuffix(".lora_B.weight")
            guard isA || isB else {
                throw ModelFileError.malformed(path: weights, reason: "tensor '\(name.printable())' is not a LoRA A or B weight")
            }
            let module = String(name.dropLast(".lora_A.weight".count))
            if isA { byModule[module, default: (nil, nil)].a = t } else { byModule[module, default: (nil, nil)].b = t }
        }
        let plan = HFModelPlan(architecture: base.architecture, modelType: base.architecture, metadata: [:], permuteQK: base.architecture == "llama",
                               headCount: base.headCount, kvHeadCount: base.kvHeadCount, tied: false, extraTensors: [])
        var pairs: [Pair] = []
        for (module, tensors) in byModule {
            guard let at = tensors.a, let bt = tensors.b else {
                throw ModelFileError.malformed(path: weights, reason: "module \(module.printable()) has lora_\(tensors.a == nil ? "A" : "B") but not lora_\(tensors.a == nil ? "B" : "A")")
            }
            guard at.shape.count == 2, bt.shape.count == 2, at.shape[0] == bt.shape[1] else {
                throw ModelFileError.malformed(path: weights, reason: "module \(module.printable()): lora_A is \(at.shape) and lora_B is \(bt.shape), whose ranks differ")
            }
            let r = at.shape[0], inputs = at.shape[1], outputs = bt.shape[0]
            // PEFT saves "base_model.model.<module of the base>".
            var hfName = module
            if hfName.hasPrefix("base_model.model.") { hfName.removeFirst("base_model.model.".count) }
            guard let (target, transform) = try? HuggingFaceFolder.map(hfName + ".weight", plan: plan, path: weights) else {
                throw ModelFileError.malformed(path: weights, reason: "module \(module.printable()) is not a weight of a \(base.architecture) model")
            }
            guard target.hasPrefix("blk."), !target.hasSuffix("norm.weight") else {
                throw ModelFileError.malformed(path: weights, reason: "module \(module.printable()) (\(target)) is not a linear layer of a block; only those can be adapted")
            }
            // rank_pattern / alpha_pattern: per-module overrides, keyed by a suffix of the module name.
            let key = config.alphaPattern?.keys.filter { hfName == $0 || hfName.hasSuffix("." + $0) }.max { $0.count < $1.count }
            let moduleAlpha = key.flatMap { config.alphaPattern?[$0] } ?? alpha
            let scale = Float(rslora ? moduleAlpha / Double(r).squareRoot() : moduleAlpha / Double(r))
            let a = floats(of: at, in: file)
            var b = floats(of: bt, in: file)
            if case let .permute(heads) = transform {
                guard outputs % (2 * heads) == 0 else {
                    throw ModelFileError.malformed(path: weights, reason: "module \(module.printable()): \(outputs) rows do not split into \(heads) heads")
                }
                b = permutedRows(b, rows: outputs, heads: heads)
            }
            _ = rank
            pairs.append(Pair(target: target, module: module, rank: r, inputs: inputs, outputs: outputs, a: a, b: b, scale: scale))
        }
        guard !pairs.isEmpty else { throw ModelFileError.malformed(path: weights, reason: "holds no LoRA weights") }
        return pairs.sorted { $0.target < $1.target }
    }

    static func floats(of tensor: SafetensorsTensor, in file: SafetensorsFile) -> [Float] {
        let count = tensor.elementCount
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
            tensor.type.dequantize(file.data(of: tensor).baseAddress!, count: count, into: out.baseAddress!)
            initialized = count
        }
    }

    /// `LlamaModel.permute` on rows of floats (see `HuggingFaceFolder.permuteRows`).
    static func permutedRows(_ values: [Float], rows: Int, heads: Int) -> [Float] {
        var out = values
        values.withUnsafeBytes { input in
            out.withUnsafeMutableBytes { output in
                HuggingFaceFolder.permuteRows(input, into: output, rows: rows, heads: heads)
            }
        }
        return out
    }

    // MARK: - GGUF

    static func readGGUF(_ path: String, base: LoRABase) throws -> [Pair] {
        let file = try GGUFFile(path: path)
        func bad(_ reason: String) -> ModelFileError { .malformed(path: path, reason: reason) }
        let type = file.metadata["general.type"]?.stringValue
        guard type == "adapter" else {
            throw bad("is not an adapter: general.type is \(type.map { "'\($0.printable())'" } ?? "missing") (a GGUF LoRA adapter says 'adapter')")
        }
        if let kind = file.metadata["adapter.type"]?.stringValue, kind != "lora" {
            throw bad("adapter.type is '\(kind.printable())'; only 'lora' adapters are supported")
        }
        if let arch = file.metadata["general.architecture"]?.stringValue, arch != base.architecture {
            throw bad("is an adapter for \(arch.printable()) models, and the model is \(base.architecture)")
        }
        let alpha = file.metadata["adapter.lora.alpha"]?.doubleValue ?? 0
        var a: [String: GGUFTensorInfo] = [:], b: [String: GGUFTensorInfo] = [:]
        for t in file.tensors {
            if t.name.hasSuffix(".lora_a") { a[String(t.name.dropLast(7))] = t }
            else if t.name.hasSuffix(".lora_b") { b[String(t.name.dropLast(7))] = t }
            else { throw bad("tensor '\(t.name.printable())' is not a LoRA A or B weight (norm and embedding adapters are not supported)") }
        }
        var pairs: [Pair] = []
        for (target, at) in a {
            guard let bt = b[target] else { throw bad("\(target.printable()) has lora_a but not lora_b") }
            guard target.hasPrefix("blk.") else { throw bad("\(target.printable()) is not a linear layer of a block; only those can be adapted") }
            // ne order: A is [inputs, rank], B is [rank, outputs] (llama.cpp's shape check).
            guard at.shape.count == 2, bt.shape.count == 2, at.shape[1] == bt.shape[0] else {
                throw bad("\(target.printable()): lora_a is \(at.shape) and lora_b is \(bt.shape) (ggml order), whose ranks differ")
            }
            let rank = at.shape[1], inputs = at.shape[0], outputs = bt.shape[1]
            for t in [at, bt] where !t.type.canDequantize || t.elementCount % t.type.blockSize != 0 {
                throw bad("\(t.name.printable()) is \(t.type.name), which Nibble cannot read")
            }
            func floats(_ t: GGUFTensorInfo) -> [Float] {
                [Float](unsafeUninitializedCapacity: t.elementCount) { out, n in
                    t.type.dequantize(file.data(of: t).baseAddress!, count: t.elementCount, into: out.baseAddress!)
                    n = t.elementCount
                }
            }
            let scale = Float(alpha == 0 ? 1 : alpha / Double(rank))
            pairs.append(Pair(target: target, module: target, rank: rank, inputs: inputs, outputs: outputs, a: floats(at), b: floats(bt), scale: scale))
        }
        if let orphan = b.keys.first(where: { a[$0] == nil }) { throw bad("\(orphan.printable()) has lora_b but not lora_a") }
        guard !pairs.isEmpty else { throw bad("holds no LoRA weights") }
        return pairs.sorted { $0.target < $1.target }
    }
}
