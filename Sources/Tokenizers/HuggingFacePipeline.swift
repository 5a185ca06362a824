import Foundation
import JSON
import ModelFiles

// The tokenizer.json pipeline (tokenizers/src/tokenizer/mod.rs `encode_single_sequence`):
//   1. added tokens with `normalized: false` are cut out of the raw input
//      (`AddedVocabulary::extract_and_normalize`, leftmost-longest, lstrip/rstrip/single_word);
//   2. each remaining piece is normalized, then added tokens with `normalized: true` are cut out
//      of the normalized text;
//   3. each remaining piece is pre-tokenized into words and each word is run through BPE;
//   4. with `add_special_tokens`, the post-processor's template wraps the ids.
// Special added tokens are skipped in 1 and 2 when special text is not parsed (the library's
// `encode_special_tokens = true`), which is Nibble's `parseSpecial: false`.

/// Added tokens to look for in a text: leftmost match first, the longest at a position.
struct AddedTokenMatcher {
    let tokens: [HFAddedToken]
    /// Token indices by first byte, longest content first (so the first match is the longest).
    private let byFirstByte: [[Int]]
    var isEmpty: Bool { tokens.isEmpty }

    init(_ tokens: [HFAddedToken]) {
        self.tokens = tokens
        var table = [[Int]](repeating: [], count: 256)
        for (i, t) in tokens.enumerated() { table[Int(t.content[0])].append(i) }
        for b in 0..<256 {
            table[b].sort { tokens[$0].content.count != tokens[$1].content.count ? tokens[$0].content.count > tokens[$1].content.count : $0 < $1 }
        }
        byFirstByte = table
    }

    /// `AddedVocabulary::find_matches`: (token, range) for every accepted match, ranges possibly
    /// widened by lstrip/rstrip, in text order.
    func matches(in text: [UInt8], parseSpecial: Bool) -> [(token: HFAddedToken, range: Range<Int>)] {
        matches(in: text) { _ in parseSpecial }
    }

    /// `matches(in:parseSpecial:)` where `specialAllowed(range)` says whether a special token's
    /// text at `range` of `text` is the special token (else it stays text).
    func matches(in text: [UInt8], specialAllowed: (Range<Int>) -> Bool) -> [(token: HFAddedToken, range: Range<Int>)] {
        guard !tokens.isEmpty, !text.isEmpty else { return [] }
        var result: [(token: HFAddedToken, range: Range<Int>)] = []
        text.withUnsafeBufferPointer { buffer in
            let n = buffer.count
            var startOffset = 0 // end of the previous accepted match
            var p = 0
            while p < n {
                // The longest token starting at p (aho-corasick LeftmostLongest; matches do not overlap).
                var found: Int? = nil
                for i in byFirstByte[Int(buffer[p])] {
                    let c = tokens[i].content
                    if c.count <= n - p && (1..<c.count).allSatisfy({ buffer[p + $0] == c[$0] }) { found = i; break }
                }
                guard let i = found else { p += 1; continue }
                let token = tokens[i]
                var start = p
                var stop = p + token.content.count
                p = stop
                if token.special && !specialAllowed(start..<stop) { continue }
                if token.singleWord {
                    let startSpace = start == 0 || !Self.endsWithWordCharacter(buffer, before: start)
                    let stopSpace = stop == n || !Self.startsWithWordCharacter(buffer, at: stop)
                    if !startSpace || !stopSpace { continue }
                }
                if token.lstrip {
                    var s = start
                    while s > 0, let (cp, len) = Self.codepoint(endingAt: s, buffer), CodepointFlags.of(cp).isWhitespace { s -= len }
                    start = max(s, startOffset)
                }
                if token.rstrip {
                    while stop < n, let (cp, len) = Self.codepoint(at: stop, buffer), CodepointFlags.of(cp).isWhitespace { stop += len }
                }
                result.append((token, start..<stop))
                startOffset = stop
                p = max(p, stop)
            }
        }
        return result
    }

    /// `\w` of Rust's regex: letters, marks, numbers and connector punctuation (approximated by '_').
    private static func isWordCharacter(_ cp: UInt32) -> Bool {
        let f = CodepointFlags.of(cp)
        return f.isLetter || f.isNumber || f.isAccentMark || cp == 0x5F
    }

    private static func endsWithWordCharacter(_ b: UnsafeBufferPointer<UInt8>, before end: Int) -> Bool {
        guard let (cp, _) = codepoint(endingAt: end, b) else { return false }
        return isWordCharacter(cp)
    }

