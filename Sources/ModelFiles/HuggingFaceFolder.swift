import Foundation

// A Hugging Face model folder (config.json, safetensors, tokenizer files) seen as a
// `ModelSource`: config.json becomes the GGUF metadata keys (HuggingFaceConfig.swift),
// tokenizer.json the `tokenizer.ggml.*` keys (HuggingFaceTokenizer.swift), and each
// tensor gets its GGUF name, shape and layout as llama.cpp's convert_hf_to_gguf.py
// writes them (gguf-py's tensor_mapping.py). Tensors whose layout the converter
// changes are derived into owned buffers: the large ones — Llama's Q/K rows permuted
// into adjacent rope pairs (`LlamaModel.permute`), GPT-2's Conv1D weights transposed —
// when their bytes are first asked for, and dropped again when the loader has copied
// them (`releasePages`), so a loaded model holds neither them nor their file pages;
// the small ones — Gemma 3's norm weights + 1 (in f32), the rope factor tables the
// converter computes (`rope_freqs`, `rope_factors_long/short`) — once, at open. Every
// other tensor's bytes are the mapped file's, F32, F16 or BF16 as stored.

/// A model folder in Hugging Face layout.
public final class HuggingFaceFolder: ModelSource, @unchecked Sendable {
    public let path: String
    public private(set) var metadata: [String: GGUFValue]
    public let tensors: [GGUFTensorInfo]
    /// The HF `model_type` of config.json.
    public let modelType: String
    public let weights: SafetensorsCollection
    private let index: [String: Int]
    private let storage: [Storage]
    private var owned: [UnsafeMutableRawBufferPointer] = []

    private enum Storage {
        case mapped(file: Int, range: Range<Int>)
        case owned(UnsafeRawBufferPointer)
        /// Derived from the mapped bytes on use (`data(of:)`).
        case derived(file: Int, range: Range<Int>, Derivation)
    }

    private enum Derivation {
        case permute(rows: Int, heads: Int)
        case transpose(rows: Int, columns: Int, elementBytes: Int)
    }

    /// Derived tensors in use: the buffer and the byte ranges of it released so far.
    private var derived: [Int: (buffer: UnsafeMutableRawBufferPointer, released: [Range<Int>])] = [:]
    private let derivedLock = NSLock()

    /// How a tensor's bytes differ from the safetensors'.
    enum Transform: Equatable {
        case none
        /// `LlamaModel.permute` with this many heads.
        case permute(heads: Int)
        /// A Conv1D weight `[in, out]` stored as a Linear's `[out, in]`.
        case transpose
        /// Gemma's norm weights: 1 + w, in f32.
        case plusOne
    }

