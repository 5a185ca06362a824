import ModelFiles

/// A tokenizer built from a GGUF file's `tokenizer.ggml.*` metadata, producing exactly the token
/// ids llama.cpp produces (`llama_tokenize` with `add_special = false`), which for the supported
/// vocabularies are also Hugging Face `tokenizers`' ids with `add_special_tokens=False`.
///
/// Supported `tokenizer.ggml.model` values: `gpt2` (byte-level BPE, with the pre-tokenizer named
/// by `tokenizer.ggml.pre`), `llama` (SentencePiece BPE with scores and byte fallback) and
/// `gemma4` (SPM-style BPE). The loading rules (defaults, special-token detection, end-of-generation
/// tokens) follow `llama_vocab::impl::load` in llama.cpp's src/llama-vocab.cpp.
///
/// Instances are immutable after `init` and safe to share between threads.
public final class Tokenizer: @unchecked Sendable {
    /// The tokenizer families this module implements.
    public enum Kind: String, Sendable {
        /// Byte-level (or SPM-style) BPE with a merge list: `tokenizer.ggml.model` "gpt2" or "gemma4".
        case bytePairEncoding
        /// SentencePiece BPE with scores: `tokenizer.ggml.model` "llama".
        case sentencePiece
    }

    /// Which algorithm encodes text.
    public let kind: Kind
    /// `tokenizer.ggml.model` as read.
    public let modelName: String
    /// The pre-tokenizer in use (`tokenizer.ggml.pre`, or "default" when absent); nil for SentencePiece.
    public let preTokenizerName: String?

    /// Beginning-of-sequence token (llama.cpp's default id when the file does not name one and the
    /// default is in range: 1 for SentencePiece, 11 for GPT-2 BPE), nil if the vocabulary has none.
    public let bosTokenID: Int?
    /// End-of-sequence token, with the same defaults as `bosTokenID` (2 / 11).
    public let eosTokenID: Int?
    /// End-of-turn token (`tokenizer.ggml.eot_token_id`, or found by text such as `<|im_end|>`).
    public let eotTokenID: Int?
    /// End-of-message token (`tokenizer.ggml.eom_token_id`, or `<|eom_id|>`).
    public let eomTokenID: Int?
    /// Unknown token (SentencePiece default 0).
    public let unknownTokenID: Int?
    /// Padding token, if the file names one.
    public let paddingTokenID: Int?

    /// Whether the model expects a BOS token at the start of a prompt: `tokenizer.ggml.add_bos_token`,
    /// or llama.cpp's default (true for SentencePiece, Llama-3-style BPE and Gemma 4, else false).
    public let addBOS: Bool
    /// Whether the model expects an EOS token at the end of a prompt (`tokenizer.ggml.add_eos_token`).
    public let addEOS: Bool
    /// SentencePiece: a space is put in front of the text (and of text after a special token)
    /// before encoding, and `decode` removes one leading space again.
    public let addSpacePrefix: Bool
    /// llama.cpp's `clean_spaces` flag (Hugging Face `clean_up_tokenization_spaces`). Reported only:
    /// `decode` never applies that lossy clean-up, so that `decode(encode(s)) == s`.
    public let cleanSpaces: Bool

    /// Tokens that end generation: EOS, EOT, EOM, the FIM pad/repo/separator tokens, and every
    /// token whose text llama.cpp recognises as an end marker (`<|im_end|>`, `<|eot_id|>`,
    /// `<|endoftext|>`, `<end_of_turn>`, `<|end|>`, …), as built in `llama_vocab::impl::load`.
    public let endOfGenerationTokenIDs: Set<Int>

    /// Per-token attributes after llama.cpp's adjustments (end markers become control, etc.).
    public let attributes: [TokenAttributes]

