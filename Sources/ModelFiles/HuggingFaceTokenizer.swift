import Foundation

// tokenizer.json (+ tokenizer_config.json, tokenizer.model, generation_config.json,
// chat_template.jinja) → the `tokenizer.ggml.*` metadata the Tokenizer reads, as
// llama.cpp's converter writes it for these families: byte-level BPE
// (`_set_vocab_gpt2`) or SentencePiece (`_set_vocab_sentencepiece`, from
// tokenizer.model's protobuf; or from tokenizer.json's byte-fallback BPE).

enum HFTokenType: Int32 { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }

struct HFTokenizerTranslation {
    var metadata: [String: GGUFValue] = [:]

    /// Reads the tokenizer files of `folder`; `vocabSize` (config.json) pads the
    /// vocabulary with `[PAD<i>]` tokens, as the converter does.
    init(folder: String, vocabSize: Int?, config: HFConfig) throws {
        let jsonPath = folder + "/tokenizer.json"
        let configPath = folder + "/tokenizer_config.json"
        let spmPath = folder + "/tokenizer.model"
        let fm = FileManager.default
        let tokenizerConfig = try Self.jsonObject(configPath, optional: true) ?? [:]
        let json = try Self.jsonObject(jsonPath, optional: fm.fileExists(atPath: spmPath))
        func bad(_ path: String, _ reason: String) -> ModelFileError { .malformed(path: path, reason: reason) }

        var tokens: [String]
        var types: [Int32]
        var scores: [Float]? = nil
        var merges: [String]? = nil
        var addSpacePrefix: Bool? = nil
        let model = (json?["model"] as? [String: Any]) ?? [:]
        let modelType = model["type"] as? String
        let added = (json?["added_tokens"] as? [[String: Any]]) ?? []
        var spmSpecials: (unk: Int?, bos: Int?, eos: Int?, pad: Int?) = (nil, nil, nil, nil)

        if fm.fileExists(atPath: spmPath) || model["byte_fallback"] as? Bool == true {
            // SentencePiece style.
            metadata["tokenizer.ggml.model"] = .string("llama")
            metadata["tokenizer.ggml.pre"] = .string("default")
            if fm.fileExists(atPath: spmPath) {
                let proto = try SentencePieceModel(path: spmPath)
                tokens = proto.pieces.map(\.piece)
                scores = proto.pieces.map(\.score)
                types = proto.pieces.map(\.type)
                addSpacePrefix = proto.addDummyPrefix
                spmSpecials = (proto.unkID, proto.bosID, proto.eosID, proto.padID)
            } else {
                guard modelType == "BPE", let vocab = model["vocab"] as? [String: Any] else {
                    throw bad(jsonPath, "model type '\((modelType ?? "none").printable())' is not one Nibble reads (BPE)")
                }
                tokens = try Self.orderedVocab(vocab, path: jsonPath)
                let rank = try Self.merges(model["merges"], path: jsonPath)
                var mergeRank: [String: Int] = [:]
                for (i, pair) in rank.enumerated() {
                    let parts = pair.split(separator: " ", maxSplits: 1).map(String.init)
                    if parts.count == 2, mergeRank[parts[0] + parts[1]] == nil { mergeRank[parts[0] + parts[1]] = i }
                }
                // The SentencePiece merge order: a piece made by merge r scores −r
                // (earlier merges win); single characters never result from a merge.
                scores = tokens.map { t in
                    if let r = mergeRank[t] { return Float(-r) }
                    return t.unicodeScalars.count == 1 ? 0 : -1e9
                }
                let unk = model["unk_token"] as? String
                types = tokens.map { t in
                    if t.count == 6, t.hasPrefix("<0x"), t.hasSuffix(">") { return HFTokenType.byte.rawValue }
                    if t == unk { return HFTokenType.unknown.rawValue }
                    return HFTokenType.normal.rawValue
                }
                addSpacePrefix = Self.prependsSpace(json ?? [:])
            }
            // tokenizer_config's added_tokens_decoder retypes tokens (control when special).
            if let decoder = tokenizerConfig["added_tokens_decoder"] as? [String: Any] {
                for (key, value) in decoder {
                    guard let id = Int(key), let entry = value as? [String: Any], let content = entry["content"] as? String, id >= 0 else { continue }
                    let type: HFTokenType = entry["special"] as? Bool == true ? .control : .userDefined
                    if id < tokens.count {
                        tokens[id] = content
                        types[id] = type.rawValue
                    }
                }
            }
        } else {
            // Byte-level BPE.
            guard let json else { throw ModelFileError.cannotOpen(path: jsonPath, reason: "missing (a model folder needs tokenizer.json or tokenizer.model)") }
            guard modelType == "BPE", let vocab = model["vocab"] as? [String: Any] else {
                throw bad(jsonPath, "model type '\((modelType ?? "none").printable())' is not one Nibble reads (BPE)")
            }
            metadata["tokenizer.ggml.model"] = .string("gpt2")
            metadata["tokenizer.ggml.pre"] = .string(try Self.preTokenizerName(json, path: jsonPath))
            tokens = try Self.orderedVocab(vocab, path: jsonPath)
            types = [Int32](repeating: HFTokenType.normal.rawValue, count: tokens.count)
            merges = try Self.merges(model["merges"], path: jsonPath)
        }

        // Added tokens: past the base vocabulary they are appended; inside it, a BPE
        // vocabulary marks them control (special) or user-defined.
        let isSPM = metadata["tokenizer.ggml.model"] == .string("llama")
        for entry in added.sorted(by: { ($0["id"] as? Int ?? 0) < ($1["id"] as? Int ?? 0) }) {
            guard let id = entry["id"] as? Int, let content = entry["content"] as? String, id >= 0, id < 1 << 24 else {
                throw bad(jsonPath, "'added_tokens' has an entry without an id and content")
            }
            // The converter reads no tokenizer.json for a tokenizer.model, and the
            // vocabulary ends at config.json's vocab_size (Gemma 3's <mask> lies past it).
            if fm.fileExists(atPath: spmPath) || id >= (vocabSize ?? .max) { continue }
            let type: HFTokenType = entry["special"] as? Bool == true ? .control : .userDefined
            while tokens.count < id {
                tokens.append("[PAD\(tokens.count)]"); types.append(HFTokenType.unused.rawValue); scores?.append(-1000)
            }
            if id == tokens.count {
                tokens.append(content); types.append(type.rawValue); scores?.append(-1000)
            } else if !isSPM {
                tokens[id] = content
                types[id] = type.rawValue
            }
        }
        if let vocabSize, vocabSize > tokens.count {
            for i in tokens.count..<vocabSize {
                tokens.append("[PAD\(i)]"); types.append(HFTokenType.unused.rawValue); scores?.append(-1000)
            }
        }
        metadata["tokenizer.ggml.tokens"] = .array(type: .string, tokens.map { .string($0) })
        metadata["tokenizer.ggml.token_type"] = .array(type: .int32, types.map { .int32($0) })
        if let scores { metadata["tokenizer.ggml.scores"] = .array(type: .float32, scores.map { .float32($0) }) }
        if let merges { metadata["tokenizer.ggml.merges"] = .array(type: .string, merges.map { .string($0) }) }
        if let addSpacePrefix { metadata["tokenizer.ggml.add_space_prefix"] = .bool(addSpacePrefix) }

        // Special tokens (gguf-py's SpecialVocab): tokenizer_config's strings, else
        // config.json's ids, else the SentencePiece model's own.
        var idOf: [String: Int] = [:]
        for (i, t) in tokens.enumerated() where idOf[t] == nil { idOf[t] = i }
        func special(_ key: String) -> Int? {
            if let text = (tokenizerConfig[key] as? String) ?? ((tokenizerConfig[key] as? [String: Any])?["content"] as? String) {
                return idOf[text]
            }
            return nil
        }
        let generation = try Self.jsonObject(folder + "/generation_config.json", optional: true)
        let generationEOS = Self.ints(generation?["eos_token_id"])
        func set(_ key: String, _ id: Int?) {
            if let id, id >= 0, id < tokens.count { metadata["tokenizer.ggml.\(key)"] = .uint32(UInt32(id)) }
        }
        let eos = special("eos_token") ?? generationEOS.first ?? config.eosTokenId?.values.first ?? spmSpecials.eos
        set("bos_token_id", special("bos_token") ?? config.bosTokenId?.values.first ?? spmSpecials.bos)
        set("eos_token_id", eos)
        set("unknown_token_id", special("unk_token") ?? spmSpecials.unk)
        set("padding_token_id", special("pad_token") ?? config.padTokenId?.values.first ?? spmSpecials.pad)
        if let other = generationEOS.first(where: { $0 != eos }) { set("eot_token_id", other) }

        // add_bos/add_eos: tokenizer_config, else the post-processor's template.
        let template = Self.templateSpecials(json?["post_processor"])
        metadata["tokenizer.ggml.add_bos_token"] = .bool(tokenizerConfig["add_bos_token"] as? Bool ?? template.first ?? false)
        metadata["tokenizer.ggml.add_eos_token"] = .bool(tokenizerConfig["add_eos_token"] as? Bool ?? template.last ?? false)

        // Chat template: tokenizer_config's (a string, or a list → the one named "default"), else chat_template.jinja.
        if let text = tokenizerConfig["chat_template"] as? String {
            metadata["tokenizer.chat_template"] = .string(text)
        } else if let list = tokenizerConfig["chat_template"] as? [[String: Any]] {
            if let text = list.first(where: { $0["name"] as? String == "default" })?["template"] as? String {
                metadata["tokenizer.chat_template"] = .string(text)
            }
        } else if let data = fm.contents(atPath: folder + "/chat_template.jinja"), let text = String(data: data, encoding: .utf8) {
            metadata["tokenizer.chat_template"] = .string(text)
        }
    }