    private static func startsWithWordCharacter(_ b: UnsafeBufferPointer<UInt8>, at start: Int) -> Bool {
        guard let (cp, _) = codepoint(at: start, b) else { return false }
        return isWordCharacter(cp)
    }

    /// The code point starting at `i` and its length in bytes.
    static func codepoint(at i: Int, _ b: UnsafeBufferPointer<UInt8>) -> (UInt32, Int)? {
        guard i < b.count else { return nil }
        let len = min(UTF8Util.sequenceLength(leadByte: b[i]), b.count - i)
        let cps = UTF8Util.codepoints(UnsafeBufferPointer(rebasing: b[i..<(i + len)]))
        return cps.first.map { ($0, len) }
    }

    /// The code point ending just before `end` and its length in bytes.
    static func codepoint(endingAt end: Int, _ b: UnsafeBufferPointer<UInt8>) -> (UInt32, Int)? {
        guard end > 0 else { return nil }
        var s = end - 1
        while s > 0 && end - s < 4 && b[s] & 0xC0 == 0x80 { s -= 1 }
        let cps = UTF8Util.codepoints(UnsafeBufferPointer(rebasing: b[s..<end]))
        return cps.last.map { ($0, end - s) }
    }
}

/// A tokenizer.json's encoding pipeline (everything but the vocabulary tables the `Tokenizer`
/// class holds).
struct HuggingFacePipeline {
    let normalizers: [HFNormalizer]
    let preTokenizers: [HFPreTokenizer]
    let bpe: BytePairEncoding
    /// Added tokens matched on the raw input / on the normalized text.
    let rawMatcher: AddedTokenMatcher
    let normalizedMatcher: AddedTokenMatcher
    /// The post-processor's special tokens around a single sequence.
    let prefixIDs: [Int]
    let suffixIDs: [Int]

    /// Step 1: the input split around added tokens that are matched before normalization.
    func partition(_ bytes: [UInt8], parseSpecial: Bool) -> [Fragment] {
        partition(bytes) { _ in parseSpecial }
    }

    /// `partition(_:parseSpecial:)` for a text made of segments: added tokens are matched over
    /// the whole text (as `tokenizers` does on the joined string), special ones only where
    /// `specialAllowed(range)` (the match lies in a segment that parses special text).
    func partition(_ bytes: [UInt8], specialAllowed: (Range<Int>) -> Bool) -> [Fragment] {
        guard !bytes.isEmpty else { return [] }
        var fragments: [Fragment] = []
        var pos = 0
        for (token, range) in rawMatcher.matches(in: bytes, specialAllowed: specialAllowed) {
            if range.lowerBound > pos { fragments.append(.text(pos..<range.lowerBound)) }
            fragments.append(.token(token.id))
            pos = range.upperBound
        }
        if pos < bytes.count { fragments.append(.text(pos..<bytes.count)) }
        return fragments
    }

    /// Steps 2 and 3 for one text fragment; `atInputStart` when it starts at offset 0 of the input.
    func encode(_ text: [UInt8], atInputStart: Bool, parseSpecial: Bool, into output: inout [Int],
                scratch: inout BytePairEncoding.Scratch) {
        let normalized = Normalizers.apply(normalizers, to: text)
        var pieces: [(bytes: ArraySlice<UInt8>, token: Int?)] = []
        var pos = 0
        for (token, range) in normalizedMatcher.matches(in: normalized, parseSpecial: parseSpecial) {
            if range.lowerBound > pos { pieces.append((normalized[pos..<range.lowerBound], nil)) }
            pieces.append(([], token.id))
            pos = range.upperBound
        }
        if pos < normalized.count || pieces.isEmpty { pieces.append((normalized[pos...], nil)) }
        for (index, piece) in pieces.enumerated() {
            if let id = piece.token { output.append(id); continue }
            let words = HFPreTokenizers.apply(preTokenizers, to: Array(piece.bytes), atInputStart: atInputStart && index == 0)
            for word in words { bpe.encode(word: word, into: &output, scratch: &scratch) }
        }
    }
}