    /// Opens the folder at `path`.
    /// - Throws: `ModelFileError` naming the file and the field or tensor at fault.
    public init(path: String) throws {
        let folder = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        self.path = path
        let configPath = folder + "/config.json"
        guard let configData = FileManager.default.contents(atPath: configPath) else {
            throw ModelFileError.cannotOpen(path: path, reason: "a folder without config.json, so not a Hugging Face model folder (a model is a GGUF file or such a folder)")
        }
        let config = try HFConfig.decode(configData, path: configPath)
        let plan = try HFModelPlan(config: config, path: configPath)
        modelType = plan.modelType
        let weights = try SafetensorsCollection(folder: folder)
        self.weights = weights

        var infos: [GGUFTensorInfo] = []
        var storage: [Storage] = []
        var owned: [UnsafeMutableRawBufferPointer] = []
        var seen: [String: String] = [:]
        do {
            for hfName in weights.names {
                let (file, t) = weights.tensors[hfName]!
                let filePath = weights.files[file].path
                guard let mapped = try Self.map(hfName, plan: plan, path: filePath) else { continue }
                let (name, transform) = mapped
                if let other = seen.updateValue(hfName, forKey: name) {
                    throw ModelFileError.malformed(path: filePath, reason: "tensor '\(hfName.printable())' and '\(other.printable())' both become '\(name)'")
                }
                guard !t.shape.isEmpty, !t.shape.contains(0), t.shape.count <= 4 else {
                    throw ModelFileError.malformed(path: filePath, reason: "tensor '\(hfName.printable())' has shape \(t.shape), which no weight has")
                }
                let bytes = weights.files[file].data(of: t)
                var shape = Array(t.shape.reversed())
                var type = t.type
                switch transform {
                case .none:
                    storage.append(.mapped(file: file, range: t.range))
                case let .permute(heads):
                    let rows = t.shape[0]
                    guard rows % heads == 0, (rows / heads) % 2 == 0 else {
                        throw ModelFileError.malformed(path: filePath, reason: "tensor '\(hfName.printable())' has \(rows) rows, which do not split into \(heads) heads of rope pairs")
                    }
                    storage.append(.derived(file: file, range: t.range, .permute(rows: rows, heads: heads)))
                case .transpose:
                    guard t.shape.count == 2 else {
                        throw ModelFileError.malformed(path: filePath, reason: "tensor '\(hfName.printable())' has shape \(t.shape); a Conv1D weight is 2-D")
                    }
                    storage.append(.derived(file: file, range: t.range,
                                            .transpose(rows: t.shape[0], columns: t.shape[1], elementBytes: bytes.count / t.elementCount)))
                    shape = t.shape
                case .plusOne:
                    let out = Self.allocate(t.elementCount * 4, &owned)
                    let f = out.bindMemory(to: Float.self)
                    t.type.dequantize(bytes.baseAddress!, count: t.elementCount, into: f.baseAddress!)
                    for i in f.indices { f[i] += 1 }
                    storage.append(.owned(UnsafeRawBufferPointer(out)))
                    type = .f32
                }
                let count: Int
                if case let .owned(b) = storage.last! { count = b.count } else { count = bytes.count }
                infos.append(GGUFTensorInfo(name: name, type: type, shape: shape, offset: t.range.lowerBound, byteCount: count))
            }
            for (name, values) in plan.extraTensors {
                let out = Self.allocate(values.count * 4, &owned)
                values.withUnsafeBytes { out.copyMemory(from: $0) }
                storage.append(.owned(UnsafeRawBufferPointer(out)))
                infos.append(GGUFTensorInfo(name: name, type: .f32, shape: [values.count], offset: 0, byteCount: values.count * 4))
            }
        } catch {
            for b in owned { b.deallocate() }
            throw error
        }
        self.owned = owned
        self.storage = storage
        tensors = infos
        index = Dictionary(uniqueKeysWithValues: infos.enumerated().map { ($1.name, $0) })

        var metadata = plan.metadata
        metadata["general.name"] = .string(URL(fileURLWithPath: folder).lastPathComponent)
        let embeddingRows = index["token_embd.weight"].map { infos[$0].shape.last ?? 0 }
        let tokenizer = try HFTokenizerTranslation(folder: folder, vocabSize: config.vocabSize ?? embeddingRows, config: config)
        metadata.merge(tokenizer.metadata) { a, _ in a }
        self.metadata = metadata
    }

    deinit {
        for b in owned { b.deallocate() }
        for d in derived.values { d.buffer.deallocate() }
    }