    static func ints(_ value: Any?) -> [Int] {
        if let v = value as? Int { return [v] }
        return (value as? [Any])?.compactMap { $0 as? Int } ?? []
    }

    /// A JSON object file; nil when `optional` and the file is absent.
    static func jsonObject(_ path: String, optional: Bool) throws -> [String: Any]? {
        guard let data = FileManager.default.contents(atPath: path) else {
            if optional { return nil }
            throw ModelFileError.cannotOpen(path: path, reason: "missing or unreadable")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelFileError.malformed(path: path, reason: "is not a well-formed JSON object")
        }
        return object
    }

    /// The vocabulary's tokens by id (ids must be 0..<n without gaps).
    static func orderedVocab(_ vocab: [String: Any], path: String) throws -> [String] {
        var tokens = [String?](repeating: nil, count: vocab.count)
        for (text, value) in vocab {
            guard let id = value as? Int, id >= 0, id < vocab.count, tokens[id] == nil else {
                throw ModelFileError.malformed(path: path, reason: "'model.vocab' gives token '\(text.printable())' the id \(value), not a free id below \(vocab.count)")
            }
            tokens[id] = text
        }
        return tokens.map { $0! }
    }

    /// Merges as "a b" strings (tokenizer.json has them as strings or as pairs).
    static func merges(_ value: Any?, path: String) throws -> [String] {
        guard let list = value as? [Any] else { return [] }
        return try list.map { item in
            if let s = item as? String { return s }
            if let pair = item as? [String], pair.count == 2 { return pair[0] + " " + pair[1] }
            throw ModelFileError.malformed(path: path, reason: "'model.merges' has an entry that is neither \"a b\" nor [a, b]")
        }
    }