    /// Tokens in the vocabulary (their texts are only needed while the tables are built).
    private let vocabularyCount: Int
    /// Each token's text as stored, end to end (`textOffsets[id]..<textOffsets[id + 1]`): one
    /// buffer instead of a `String` per token keeps a 262,144-token vocabulary to ~3 MiB.
    private let textBytes: [UInt8]
    private let textOffsets: [Int32]
    private let table: ByteStringTable
    private let pieces: [UInt8]
    private let pieceOffsets: [Int32]
    private let partitioner: SpecialTokenPartitioner
    private let bpe: BytePairEncoding?
    private let spm: SentencePiece?

    /// Number of tokens in the vocabulary (ids are `0..<vocabularySize`).
    public var vocabularySize: Int { vocabularyCount }

    /// Builds the tokenizer of a GGUF model (or vocabulary-only) file.
    /// - Throws: `TokenizerError` naming the file and the key at fault.
    public convenience init(gguf: GGUFFile) throws {
        try self.init(metadata: gguf.metadata, source: gguf.path)
    }

    /// Builds a tokenizer from GGUF-style metadata; `source` names the origin in error messages.
    /// - Throws: `TokenizerError`.
    public init(metadata: [String: GGUFValue], source: String = "<metadata>") throws {
        let reader = MetadataReader(metadata: metadata, source: source)

        // --- tokenizer family and pre-tokenizer (llama_vocab::impl::load, "determine vocab type")
        let model = try reader.requiredString("tokenizer.ggml.model")
        var preName = try reader.string("tokenizer.ggml.pre")
        modelName = model

        var defaultBOS: Int? = nil, defaultEOS: Int? = nil, defaultUNK: Int? = nil
        var pre: PreTokenizer? = nil
        var addSpacePrefix = false
        var addBOS = false
        let kind: Kind
        switch model {
        case "llama":
            kind = .sentencePiece
            defaultBOS = 1; defaultEOS = 2; defaultUNK = 0
            addSpacePrefix = true
            addBOS = true
        case "gpt2", "gemma4":
            kind = .bytePairEncoding
            if model == "gpt2" {
                defaultBOS = 11; defaultEOS = 11
            } else {
                preName = "gemma4" // llama.cpp forces the pre-tokenizer for this model name
            }
            guard let p = PreTokenizer.named(preName) else {
                throw TokenizerError.unsupportedPreTokenizer(file: source, name: preName ?? "")
            }
            pre = p
            addBOS = p.addBOSDefault
            if p.clearsDefaultBOS { defaultBOS = nil }
        default:
            throw TokenizerError.unsupportedModel(file: source, model: model)
        }
        self.kind = kind
        preTokenizerName = pre?.name
        cleanSpaces = pre?.cleanSpaces ?? false
        if let value = try reader.bool("tokenizer.ggml.add_space_prefix") { addSpacePrefix = value }
        self.addSpacePrefix = addSpacePrefix

        // --- the vocabulary
        let tokenStrings = try reader.requiredStringArray("tokenizer.ggml.tokens")
        let n = tokenStrings.count
        var textBytes: [UInt8] = []
        var textOffsets: [Int32] = [0]
        textOffsets.reserveCapacity(n + 1)
        var texts: [[UInt8]] = []
        texts.reserveCapacity(n)
        var table = ByteStringTable(capacity: n)
        for (i, s) in tokenStrings.enumerated() {
            textBytes.append(contentsOf: s.utf8)
            textOffsets.append(Int32(textBytes.count))
            // llama.cpp renames empty tokens so that every text is unique and non-empty.
            let bytes = s.isEmpty ? Array("[EMPTY_\(i)]".utf8) : Array(s.utf8)
            texts.append(bytes)
            table.set(bytes, Int32(i)) // a repeated text maps to its last id, as `token_to_id[word] = i`
        }
        vocabularyCount = n
        self.table = table
        self.textBytes = textBytes
        self.textOffsets = textOffsets

        var scores = [Float](repeating: 0, count: n)
        if let raw = try reader.numberArray("tokenizer.ggml.scores", allowed: [.float32, .int32]) {
            guard raw.count >= n else {
                throw TokenizerError.invalidValue(file: source, key: "tokenizer.ggml.scores",
                                                  reason: "\(raw.count) scores for \(n) tokens")
            }
            for i in 0..<n { scores[i] = Float(raw[i]) }
        }

        var attrs = [TokenAttributes](repeating: .normal, count: n)
        if let types = try reader.numberArray("tokenizer.ggml.token_type", allowed: [.int32]) {
            guard types.count >= n else {
                throw TokenizerError.invalidValue(file: source, key: "tokenizer.ggml.token_type",
                                                  reason: "\(types.count) token types for \(n) tokens")
            }
            for i in 0..<n { attrs[i] = TokenAttributes(tokenType: Int(types[i])) }
        }

        // --- special token ids: default unless the file names one in range
        func specialID(_ key: String, default value: Int?) throws -> Int? {
            var id = value
            if let d = id, d >= n { id = nil }
            if let given = try reader.int(key) {
                if given >= 0 && given < n { id = given } // else llama.cpp warns and keeps the default
            }
            return id
        }
        let bos = try specialID("tokenizer.ggml.bos_token_id", default: defaultBOS)
        let eos = try specialID("tokenizer.ggml.eos_token_id", default: defaultEOS)
        var eot = try specialID("tokenizer.ggml.eot_token_id", default: nil)
        var eom = try specialID("tokenizer.ggml.eom_token_id", default: nil)
        let unk = try specialID("tokenizer.ggml.unknown_token_id", default: defaultUNK)
        let pad = try specialID("tokenizer.ggml.padding_token_id", default: nil)
        var fimPad = try specialID("tokenizer.ggml.fim_pad_token_id", default: nil)
        var fimRep = try specialID("tokenizer.ggml.fim_rep_token_id", default: nil)
        var fimSep = try specialID("tokenizer.ggml.fim_sep_token_id", default: nil)

        if let value = try reader.bool("tokenizer.ggml.add_bos_token") { addBOS = value }
        let addEOS = try reader.bool("tokenizer.ggml.add_eos_token") ?? false
        if pre?.name == "gemma4" || pre?.name == "granite-embed-multi-311m" { addBOS = true } // llama.cpp PR #21500

        // --- special tokens recognised by text (llama.cpp "auto-detect special tokens by text")
        // llama.cpp walks its hash map, in no defined order; we walk ids in ascending order, which
        // only matters if a vocabulary holds two different EOT-looking texts.
        // Every text llama.cpp looks for starts with '<', '[', '_' or "▁" (E2 ..) and is short; only
        // such tokens (and only the id a repeated text maps to, as llama.cpp iterates `token_to_id`)
        // are compared, which keeps loading a 256k vocabulary fast.
        let named: [Int] = (0..<n).filter { id in
            let t = texts[id]
            guard t.count <= 48, let first = t.first, first == 0x3C || first == 0x5B || first == 0x5F || first == 0xE2 else {
                return false
            }
            return table.lookup(t) == Int32(id)
        }
        func markControl(_ id: Int) { attrs[id].insert(.control) }
        let eotTexts: Set<String> = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                     "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>",
                                     "<end_of_utterance>"]
        let fimPadTexts: Set<String> = ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"]
        let fimRepTexts: Set<String> = ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"]
        let fimSepTexts: Set<String> = ["<|file_sep|>"]
        for id in named {
            let text = tokenStrings[id]
            if eot == nil && eotTexts.contains(text) { eot = id; markControl(id) }
            if eom == nil && text == "<|eom_id|>" { eom = id; markControl(id) }
            if fimPad == nil && fimPadTexts.contains(text) { fimPad = id; markControl(id) }
            if fimRep == nil && fimRepTexts.contains(text) { fimRep = id; markControl(id) }
            if fimSep == nil && fimSepTexts.contains(text) { fimSep = id; markControl(id) }
        }
        // FIM prefix/suffix/middle tokens are also forced to control by llama.cpp.
        let fimOtherTexts: [Set<String>] = [
            ["<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>"],
            ["<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>"],
            ["<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>"],
        ]
        let fimOtherKeys = ["tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.fim_mid_token_id"]
        let fimOtherDeprecated = ["tokenizer.ggml.prefix_token_id", "tokenizer.ggml.suffix_token_id", "tokenizer.ggml.middle_token_id"]
        for (k, candidates) in fimOtherTexts.enumerated() {
            var given = try specialID(fimOtherKeys[k], default: nil)
            given = try specialID(fimOtherDeprecated[k], default: given)
            guard given == nil else { continue }
            for id in named where candidates.contains(tokenStrings[id]) {
                markControl(id)
                break
            }
        }