extension Tokenizer {
    /// Builds the tokenizer of a Hugging Face model folder from its `tokenizer.json`, with
    /// `tokenizer_config.json` (bos/eos/pad tokens, add_bos_token/add_eos_token) and
    /// `generation_config.json` (`eos_token_id`, an int or a list) when present. Token ids are
    /// those of Hugging Face `tokenizers` (`encode(text, add_special_tokens=addBOS)`).
    /// - Throws: `TokenizerError` naming the file and the field at fault, including every
    ///   component (normalizer, pre-tokenizer, Split regex, model, post-processor, decoder) this
    ///   module does not implement.
    public convenience init(huggingFaceFolder folder: String) throws {
        func read(_ name: String, optional: Bool) throws -> JSONValue? {
            let path = folder + "/" + name
            guard let bytes = readWholeFile(path) else {
                if optional { return nil }
                throw TokenizerError.invalidField(file: path, field: "(file)", reason: "missing or unreadable")
            }
            do {
                return try JSONValue.parse(bytes)
            } catch {
                throw TokenizerError.invalidField(file: path, field: "(file)", reason: "not valid JSON at byte \(error.offset): \(error.message)")
            }
        }
        let jsonPath = folder + "/tokenizer.json"
        let json = try read("tokenizer.json", optional: false)!
        let config = try read("tokenizer_config.json", optional: true)
        let generation = try read("generation_config.json", optional: true)
        self.init(huggingFace: try HuggingFaceParts(tokenizerJSON: json, file: jsonPath, config: config,
                                                        configFile: folder + "/tokenizer_config.json",
                                                        generationConfig: generation))
    }

    /// The tokenizer for a model source: a Hugging Face folder with a `tokenizer.json` uses the
    /// tokenizer.json pipeline; everything else (GGUF files, folders with only tokenizer.model)
    /// the `tokenizer.ggml.*` metadata.
    public convenience init(source: any ModelSource) throws {
        if source is HuggingFaceFolder, readWholeFile(source.path + "/tokenizer.json", probeOnly: true) != nil {
            try self.init(huggingFaceFolder: source.path)
        } else {
            try self.init(metadata: source.metadata, source: source.path)
        }
    }
}

/// The file's bytes, or nil if it cannot be read (`probeOnly`: just whether it is a readable file).
func readWholeFile(_ path: String, probeOnly: Bool = false) -> [UInt8]? {
    if probeOnly { return FileManager.default.isReadableFile(atPath: path) ? [] : nil }
    return FileManager.default.contents(atPath: path).map { [UInt8]($0) }
}

/// Everything `Tokenizer.init(huggingFace:)` stores, computed from the JSON files.
struct HuggingFaceParts {
    var kind: Tokenizer.Kind
    var modelName: String
    var preTokenizerName: String
    var bos: Int?, eos: Int?, eot: Int?, unk: Int?, pad: Int?
    var addBOS: Bool, addEOS: Bool, stripsLeadingSpace: Bool, cleanSpaces: Bool
    var endOfGeneration: Set<Int>
    var attributes: [TokenAttributes]
    var texts: [[UInt8]]
    var table: ByteStringTable
    var pieces: [[UInt8]]
    var pipeline: HuggingFacePipeline