    /// Whether the normalizer or pre-tokenizer puts ▁ before the text (SentencePiece's dummy prefix).
    static func prependsSpace(_ json: [String: Any]) -> Bool {
        func visit(_ node: Any?) -> Bool {
            guard let n = node as? [String: Any] else { return false }
            if n["type"] as? String == "Prepend", n["prepend"] as? String == "▁" { return true }
            if n["type"] as? String == "Metaspace" { return (n["prepend_scheme"] as? String ?? "always") != "never" && n["add_prefix_space"] as? Bool != false }
            for key in ["normalizers", "pretokenizers"] {
                if let items = n[key] as? [Any], items.contains(where: visit) { return true }
            }
            return false
        }
        return visit(json["normalizer"]) || visit(json["pre_tokenizer"])
    }

    /// Whether the post-processor's single-sequence template adds a special token
    /// before (first) and after (last) the text; nil when it is not a template.
    static func templateSpecials(_ node: Any?) -> [Bool] {
        guard let n = node as? [String: Any] else { return [] }
        if n["type"] as? String == "Sequence", let items = n["processors"] as? [Any] {
            for item in items { let r = templateSpecials(item); if !r.isEmpty { return r } }
            return []
        }
        guard n["type"] as? String == "TemplateProcessing", let single = n["single"] as? [[String: Any]],
              let index = single.firstIndex(where: { $0["Sequence"] != nil }) else { return [] }
        return [index > 0, index < single.count - 1]
    }