        // Control tokens whose text says "unused" are unused.
        for id in 0..<n where attrs[id].contains(.control) && tokenStrings[id].contains("unused")
            && table.lookup(texts[id]) == Int32(id) {
            attrs[id].insert(.unused)
        }

        // --- end-of-generation tokens
        var eog = Set<Int>()
        for id in [fimPad, fimRep, fimSep].compactMap({ $0 }) { eog.insert(id) }
        let eogTexts: Set<String> = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
                                     "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
                                     "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
                                     "<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~["]
        for id in named where eogTexts.contains(tokenStrings[id]) {
            eog.insert(id)
            markControl(id)
        }
        // gpt-oss: these are always rendered.
        for id in named {
            switch tokenStrings[id] {
            case "<|channel|>", "<|message|>", "<|start|>", "<|constrain|>": attrs[id] = .userDefined
            default: break
            }
        }
        for id in [eos, eot, eom].compactMap({ $0 }) { eog.insert(id) }
        // o200k_harmony / solar-open: "<|end|>" is not an end of generation there.
        do {
            let eogTextsPresent = Dictionary(eog.map { (tokenStrings[$0], $0) }, uniquingKeysWith: { a, _ in a })
            let hasReturn = eogTextsPresent["<|return|>"] != nil
            let hasCall = eogTextsPresent["<|call|>"] != nil || eogTextsPresent["<|calls|>"] != nil
            let hasFlush = eogTextsPresent["<|flush|>"] != nil
            if let end = eogTextsPresent["<|end|>"], (hasReturn && hasCall) || (hasCall && hasFlush) {
                eog.remove(end)
                attrs[end] = .userDefined
            }
        }
        // Gemma 4 / PLaMo: "</s>" is an ordinary token there.
        do {
            let present = Set(eog.map { tokenStrings[$0] })
            if present.contains("<|tool_response>") || present.contains("<|plamo:eos|>") {
                for id in eog where tokenStrings[id] == "</s>" {
                    eog.remove(id)
                    attrs[id] = .normal
                }
            }
        }

        // --- special-token candidates for partitioning, longest first
        var special = (0..<n).filter { !attrs[$0].isDisjoint(with: [.control, .userDefined, .unknown]) }
        special.sort { texts[$0].count != texts[$1].count ? texts[$0].count > texts[$1].count : $0 < $1 }

        // --- per-model lstrip/rstrip attributes (end of llama_vocab::impl::load)
        let generalName = (try reader.string("general.name") ?? "").lowercased()
        let architecture = try reader.string("general.architecture") ?? ""
        let rawPre = try reader.string("tokenizer.ggml.pre") ?? ""
        func ids(of text: String) -> Int? { table.lookup(Array(text.utf8)).map(Int.init) }
        if ["jina-v2-de", "jina-v2-es", "jina-v2-code"].contains(where: rawPre.contains)
            || ["nomic-bert-moe", "jina-bert-v3"].contains(where: architecture.contains) {
            if let mask = ids(of: "<mask>") { attrs[mask].insert(.lstrip) }
        } else if generalName.contains("phi-3") || generalName.contains("phi3") {
            for id in special { attrs[id].insert(.rstrip) }
            if let id = ids(of: "</s>") { attrs[id].insert(.rstrip) }
            for text in ["<unk>", "<s>", "<|endoftext|>"] {
                if let id = ids(of: text) { attrs[id].remove(.rstrip) }
            }
        } else if generalName.contains("modern-bert") {
            if let mask = ids(of: "[MASK]") { attrs[mask].insert(.lstrip) }
        }

        bosTokenID = bos
        eosTokenID = eos
        eotTokenID = eot
        eomTokenID = eom
        unknownTokenID = unk
        paddingTokenID = pad
        self.addBOS = addBOS
        self.addEOS = addEOS
        endOfGenerationTokenIDs = eog
        attributes = attrs
        partitioner = SpecialTokenPartitioner(candidates: special, texts: texts, attributes: attrs)

        // --- the encoder
        switch kind {
        case .sentencePiece:
            spm = SentencePiece(vocab: table, scores: scores, unknownTokenID: unk)
            bpe = nil
        case .bytePairEncoding:
            guard let merges = try reader.stringArray("tokenizer.ggml.merges") else {
                throw TokenizerError.missingKey(file: source, key: "tokenizer.ggml.merges")
            }
            bpe = BytePairEncoding(vocab: table, vocabularySize: n, merges: merges, preTokenizer: pre!)
            spm = nil
        }

        // --- what each token decodes to (llama.cpp's token-to-piece cache, `special = true`)
        var pieces: [UInt8] = []
        var offsets: [Int32] = [0]
        offsets.reserveCapacity(n + 1)
        let unescape = kind == .sentencePiece || (pre?.escapeWhitespace ?? false)
        for id in 0..<n {
            let attr = attrs[id]
            if !attr.isDisjoint(with: [.unknown, .control, .userDefined]) {
                pieces.append(contentsOf: texts[id])
            } else if attr.contains(.normal) {
                if unescape {
                    Self.appendUnescapingWhitespace(texts[id], to: &pieces)
                } else {
                    ByteLevel.appendDecoded(texts[id], to: &pieces)
                }
            } else if attr.contains(.byte) {
                pieces.append(Self.byteValue(ofByteToken: texts[id]))
            }
            offsets.append(Int32(pieces.count))
        }
        self.pieces = pieces
        pieceOffsets = offsets
    }

    /// `llama_unescape_whitespace`: U+2581 → space.
    static func appendUnescapingWhitespace(_ text: [UInt8], to out: inout [UInt8]) {
        var i = 0
        while i < text.count {
            if i + 2 < text.count && text[i] == 0xE2 && text[i + 1] == 0x96 && text[i + 2] == 0x81 {
                out.append(0x20)
                i += 3
            } else {
                out.append(text[i])
                i += 1
            }
        }
    }

    /// `token_to_byte`: the two hex digits of `<0xXX>` (parsed like `strtol`, stopping at a non-digit).
    static func byteValue(ofByteToken text: [UInt8]) -> UInt8 {
        var value: UInt32 = 0
        for c in text.dropFirst(3).prefix(2) {
            let digit: UInt32
            switch c {
            case 0x30...0x39: digit = UInt32(c - 0x30)
            case 0x41...0x46: digit = UInt32(c - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(c - 0x61 + 10)
            default: return UInt8(value)
            }
            value = value * 16 + digit
        }
        return UInt8(value)
    }

    // MARK: - Encoding

    /// Converts text to token ids.
    ///
    /// - Parameters:
    ///   - parseSpecial: when true, text spelling a control token (such as `<|im_start|>`) becomes
    ///     that token; when false it is tokenized as ordinary text, so user input can never
    ///     inject control tokens. User-defined tokens (type 4) are recognised either way, as in
    ///     llama.cpp and Hugging Face.
    ///   - addBOS: put `bosTokenID` first (if the vocabulary has one). Pass `addBOS` of the
    ///     tokenizer to follow the model's preference. No EOS is ever added.
    public func encode(_ text: String, parseSpecial: Bool = false, addBOS: Bool = false) -> [Int] {
        encode(bytes: Array(text.utf8), parseSpecial: parseSpecial, addBOS: addBOS)
    }

    /// Converts UTF-8 bytes to token ids (see `encode(_:parseSpecial:addBOS:)`). Invalid UTF-8 is
    /// handled as llama.cpp does: by SentencePiece as bytes, by BPE as U+FFFD.
    public func encode(bytes: [UInt8], parseSpecial: Bool = false, addBOS: Bool = false) -> [Int] {
        encode(bytes: bytes, fragments: partitioner.partition(bytes, parseSpecial: parseSpecial), addBOS: addBOS)
    }

    /// Converts a text made of segments to token ids, parsing control tokens only in the
    /// segments that allow it: a chat prompt whose template markup is parsed while the
    /// messages' own text stays plain, so a pasted `<|im_start|>` cannot open a turn.
    /// Text fragments that meet across a segment boundary are joined before tokenizing, so
    /// when no segment holds special-token text the ids equal
    /// `encode(segments.joined(), parseSpecial: true)`.
    public func encode(segments: [(text: String, parseSpecial: Bool)], addBOS: Bool = false) -> [Int] {
        var bytes: [UInt8] = []
        var fragments: [Fragment] = []
        for segment in segments {
            let piece = Array(segment.text.utf8)
            let offset = bytes.count
            bytes += piece
            for fragment in partitioner.partition(piece, parseSpecial: segment.parseSpecial) {
                switch fragment {
                case let .text(range):
                    let shifted = (range.lowerBound + offset)..<(range.upperBound + offset)
                    if case let .text(previous)? = fragments.last, previous.upperBound == shifted.lowerBound {
                        fragments[fragments.count - 1] = .text(previous.lowerBound..<shifted.upperBound)
                    } else {
                        fragments.append(.text(shifted))
                    }
                case .token: fragments.append(fragment)
                }
            }
        }
        return encode(bytes: bytes, fragments: fragments, addBOS: addBOS)
    }

    private func encode(bytes: [UInt8], fragments: [Fragment], addBOS: Bool) -> [Int] {
        var output: [Int] = []
        output.reserveCapacity(bytes.count / 3 + 2)
        if addBOS, let bos = bosTokenID { output.append(bos) }
        switch kind {
        case .sentencePiece:
            // llama_vocab::impl::tokenize, LLAMA_VOCAB_TYPE_SPM
            var isPreviousSpecial = true
            for fragment in fragments {
                switch fragment {
                case let .text(range):
                    var text: [UInt8] = []
                    text.reserveCapacity(range.count + 1)
                    if addSpacePrefix && isPreviousSpecial { text.append(0x20) }
                    text.append(contentsOf: bytes[range])
                    spm!.encode(SentencePiece.escapeWhitespace(text), into: &output)
                    isPreviousSpecial = false
                case let .token(id):
                    output.append(id)
                    isPreviousSpecial = true
                }
            }
        case .bytePairEncoding:
            var scratch = BytePairEncoding.Scratch()
            for fragment in fragments {
                switch fragment {
                case let .text(range): bpe!.encode(Array(bytes[range]), into: &output, scratch: &scratch)
                case let .token(id): output.append(id)
                }
            }
        }
        return output
    }

    // MARK: - Decoding

    /// The bytes token `id` stands for (`llama_token_to_piece`): empty for control and unknown
    /// tokens unless `renderSpecial`, the text of user-defined tokens, the decoded bytes of
    /// ordinary and byte tokens. Empty for ids outside the vocabulary.
    public func tokenBytes(_ id: Int, renderSpecial: Bool = false) -> [UInt8] {
        guard id >= 0 && id < vocabularyCount else { return [] }
        if !renderSpecial && !attributes[id].isDisjoint(with: [.unknown, .control]) { return [] }
        return Array(pieces[Int(pieceOffsets[id])..<Int(pieceOffsets[id + 1])])
    }

    /// Appends the bytes of `id` (see `tokenBytes`) to `out`, without allocating.
    func appendBytes(of id: Int, renderSpecial: Bool, to out: inout [UInt8]) {
        guard id >= 0 && id < vocabularyCount else { return }
        if !renderSpecial && !attributes[id].isDisjoint(with: [.unknown, .control]) { return }
        out.append(contentsOf: pieces[Int(pieceOffsets[id])..<Int(pieceOffsets[id + 1])])
    }

    /// The token's text exactly as stored in the vocabulary (byte-level BPE texts spell bytes as
    /// GPT-2 characters, SentencePiece texts use "▁" for spaces). Empty for ids out of range.
    public func tokenText(_ id: Int) -> String {
        guard id >= 0 && id < vocabularyCount else { return "" }
        return String(decoding: textBytes[Int(textOffsets[id])..<Int(textOffsets[id + 1])], as: UTF8.self)
    }

    /// The id of the token whose text is exactly `text`, if any.
    public func tokenID(forText text: String) -> Int? {
        table.lookup(Array(text.utf8)).map(Int.init)
    }

    /// Whether `id` is a control token (rendered only with `renderSpecial`).
    public func isControl(_ id: Int) -> Bool {
        id >= 0 && id < attributes.count && attributes[id].contains(.control)
    }

    /// Whether generating `id` should end the turn.
    public func isEndOfGeneration(_ id: Int) -> Bool { endOfGenerationTokenIDs.contains(id) }

    /// Converts ids back to text: `llama_detokenize` with `remove_special = false`, except that the
    /// optional `clean_spaces` pass is not applied. With `addSpacePrefix` (SentencePiece) one space
    /// is removed from the start of the first token, undoing the prefix `encode` adds. Bytes that
    /// do not form valid UTF-8 become U+FFFD; ids outside the vocabulary are skipped.
    public func decode(_ ids: [Int], renderSpecial: Bool = false) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        var removeSpace = addSpacePrefix
        for id in ids {
            let before = bytes.count
            appendBytes(of: id, renderSpecial: renderSpecial, to: &bytes)
            if removeSpace && bytes.count > before && bytes[before] == 0x20 {
                bytes.remove(at: before)
            }
            removeSpace = false
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Typed access to GGUF metadata with `TokenizerError`s that name the key.
struct MetadataReader {
    let metadata: [String: GGUFValue]
    let source: String

    private func invalid(_ key: String, _ reason: String) -> TokenizerError {
        .invalidValue(file: source, key: key, reason: reason)
    }

    func string(_ key: String) throws -> String? {
        guard let value = metadata[key] else { return nil }
        guard let s = value.stringValue else { throw invalid(key, "expected a string, found \(value.type)") }
        return s
    }

    func requiredString(_ key: String) throws -> String {
        guard let s = try string(key) else { throw TokenizerError.missingKey(file: source, key: key) }
        return s
    }

    func bool(_ key: String) throws -> Bool? {
        guard let value = metadata[key] else { return nil }
        guard let b = value.boolValue else { throw invalid(key, "expected a bool, found \(value.type)") }
        return b
    }

    func int(_ key: String) throws -> Int? {
        guard let value = metadata[key] else { return nil }
        guard let i = value.intValue else { throw invalid(key, "expected an integer, found \(value.type)") }
        return i
    }

    func stringArray(_ key: String) throws -> [String]? {
        guard let value = metadata[key] else { return nil }
        guard case let .array(type, items) = value, type == .string || items.isEmpty else {
            throw invalid(key, "expected an array of strings, found \(Self.describe(value))")
        }
        return try items.map { item in
            guard let s = item.stringValue else { throw invalid(key, "expected an array of strings") }
            return s
        }
    }

    func requiredStringArray(_ key: String) throws -> [String] {
        guard let items = try stringArray(key) else { throw TokenizerError.missingKey(file: source, key: key) }
        return items
    }

    /// A numeric array whose element type is one of `allowed` (llama.cpp is that strict).
    func numberArray(_ key: String, allowed: Set<GGUFValueType>) throws -> [Double]? {
        guard let value = metadata[key] else { return nil }
        guard case let .array(type, items) = value, allowed.contains(type) || items.isEmpty else {
            let names = allowed.map { "\($0)" }.sorted().joined(separator: " or ")
            throw invalid(key, "expected an array of \(names), found \(Self.describe(value))")
        }
        return try items.map { item in
            guard let d = item.doubleValue else { throw invalid(key, "non-numeric element") }
            return d
        }
    }

    private static func describe(_ value: GGUFValue) -> String {
        if case let .array(type, _) = value { return "an array of \(type)" }
        return "\(value.type)"
    }
}
