import JSON
import ModelFiles

// tokenizer.json (Hugging Face `tokenizers`) parsed into typed components.
//
// The pipeline is the one of tokenizers/src/tokenizer/mod.rs: added tokens are cut out of the
// input, the rest is normalized, pre-tokenized into words, each word is run through the model
// (BPE), the post-processor adds the template's special tokens, and the decoder maps tokens back
// to text. Each stage is an enum of the component types we implement, keyed by the JSON "type"
// string; `TokenizerJSON.init` rejects anything else with an error naming the file and the field,
// since running a tokenizer with a component left out would silently give other ids.
//
// Adding a component: a case in the stage's enum, a `case "TypeName":` in its parse function
// below (which lists the supported names for the error), and its behaviour in Normalizers.swift,
// HFPreTokenizers.swift, HFDecoders.swift or HuggingFacePipeline.swift.

/// A token from tokenizer.json's `added_tokens`.
struct HFAddedToken {
    var id: Int
    var content: [UInt8]
    /// Special tokens are only extracted when parsing special text and are control tokens.
    var special: Bool
    /// Swallows the whitespace before / after it.
    var lstrip: Bool
    var rstrip: Bool
    /// Matched on the normalized text (else on the raw input).
    var normalized: Bool
    /// Only matched as a whole word (not next to word characters).
    var singleWord: Bool
}

/// tokenizer.json `normalizer` (a `Sequence` is flattened).
enum HFNormalizer: Equatable {
    case nfc, nfkc, nfd, nfkd
    /// Prepends the text to a non-empty piece.
    case prepend([UInt8])
    /// Replaces every occurrence of a literal string.
    case replace(pattern: [UInt8], content: [UInt8])
}

/// `Split`'s `behavior`: what happens to the matched delimiter.
enum HFSplitBehavior: String, Equatable {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"
}

/// Metaspace's `prepend_scheme`.
enum HFPrependScheme: String, Equatable {
    case always, first, never
}

/// tokenizer.json `pre_tokenizer` (a `Sequence` is flattened).
enum HFPreTokenizer {
    /// `Split` with a recognised regex (behavior `Isolated`): matches and gaps become words. The
    /// regexes are mapped to the hand-written splitters of PreTokenizer.swift (llama.cpp's).
    /// `Digits` is also expressed this way (`\p{N}` one by one or in runs).
    case split(SplitRule)
    /// `Split` with a literal string pattern.
    case splitLiteral([UInt8], HFSplitBehavior)
    /// `ByteLevel`: optional prefix space, optional GPT-2 regex split, then bytes → GPT-2 characters.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// `Metaspace`: spaces → replacement, a prefix per scheme, optionally split before each replacement.
    case metaspace(replacement: [UInt8], prependScheme: HFPrependScheme, split: Bool)
}

/// tokenizer.json `decoder` (a `Sequence` is flattened).
enum HFDecoder: Equatable {
    case byteLevel
    case byteFallback
    case fuse
    case strip(content: [UInt8], start: Int, stop: Int)
    case replace(pattern: [UInt8], content: [UInt8])
    case metaspace(replacement: [UInt8], prependScheme: HFPrependScheme)
}

/// tokenizer.json `model` of type BPE.
struct HFBPEModel {
    /// Token texts by id (ids without a text are empty).
    var vocab: [[UInt8]]
    /// Merges in rank order.
    var merges: [(left: [UInt8], right: [UInt8])]
    var unknownToken: [UInt8]?
    var fuseUnknown: Bool
    var byteFallback: Bool
    var ignoreMerges: Bool
}

/// A parsed tokenizer.json.
struct TokenizerJSON {
    var addedTokens: [HFAddedToken]
    var normalizers: [HFNormalizer]
    var preTokenizers: [HFPreTokenizer]
    var model: HFBPEModel
    /// Special token ids the post-processor puts before / after the text (`add_special_tokens`).
    var prefixIDs: [Int]
    var suffixIDs: [Int]
    var decoders: [HFDecoder]