    static let qwen2Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The llama.cpp pre-tokenizer whose splitting is this tokenizer.json's: matched
    /// on the pre-tokenizer's shape and regex (the converter hashes a test text's
    /// tokens instead). Unknown shapes are refused: another split gives other ids.
    static func preTokenizerName(_ json: [String: Any], path: String) throws -> String {
        let node = json["pre_tokenizer"] as? [String: Any]
        var steps: [[String: Any]] = []
        if node?["type"] as? String == "Sequence" { steps = (node?["pretokenizers"] as? [[String: Any]]) ?? [] } else if let node { steps = [node] }
        func describe(_ s: [String: Any]) -> String {
            var t = s["type"] as? String ?? "?"
            if let regex = (s["pattern"] as? [String: Any])?["Regex"] as? String { t += "(\(regex))" }
            if t == "ByteLevel", s["use_regex"] as? Bool != false { t += "(GPT-2 regex)" }
            if t == "Digits" { t += s["individual_digits"] as? Bool == true ? "(individual)" : "" }
            return t
        }
        let shape = steps.map(describe)
        let known: [([String], String)] = [
            (["ByteLevel(GPT-2 regex)"], "gpt-2"),
            (["Split(\(qwen2Regex))", "ByteLevel"], "qwen2"),
            (["Split(\(llama3Regex))", "ByteLevel"], "llama-bpe"),
            (["Digits(individual)", "ByteLevel(GPT-2 regex)"], "smollm"),
        ]
        if let name = known.first(where: { $0.0 == shape })?.1 { return name }
        throw ModelFileError.malformed(path: path, reason:
            "pre_tokenizer \(shape.isEmpty ? "none" : shape.joined(separator: " + ").printable(limit: 160)) is not one Nibble recognises (known: the GPT-2, Qwen 2, Llama 3 and SmolLM splits)")
    }
}

/// The parts of a SentencePiece `tokenizer.model` (a ModelProto protobuf) the converter reads.
struct SentencePieceModel {
    struct Piece { var piece: String; var score: Float; var type: Int32 }
    var pieces: [Piece] = []
    var addDummyPrefix = true
    var unkID: Int? = 0, bosID: Int? = 1, eosID: Int? = 2, padID: Int? = nil