    private static func allocate(_ count: Int, _ owned: inout [UnsafeMutableRawBufferPointer]) -> UnsafeMutableRawBufferPointer {
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 64)
        owned.append(b)
        return UnsafeMutableRawBufferPointer(rebasing: b[0..<count])
    }

    /// `LlamaModel.permute`: within each head, row j·half + i becomes row 2i + j, so
    /// each rope pair (i, i + half) becomes two adjacent rows.
    static func permuteRows(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, rows: Int, heads: Int) {
        let rowBytes = input.count / rows
        let headRows = rows / heads, half = headRows / 2
        for h in 0..<heads {
            for i in 0..<half {
                for j in 0..<2 {
                    let from = (h * headRows + j * half + i) * rowBytes
                    let to = (h * headRows + 2 * i + j) * rowBytes
                    (output.baseAddress! + to).copyMemory(from: input.baseAddress! + from, byteCount: rowBytes)
                }
            }
        }
    }

    static func transpose(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, rows: Int, columns: Int, elementBytes: Int) {
        for r in 0..<rows {
            for c in 0..<columns {
                (output.baseAddress! + (c * rows + r) * elementBytes)
                    .copyMemory(from: input.baseAddress! + (r * columns + c) * elementBytes, byteCount: elementBytes)
            }
        }
    }

    /// The GGUF name of HF tensor `name` and how its bytes change; nil for tensors the
    /// converter drops (rotary caches, attention mask buffers, a tied head).
    static func map(_ name: String, plan: HFModelPlan, path: String) throws -> (String, Transform)? {
        var n = name
        // Multimodal Gemma 3 nests the language model; its vision tower is not run here.
        if n.contains("vision_tower") || n.contains("multi_modal_projector") { return nil }
        n = n.replacingOccurrences(of: "language_model.model.", with: "model.").replacingOccurrences(of: "model.language_model.", with: "model.")
        if n.hasSuffix("rotary_emb.inv_freq") { return nil }
        func unknown() -> ModelFileError {
            .malformed(path: path, reason: "tensor '\(name.printable())' is not one the \(plan.modelType) converter maps")
        }

        if plan.architecture == "gpt2" {
            if n.hasPrefix("transformer.") { n.removeFirst("transformer.".count) }
            if n.hasSuffix(".attn.bias") || n.hasSuffix(".attn.masked_bias") { return nil }
            switch n {
            case "wte.weight": return ("token_embd.weight", .none)
            case "wpe.weight": return ("position_embd.weight", .none)
            case "ln_f.weight": return ("output_norm.weight", .none)
            case "ln_f.bias": return ("output_norm.bias", .none)
            case "lm_head.weight": return plan.tied ? nil : ("output.weight", .none)
            default: break
            }
            let parts = n.split(separator: ".", maxSplits: 2).map(String.init)
            guard parts.count == 3, parts[0] == "h", let block = Int(parts[1]) else { throw unknown() }
            let table: [String: (String, Bool)] = [
                "ln_1": ("attn_norm", false), "ln_2": ("ffn_norm", false),
                "attn.c_attn": ("attn_qkv", true), "attn.c_proj": ("attn_output", true),
                "mlp.c_fc": ("ffn_up", true), "mlp.c_proj": ("ffn_down", true),
            ]
            let rest = parts[2]
            for suffix in ["weight", "bias"] where rest.hasSuffix("." + suffix) {
                let module = String(rest.dropLast(suffix.count + 1))
                guard let (target, conv) = table[module] else { throw unknown() }
                return ("blk.\(block).\(target).\(suffix)", conv && suffix == "weight" ? .transpose : .none)
            }
            throw unknown()
        }

        switch n {
        case "model.embed_tokens.weight": return ("token_embd.weight", .none)
        case "model.norm.weight": return ("output_norm.weight", plan.architecture == "gemma3" ? .plusOne : .none)
        case "lm_head.weight": return plan.tied ? nil : ("output.weight", .none)
        default: break
        }
        let parts = n.split(separator: ".", maxSplits: 3).map(String.init)
        guard parts.count == 4, parts[0] == "model", parts[1] == "layers", let block = Int(parts[2]) else { throw unknown() }
        let rest = parts[3]
        let gemma = plan.architecture == "gemma3"
        let table: [String: String] = [
            "input_layernorm": "attn_norm",
            "post_attention_layernorm": gemma ? "post_attention_norm" : "ffn_norm",
            "pre_feedforward_layernorm": "ffn_norm",
            "post_feedforward_layernorm": "post_ffw_norm",
            "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
            "self_attn.o_proj": "attn_output", "self_attn.qkv_proj": "attn_qkv",
            "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
            "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down", "mlp.gate_up_proj": "ffn_up",
        ]
        for suffix in ["weight", "bias"] where rest.hasSuffix("." + suffix) {
            let module = String(rest.dropLast(suffix.count + 1))
            guard let target = table[module] else { throw unknown() }
            var transform = Transform.none
            if plan.permuteQK, module == "self_attn.q_proj" { transform = .permute(heads: plan.headCount) }
            if plan.permuteQK, module == "self_attn.k_proj" { transform = .permute(heads: plan.kvHeadCount) }
            if gemma, target.hasSuffix("norm"), suffix == "weight" { transform = .plusOne }
            return ("blk.\(block).\(target).\(suffix)", transform)
        }
        throw unknown()
    }

    // MARK: - ModelSource

    public func tensor(named name: String) -> GGUFTensorInfo? { index[name].map { tensors[$0] } }

    public func data(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        guard let i = index[tensor.name] else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        switch storage[i] {
        case let .mapped(file, range): return UnsafeRawBufferPointer(rebasing: weights.files[file].file.bytes[range])
        case let .owned(b): return b
        case let .derived(file, range, derivation):
            derivedLock.lock()
            defer { derivedLock.unlock() }
            if let d = derived[i] { return UnsafeRawBufferPointer(d.buffer) }
            let mapped = weights.files[file].file
            let input = UnsafeRawBufferPointer(rebasing: mapped.bytes[range])
            let out = UnsafeMutableRawBufferPointer.allocate(byteCount: max(input.count, 1), alignment: 64)
            let buffer = UnsafeMutableRawBufferPointer(rebasing: out[0..<input.count])
            switch derivation {
            case let .permute(rows, heads): Self.permuteRows(input, into: buffer, rows: rows, heads: heads)
            case let .transpose(rows, columns, elementBytes):
                Self.transpose(input, into: buffer, rows: rows, columns: columns, elementBytes: elementBytes)
            }
            // The copy is what is read from now on.
            mapped.releasePages(range)
            derived[i] = (buffer, [])
            return UnsafeRawBufferPointer(buffer)
        }
    }

    public func verifyUnchanged() throws {
        for f in weights.files { try f.file.verifyUnchanged() }
    }

    /// For a derived tensor, its buffer goes once every byte of it has been released
    /// (a fused tensor is loaded a part at a time); the next `data(of:)` derives it again.
    public func releasePages(of bytes: UnsafeRawBufferPointer) {
        guard let start = bytes.baseAddress else { return }
        derivedLock.lock()
        for (i, d) in derived {
            guard let base = d.buffer.baseAddress.map(UnsafeRawPointer.init), start >= base, start < base + d.buffer.count else { continue }
            let offset = start - base
            var released = d.released + [offset..<min(offset + bytes.count, d.buffer.count)]
            released.sort { $0.lowerBound < $1.lowerBound }
            var covered = 0, end = 0
            for r in released where r.upperBound > end {
                covered += r.upperBound - max(r.lowerBound, end)
                end = r.upperBound
            }
            if covered >= d.buffer.count {
                d.buffer.deallocate()
                derived[i] = nil
            } else {
                derived[i] = (d.buffer, released)
            }
            derivedLock.unlock()
            return
        }
        derivedLock.unlock()
        for f in weights.files {
            guard let base = f.file.bytes.baseAddress, start >= base, start < base + f.file.bytes.count else { continue }
            let offset = start - base
            f.file.releasePages(offset..<(offset + bytes.count))
            return
        }
    }

    /// Forgets the values of `keys` (the vocabulary arrays, once the tokenizer has them).
    public func discardMetadata(_ keys: Set<String>) {
        for key in keys { metadata[key] = nil }
    }
}

/// Opens a model by path: a folder in Hugging Face layout or a GGUF file.
public enum ModelSources {
    public static func open(_ path: String) throws -> any ModelSource {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
            return try HuggingFaceFolder(path: path)
        }
        return try GGUFFile(path: path)
    }
}