    /// The Split regexes we recognise, as tokenizer.json spells them, and their splitters.
    static let knownRegexes: [(name: String, regex: String, rule: SplitRule)] = [
        ("GPT-2", #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#, .gpt2),
        ("Llama 3", #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#, .llama3),
        ("Qwen 2", #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#, .qwen2),
        ("Qwen 3.5", #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#, .qwen35),
    ]

    init(json: JSONValue, file: String) throws {
        let reader = HFJSONReader(file: file)
        guard json.members != nil else { throw reader.invalid("", "the file is not a JSON object") }

        // --- model
        let modelNode = try reader.object(json["model"], "model")
        model = try reader.bpeModel(modelNode)

        // --- added tokens
        var added: [HFAddedToken] = []
        if let list = json["added_tokens"], !list.isNull {
            guard let items = list.array else { throw reader.invalid("added_tokens", "expected an array, found \(list.typeName)") }
            for (i, item) in items.enumerated() {
                let field = "added_tokens[\(i)]"
                guard let id = item["id"]?.int, id >= 0, id < 1 << 30 else { throw reader.invalid(field + ".id", "expected a token id") }
                guard let content = item["content"]?.string, !content.isEmpty else {
                    throw reader.invalid(field + ".content", "expected a non-empty string")
                }
                let special = item["special"]?.bool ?? false
                added.append(HFAddedToken(id: id, content: Array(content.utf8), special: special,
                                          lstrip: item["lstrip"]?.bool ?? false, rstrip: item["rstrip"]?.bool ?? false,
                                          normalized: item["normalized"]?.bool ?? !special,
                                          singleWord: item["single_word"]?.bool ?? false))
            }
        }
        addedTokens = added

        // --- normalizer, pre-tokenizer, decoder
        normalizers = try reader.normalizers(json["normalizer"], "normalizer")
        preTokenizers = try reader.preTokenizers(json["pre_tokenizer"], "pre_tokenizer")
        decoders = try reader.decoders(json["decoder"], "decoder")

        // --- post-processor: the single-sequence template's special tokens
        var prefix: [Int] = [], suffix: [Int] = []
        try reader.postProcessor(json["post_processor"], "post_processor", prefix: &prefix, suffix: &suffix)
        prefixIDs = prefix
        suffixIDs = suffix
    }
}

/// Typed access to tokenizer.json nodes with errors naming the file and the field.
struct HFJSONReader {
    let file: String

    func invalid(_ field: String, _ reason: String) -> TokenizerError {
        .invalidField(file: file, field: field.isEmpty ? "(root)" : field, reason: reason)
    }

    func unsupported(_ field: String, _ value: String, _ supported: [String]) -> TokenizerError {
        .unsupportedComponent(file: file, field: field, value: value, supported: supported.joined(separator: ", "))
    }

    func object(_ node: JSONValue?, _ field: String) throws -> JSONValue {
        guard let node, node.members != nil else {
            throw invalid(field, node == nil ? "missing" : "expected an object, found \(node!.typeName)")
        }
        return node
    }

    func type(_ node: JSONValue, _ field: String) throws -> String {
        guard let t = node["type"]?.string else { throw invalid(field + ".type", "missing or not a string") }
        return t
    }

    func string(_ node: JSONValue, _ key: String, _ field: String) throws -> String {
        guard let s = node[key]?.string else { throw invalid(field + "." + key, "missing or not a string") }
        return s
    }

    func bool(_ node: JSONValue, _ key: String, _ field: String, default value: Bool) throws -> Bool {
        guard let v = node[key], !v.isNull else { return value }
        guard let b = v.bool else { throw invalid(field + "." + key, "expected a boolean, found \(v.typeName)") }
        return b
    }

    /// A `pattern` of Split/Replace: `{"String": s}` or `{"Regex": r}`.
    func pattern(_ node: JSONValue, _ field: String) throws -> (literal: String?, regex: String?) {
        let p = try object(node["pattern"], field + ".pattern")
        if let s = p["String"]?.string { return (s, nil) }
        if let r = p["Regex"]?.string { return (nil, r) }
        throw invalid(field + ".pattern", "expected {\"String\": …} or {\"Regex\": …}")
    }

    func bpeModel(_ node: JSONValue) throws -> HFBPEModel {
        let type = node["type"]?.string ?? "BPE" // old files omit it; BPE is what has merges
        guard type == "BPE" else { throw unsupported("model.type", type, ["BPE"]) }
        if let d = node["dropout"], !d.isNull { throw unsupported("model.dropout", "\(d)", ["null"]) }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = node[key], !v.isNull, v.string != "" {
                throw unsupported("model." + key, v.string ?? v.typeName, ["null", "\"\""])
            }
        }
        guard let vocabMembers = node["vocab"]?.members else { throw invalid("model.vocab", "missing or not an object") }
        var maxID = -1
        var ids: [Int] = []
        ids.reserveCapacity(vocabMembers.count)
        for (text, value) in vocabMembers {
            guard let id = value.int, id >= 0, id < 1 << 30 else {
                throw invalid("model.vocab", "token '\(text.printable(limit: 200))' has no valid id")
            }
            ids.append(id)
            maxID = max(maxID, id)
        }
        var vocab = [[UInt8]](repeating: [], count: maxID + 1)
        for (k, member) in vocabMembers.enumerated() { vocab[ids[k]] = Array(member.key.utf8) }

        var merges: [(left: [UInt8], right: [UInt8])] = []
        if let list = node["merges"], !list.isNull {
            guard let items = list.array else { throw invalid("model.merges", "expected an array") }
            merges.reserveCapacity(items.count)
            for (i, item) in items.enumerated() {
                if let s = item.string {
                    // "a b": split at the first space (tokenizers' `convert_merges_to_hashmap`).
                    let bytes = Array(s.utf8)
                    guard let space = bytes.firstIndex(of: 0x20) else {
                        throw invalid("model.merges[\(i)]", "'\(s.printable(limit: 200))' is not two tokens separated by a space")
                    }
                    merges.append((Array(bytes[..<space]), Array(bytes[(space + 1)...])))
                } else if let pair = item.array, pair.count == 2, let a = pair[0].string, let b = pair[1].string {
                    merges.append((Array(a.utf8), Array(b.utf8)))
                } else {
                    throw invalid("model.merges[\(i)]", "expected \"a b\" or [a, b]")
                }
            }
        }
        let unk = node["unk_token"]?.string.map { Array($0.utf8) }
        return HFBPEModel(vocab: vocab, merges: merges, unknownToken: unk,
                          fuseUnknown: try bool(node, "fuse_unk", "model", default: false),
                          byteFallback: try bool(node, "byte_fallback", "model", default: false),
                          ignoreMerges: try bool(node, "ignore_merges", "model", default: false))
    }

    func normalizers(_ node: JSONValue?, _ field: String) throws -> [HFNormalizer] {
        guard let node, !node.isNull else { return [] }
        let n = try object(node, field)
        let t = try type(n, field)
        switch t {
        case "Sequence":
            guard let items = n["normalizers"]?.array else { throw invalid(field + ".normalizers", "expected an array") }
            return try items.enumerated().flatMap { try normalizers($1, "\(field).normalizers[\($0)]") }
        case "NFC": return [.nfc]
        case "NFKC": return [.nfkc]
        case "NFD": return [.nfd]
        case "NFKD": return [.nfkd]
        case "Prepend": return [.prepend(Array(try string(n, "prepend", field).utf8))]
        case "Replace":
            let (literal, regex) = try pattern(n, field)
            guard let literal, !literal.isEmpty else {
                throw unsupported(field + ".pattern.Regex", regex ?? "", ["a non-empty {\"String\": …} pattern"])
            }
            return [.replace(pattern: Array(literal.utf8), content: Array(try string(n, "content", field).utf8))]
        default:
            throw unsupported(field + ".type", t, ["Sequence", "NFC", "NFKC", "NFD", "NFKD", "Prepend", "Replace"])
        }
    }

    func preTokenizers(_ node: JSONValue?, _ field: String) throws -> [HFPreTokenizer] {
        guard let node, !node.isNull else { return [] }
        let n = try object(node, field)
        let t = try type(n, field)
        switch t {
        case "Sequence":
            guard let items = n["pretokenizers"]?.array else { throw invalid(field + ".pretokenizers", "expected an array") }
            return try items.enumerated().flatMap { try preTokenizers($1, "\(field).pretokenizers[\($0)]") }
        case "ByteLevel":
            return [.byteLevel(addPrefixSpace: try bool(n, "add_prefix_space", field, default: true),
                               useRegex: try bool(n, "use_regex", field, default: true))]
        case "Digits":
            return [.split(try bool(n, "individual_digits", field, default: false) ? .isolatedNumbers : .numberRuns)]
        case "Metaspace":
            let replacement = try string(n, "replacement", field)
            guard replacement.unicodeScalars.count == 1 else { throw invalid(field + ".replacement", "expected one character") }
            var scheme = HFPrependScheme.always
            if let s = n["prepend_scheme"]?.string {
                guard let v = HFPrependScheme(rawValue: s) else { throw unsupported(field + ".prepend_scheme", s, ["always", "first", "never"]) }
                scheme = v
            } else if n["add_prefix_space"]?.bool == false {
                scheme = .never // files before prepend_scheme existed
            }
            return [.metaspace(replacement: Array(replacement.utf8), prependScheme: scheme,
                               split: try bool(n, "split", field, default: true))]
        case "Split":
            if try bool(n, "invert", field, default: false) { throw unsupported(field + ".invert", "true", ["false"]) }
            let behaviorName = try string(n, "behavior", field)
            guard let behavior = HFSplitBehavior(rawValue: behaviorName) else {
                throw unsupported(field + ".behavior", behaviorName, ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"])
            }
            let (literal, regex) = try pattern(n, field)
            if let literal {
                guard !literal.isEmpty else { throw invalid(field + ".pattern.String", "empty pattern") }
                return [.splitLiteral(Array(literal.utf8), behavior)]
            }
            let r = regex!
            guard let known = TokenizerJSON.knownRegexes.first(where: { $0.regex == r }) else {
                throw unsupported(field + ".pattern.Regex", r, TokenizerJSON.knownRegexes.map { "the \($0.name) regex" })
            }
            guard behavior == .isolated else {
                throw unsupported(field + ".behavior", behaviorName, ["Isolated (with a Regex pattern)"])
            }
            return [.split(known.rule)]
        default:
            throw unsupported(field + ".type", t, ["Sequence", "ByteLevel", "Split", "Digits", "Metaspace"])
        }
    }

    func decoders(_ node: JSONValue?, _ field: String) throws -> [HFDecoder] {
        guard let node, !node.isNull else { return [] }
        let n = try object(node, field)
        let t = try type(n, field)
        switch t {
        case "Sequence":
            guard let items = n["decoders"]?.array else { throw invalid(field + ".decoders", "expected an array") }
            return try items.enumerated().flatMap { try decoders($1, "\(field).decoders[\($0)]") }
        case "ByteLevel": return [.byteLevel]
        case "ByteFallback": return [.byteFallback]
        case "Fuse": return [.fuse]
        case "Strip":
            let content = try string(n, "content", field)
            guard let start = n["start"]?.int, let stop = n["stop"]?.int, start >= 0, stop >= 0 else {
                throw invalid(field, "Strip needs non-negative 'start' and 'stop'")
            }
            return [.strip(content: Array(content.utf8), start: start, stop: stop)]
        case "Replace":
            let (literal, regex) = try pattern(n, field)
            guard let literal, !literal.isEmpty else {
                throw unsupported(field + ".pattern.Regex", regex ?? "", ["a non-empty {\"String\": …} pattern"])
            }
            return [.replace(pattern: Array(literal.utf8), content: Array(try string(n, "content", field).utf8))]
        case "Metaspace":
            let replacement = try string(n, "replacement", field)
            var scheme = HFPrependScheme.always
            if let s = n["prepend_scheme"]?.string {
                guard let v = HFPrependScheme(rawValue: s) else { throw unsupported(field + ".prepend_scheme", s, ["always", "first", "never"]) }
                scheme = v
            } else if n["add_prefix_space"]?.bool == false {
                scheme = .never
            }
            return [.metaspace(replacement: Array(replacement.utf8), prependScheme: scheme)]
        default:
            throw unsupported(field + ".type", t, ["Sequence", "ByteLevel", "ByteFallback", "Fuse", "Strip", "Replace", "Metaspace"])
        }
    }

    /// The special tokens `add_special_tokens` puts around a single sequence.
    func postProcessor(_ node: JSONValue?, _ field: String, prefix: inout [Int], suffix: inout [Int]) throws {
        guard let node, !node.isNull else { return }
        let n = try object(node, field)
        let t = try type(n, field)
        switch t {
        case "Sequence":
            guard let items = n["processors"]?.array else { throw invalid(field + ".processors", "expected an array") }
            for (i, item) in items.enumerated() {
                // Each processor wraps the previous one's result.
                var p: [Int] = [], s: [Int] = []
                try postProcessor(item, "\(field).processors[\(i)]", prefix: &p, suffix: &s)
                prefix = p + prefix
                suffix += s
            }
        case "ByteLevel":
            return // offsets only
        case "TemplateProcessing":
            guard let single = n["single"]?.array else { throw invalid(field + ".single", "expected an array") }
            let specials = n["special_tokens"]
            var seenSequence = false
            for (i, piece) in single.enumerated() {
                let itemField = "\(field).single[\(i)]"
                if let seq = piece["Sequence"] {
                    guard seq["id"]?.string == "A", !seenSequence else {
                        throw invalid(itemField, "a single-sequence template must hold the sequence A once")
                    }
                    seenSequence = true
                } else if let tok = piece["SpecialToken"], let name = tok["id"]?.string {
                    guard let entry = specials?[name], let ids = entry["ids"]?.array else {
                        throw invalid("\(field).special_tokens", "no entry for '\(name.printable(limit: 200))'")
                    }
                    let values = try ids.map { v -> Int in
                        guard let id = v.int, id >= 0 else { throw invalid("\(field).special_tokens.\(name).ids", "expected token ids") }
                        return id
                    }
                    if seenSequence { suffix += values } else { prefix += values }
                } else {
                    throw invalid(itemField, "expected {\"Sequence\": …} or {\"SpecialToken\": …}")
                }
            }
            guard seenSequence else { throw invalid(field + ".single", "the template has no sequence A") }
        default:
            throw unsupported(field + ".type", t, ["Sequence", "ByteLevel", "TemplateProcessing"])
        }
    }
}