    init(path: String) throws {
        let file = try MappedFile(path: path)
        func bad(_ reason: String) -> ModelFileError { .malformed(path: path, reason: "is not a SentencePiece model: \(reason)") }
        var reader = ProtoReader(bytes: file.bytes)
        while !reader.atEnd {
            let (field, wire) = try reader.key(bad)
            switch (field, wire) {
            case (1, 2):
                var sub = ProtoReader(bytes: try reader.lengthDelimited(bad))
                var piece = Piece(piece: "", score: 0, type: HFTokenType.normal.rawValue)
                while !sub.atEnd {
                    let (f, w) = try sub.key(bad)
                    switch (f, w) {
                    case (1, 2):
                        guard let s = String(bytes: try sub.lengthDelimited(bad), encoding: .utf8) else { throw bad("piece \(pieces.count) is not UTF-8") }
                        piece.piece = s
                    case (2, 5): piece.score = Float(bitPattern: try sub.fixed32(bad))
                    case (3, 0): piece.type = Int32(truncatingIfNeeded: try sub.varint(bad))
                    default: try sub.skip(w, bad)
                    }
                }
                pieces.append(piece)
            case (2, 2):  // TrainerSpec: unk_id 40, bos_id 41, eos_id 42, pad_id 43
                var sub = ProtoReader(bytes: try reader.lengthDelimited(bad))
                while !sub.atEnd {
                    let (f, w) = try sub.key(bad)
                    if w == 0, (40...43).contains(f) {
                        let v = Int(Int32(truncatingIfNeeded: try sub.varint(bad)))
                        let id: Int? = v >= 0 ? v : nil
                        switch f { case 40: unkID = id; case 41: bosID = id; case 42: eosID = id; default: padID = id }
                    } else { try sub.skip(w, bad) }
                }
            case (3, 2):  // NormalizerSpec: add_dummy_prefix 3
                var sub = ProtoReader(bytes: try reader.lengthDelimited(bad))
                while !sub.atEnd {
                    let (f, w) = try sub.key(bad)
                    if (f, w) == (3, 0) { addDummyPrefix = try sub.varint(bad) != 0 } else { try sub.skip(w, bad) }
                }
            default:
                try reader.skip(wire, bad)
            }
        }
        guard !pieces.isEmpty else { throw bad("it has no pieces") }
    }
}

/// A bounds-checked protobuf wire-format cursor.
struct ProtoReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0
    var atEnd: Bool { offset >= bytes.count }

    mutating func varint(_ bad: (String) -> ModelFileError) throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < bytes.count, shift < 64 else { throw bad("a varint runs past its end at byte \(offset)") }
            let b = bytes[offset]; offset += 1
            value |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return value }
            shift += 7
        }
    }
    mutating func key(_ bad: (String) -> ModelFileError) throws -> (Int, Int) {
        let k = try varint(bad)
        return (Int(k >> 3), Int(k & 7))
    }
    mutating func fixed32(_ bad: (String) -> ModelFileError) throws -> UInt32 {
        guard bytes.count - offset >= 4 else { throw bad("a 32-bit value runs past the end") }
        defer { offset += 4 }
        return bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self).littleEndian
    }
    mutating func lengthDelimited(_ bad: (String) -> ModelFileError) throws -> UnsafeRawBufferPointer {
        let n = try varint(bad)
        guard n <= UInt64(bytes.count - offset) else { throw bad("a field of \(n) bytes runs past the end at byte \(offset)") }
        defer { offset += Int(n) }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + Int(n))])
    }
    mutating func skip(_ wire: Int, _ bad: (String) -> ModelFileError) throws {
        switch wire {
        case 0: _ = try varint(bad)
        case 1: guard bytes.count - offset >= 8 else { throw bad("a 64-bit value runs past the end") }; offset += 8
        case 2: _ = try lengthDelimited(bad)
        case 5: _ = try fixed32(bad)
        default: throw bad("wire type \(wire) at byte \(offset)")
        }
    }
}