    init(tokenizerJSON json: JSONValue, file: String, config: JSONValue?, configFile: String,
         generationConfig: JSONValue?) throws {
        let parsed = try TokenizerJSON(json: json, file: file)
        let model = parsed.model

        // --- vocabulary: the model's, then added tokens (which win for their id)
        var texts = model.vocab
        let count = max(texts.count, (parsed.addedTokens.map(\.id).max() ?? -1) + 1)
        if texts.count < count { texts += [[UInt8]](repeating: [], count: count - texts.count) }
        var modelTable = ByteStringTable(capacity: model.vocab.count)
        for (id, t) in model.vocab.enumerated() where !t.isEmpty { modelTable.set(t, Int32(id)) }
        var table = modelTable
        var attrs = [TokenAttributes](repeating: .normal, count: count)
        // tokenizers keeps a `normalized` added token as its normalized text (its id_to_token and
        // what decode gives), and matches it in the normalized input by that text.
        let addedTokens = parsed.addedTokens.map { token -> HFAddedToken in
            guard token.normalized else { return token }
            var t = token
            t.content = Normalizers.apply(parsed.normalizers, to: token.content)
            return t
        }
        for (raw, t) in zip(parsed.addedTokens, addedTokens) {
            texts[t.id] = t.content
            if table.lookup(raw.content) != Int32(t.id) { table.set(raw.content, Int32(t.id)) }
            if !t.content.isEmpty && table.lookup(t.content) == nil { table.set(t.content, Int32(t.id)) }
            var a: TokenAttributes = t.special ? .control : .userDefined
            if t.lstrip { a.insert(.lstrip) }
            if t.rstrip { a.insert(.rstrip) }
            if t.singleWord { a.insert(.singleWord) }
            if t.normalized { a.insert(.normalized) }
            attrs[t.id] = a
        }
        let unk = model.unknownToken.flatMap { modelTable.lookup($0) }.map(Int.init)
        if let unk, attrs[unk] == .normal { attrs[unk] = .unknown }
        if model.byteFallback {
            for id in 0..<model.vocab.count where attrs[id] == .normal {
                let t = texts[id]
                if t.count == 6 && t.starts(with: [0x3C, 0x30, 0x78]) && t[5] == 0x3E { attrs[id] = .byte }
            }
        }

        // --- the pipeline
        let bpe = try BytePairEncoding(
            vocab: modelTable, vocabularySize: model.vocab.count, mergePairs: model.merges,
            preTokenizer: PreTokenizer(name: "tokenizer.json", rules: [], byteEncode: false, ignoreMerges: model.ignoreMerges),
            unknown: .init(byteFallback: model.byteFallback, unknownID: unk.map(Int32.init), fuseUnknown: model.fuseUnknown),
            file: file)
        for id in parsed.prefixIDs + parsed.suffixIDs where id >= count {
            throw TokenizerError.invalidField(file: file, field: "post_processor", reason: "token id \(id) is not in the vocabulary")
        }
        pipeline = HuggingFacePipeline(
            normalizers: parsed.normalizers, preTokenizers: parsed.preTokenizers, bpe: bpe,
            rawMatcher: AddedTokenMatcher(addedTokens.filter { !$0.normalized }),
            normalizedMatcher: AddedTokenMatcher(addedTokens.filter { $0.normalized && !$0.content.isEmpty }),
            prefixIDs: parsed.prefixIDs, suffixIDs: parsed.suffixIDs)

        // --- decoding
        let decoder = try HFDecoderPlan(parsed.decoders, file: file)
        pieces = texts.map { decoder.decode($0) }
        stripsLeadingSpace = decoder.stripsLeadingSpace

        // --- tokenizer_config.json / generation_config.json
        func tokenID(_ key: String) throws -> Int? {
            guard let value = config?[key], !value.isNull else { return nil }
            let content: String
            if let s = value.string { content = s } else if let s = value["content"]?.string { content = s } else {
                throw TokenizerError.invalidField(file: configFile, field: key, reason: "expected a string or an object with 'content'")
            }
            guard let id = table.lookup(Array(content.utf8)) else {
                throw TokenizerError.invalidField(file: configFile, field: key, reason: "'\(content.printable(limit: 200))' is not a token")
            }
            return Int(id)
        }
        func flag(_ key: String) throws -> Bool? {
            guard let value = config?[key], !value.isNull else { return nil }
            guard let b = value.bool else { throw TokenizerError.invalidField(file: configFile, field: key, reason: "expected a boolean") }
            return b
        }
        bos = try tokenID("bos_token")
        eos = try tokenID("eos_token")
        pad = try tokenID("pad_token")
        self.unk = try tokenID("unk_token") ?? unk
        addBOS = try flag("add_bos_token") ?? !parsed.prefixIDs.isEmpty
        addEOS = try flag("add_eos_token") ?? !parsed.suffixIDs.isEmpty
        cleanSpaces = try flag("clean_up_tokenization_spaces") ?? false
        if bos == nil, let first = parsed.prefixIDs.first { bos = first }

        // End of turn: the special token llama.cpp would recognise by its text.
        let eotTexts: [String] = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>"]
        eot = nil
        for text in eotTexts {
            if let id = table.lookup(Array(text.utf8)).map(Int.init), attrs[id].contains(.control) { eot = id; break }
        }
        var eog = Set<Int>()
        if let value = generationConfig?["eos_token_id"], !value.isNull {
            let items = value.array ?? [value]
            for item in items {
                guard let id = item.int, id >= 0, id < count else {
                    throw TokenizerError.invalidField(file: configFile.replacingSuffix("tokenizer_config.json", with: "generation_config.json"),
                                                      field: "eos_token_id", reason: "expected a token id or a list of them")
                }
                eog.insert(id)
            }
        }
        for id in [eos, eot].compactMap({ $0 }) { eog.insert(id) }
        endOfGeneration = eog

        kind = model.byteFallback ? .sentencePiece : .bytePairEncoding
        modelName = "BPE"
        preTokenizerName = "tokenizer.json"
        attributes = attrs
        self.texts = texts
        self.table = table
    }
}

extension String {
    func replacingSuffix(_ suffix: String, with replacement: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) + replacement : self
    }
}
