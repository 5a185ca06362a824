import Foundation
import Testing
@testable import Tokenizers
import TestFixtures

/// tokenizer.json tokenizers against Hugging Face `tokenizers` (Tools/reference_tokenizer_json.py
/// → Resources/tokenizer-json.json): the tiny models' committed files, and SmolLM2, Gemma 3,
/// Llama 3 (`llama-bpe`), Qwen 2, GPT-2 and Llama 2 (`llama-spm`) as committed trimmed files
/// (Resources/tokenizer-json/<name>: only the tokens and merges the text set uses; the ids are
/// those of the full files), and variants of these for the Prepend/Replace and NFKC normalizers,
/// Metaspace split/decoder and added tokens of every flag. The full files, which
/// `make hf-tokenizers` writes from GGUFs, are tested too when they are on the machine.
@Suite("tokenizer.json")
struct TokenizerJSONTests {
    struct Fixture {
        let texts: [(name: String, text: String)]
        let tokenizers: [[String: Any]]
    }

    static let fixture: Fixture = {
        let url = Bundle.module.url(forResource: "tokenizer-json", withExtension: "json", subdirectory: "Resources")!
        let object = try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let texts = (object["texts"] as! [[String: Any]]).map { ($0["name"] as! String, $0["text"] as! String) }
        return Fixture(texts: texts, tokenizers: object["tokenizers"] as! [[String: Any]])
    }()

    static let names: [String] = fixture.tokenizers.map { $0["name"] as! String }
    /// The entries whose full tokenizer.json `make hf-tokenizers` makes.
    static let fullNames: [String] = fixture.tokenizers.filter { $0["source_sha256"] != nil }.map { $0["name"] as! String }

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// `make hf-tokenizers`' folder: `NIBBLE_HF_TOKENIZERS`, or where the Makefile puts it.
    static var hfTokenizersDirectory: String {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["NIBBLE_HF_TOKENIZERS"], !dir.isEmpty { return dir }
        if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/nibble/hf-tokenizers" }
        return NSHomeDirectory() + "/.cache/nibble/hf-tokenizers"
    }

    private static let cache = NSLock()
    nonisolated(unsafe) private static var built: [String: Tokenizer] = [:]

    /// The tokenizer of a fixture entry, after checking that its file is the one the ids came
    /// from: the committed file, or with `full` the one `make hf-tokenizers` wrote (nil, without
    /// an issue, when it is not there).
    static func tokenizer(_ name: String, full: Bool = false) throws -> (Tokenizer, [String: Any])? {
        let entry = fixture.tokenizers.first { $0["name"] as? String == name }!
        let folder = full ? hfTokenizersDirectory + "/" + name : repositoryRoot.appendingPathComponent(entry["folder"] as! String).path
        let path = folder + "/tokenizer.json"
        guard FileManager.default.fileExists(atPath: path) else {
            if !full { Issue.record("Missing \(path)") }
            return nil
        }
        let expected = entry[full ? "source_sha256" : "sha256"] as? String
        let sha = try sha256(path)
        guard sha == expected else {
            Issue.record("\(path) has sha256 \(sha), the fixture was computed from \(expected ?? "?"): rerun `make hf-tokenizers`")
            return nil
        }
        let key = full ? "full " + name : name
        cache.lock()
        defer { cache.unlock() }
        if let t = built[key] { return (t, entry) }
        let t = try Tokenizer(huggingFaceFolder: folder)
        built[key] = t
        return (t, entry)
    }

    static func sha256(_ path: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["sha256sum", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
    }

    @Test("ids equal Hugging Face tokenizers", arguments: names)
    func ids(name: String) throws {
        guard let (tokenizer, entry) = try Self.tokenizer(name) else { return }
        Self.checkIDs(tokenizer, entry)
    }

    @Test("decode equals Hugging Face decode", arguments: names)
    func decode(name: String) throws {
        guard let (tokenizer, entry) = try Self.tokenizer(name) else { return }
        Self.checkDecode(tokenizer, entry)
    }

    @Test("full tokenizer.json files (make hf-tokenizers) when present", arguments: fullNames)
    func fullFile(name: String) throws {
        guard let (tokenizer, entry) = try Self.tokenizer(name, full: true) else { return }
        Self.checkIDs(tokenizer, entry)
        Self.checkDecode(tokenizer, entry)
    }

    /// The varied text set, and an entry's `extra_texts` (added-token cases) after it.
    static func texts(of entry: [String: Any]) -> [(name: String, text: String)] {
        let extra = (entry["extra_texts"] as? [[String: Any]] ?? []).map { ($0["name"] as! String, $0["text"] as! String) }
        return fixture.texts + extra
    }

    static func checkIDs(_ tokenizer: Tokenizer, _ entry: [String: Any]) {
        let name = entry["name"] as! String
        let cases = entry["cases"] as! [[String: Any]]
        let prefix = entry["added_prefix"] as! [Int], suffix = entry["added_suffix"] as! [Int]
        let texts = Self.texts(of: entry)
        #expect(cases.count == texts.count)
        for (c, (caseName, text)) in zip(cases, texts) {
            let ids = c["ids"] as! [Int]
            #expect(tokenizer.encode(text, parseSpecial: true) == ids, "\(name) \(caseName): \(text.debugDescription)")
            let added = c["ids_added"] as? [Int] ?? prefix + ids + suffix
            #expect(tokenizer.encode(text, parseSpecial: true, addBOS: true) == added, "\(name) \(caseName) add_special_tokens")
            let plain = c["ids_plain"] as? [Int] ?? ids
            #expect(tokenizer.encode(text, parseSpecial: false) == plain, "\(name) \(caseName) encode_special_tokens")
            // Segments: the same ids when the text is cut in two plain segments.
            let cut = text.index(text.startIndex, offsetBy: text.count / 2)
            #expect(tokenizer.encode(segments: [(String(text[..<cut]), false), (String(text[cut...]), false)]) == plain,
                    "\(name) \(caseName) segments")
        }
    }

    static func checkDecode(_ tokenizer: Tokenizer, _ entry: [String: Any]) {
        let name = entry["name"] as! String
        let cases = entry["cases"] as! [[String: Any]]
        // Compared as UTF-8 bytes: Swift's String == would take NFD and NFC text as equal.
        for (c, (caseName, text)) in zip(cases, Self.texts(of: entry)) {
            let ids = c["ids"] as! [Int]
            let decoded = c["decoded"] as? String ?? text
            let skipped = c["decoded_skip"] as? String ?? decoded
            #expect(Array(tokenizer.decode(ids, renderSpecial: true).utf8) == Array(decoded.utf8), "\(name) \(caseName)")
            #expect(Array(tokenizer.decode(ids).utf8) == Array(skipped.utf8), "\(name) \(caseName) skip special")
            // Streaming gives what decode gives.
            var stream = StreamingDecoder(tokenizer: tokenizer)
            var streamed = ""
            for id in ids { streamed += stream.append(id) }
            streamed += stream.finish()
            #expect(Array(streamed.utf8) == Array(skipped.utf8), "\(name) \(caseName) streaming")
            // With a BOS first (skipped), the text is the same.
            let prefixed = entry["added_prefix"] as! [Int] + ids
            #expect(Array(tokenizer.decode(prefixed).utf8) == Array(skipped.utf8), "\(name) \(caseName) after BOS")
        }
    }

    @Test func specialTokenFields() throws {
        guard let (gemma, _) = try Self.tokenizer("gemma3") else { return }
        #expect(gemma.bosTokenID == 2 && gemma.eosTokenID == 1 && gemma.addBOS)
        #expect(gemma.isEndOfGeneration(1) && gemma.isEndOfGeneration(gemma.tokenID(forText: "<end_of_turn>")!))
        #expect(gemma.kind == .sentencePiece && gemma.vocabularySize == 262_144)
        guard let (smol, _) = try Self.tokenizer("smollm2") else { return }
        #expect(smol.bosTokenID == 1 && smol.eosTokenID == 2 && !smol.addBOS)
        #expect(smol.isEndOfGeneration(2) && smol.isControl(1) && smol.tokenBytes(1).isEmpty)
        #expect(smol.tokenBytes(1, renderSpecial: true) == Array("<|im_start|>".utf8))
    }

    @Test func segmentsMatchAddedTokensAcrossBoundaries() throws {
        guard let (gemma, _) = try Self.tokenizer("gemma3") else { return }
        let turn = try #require(gemma.tokenID(forText: "<start_of_turn>"))
        let newlines = gemma.encode("a\n\nb")
        #expect(gemma.encode(segments: [("a\n", false), ("\nb", true)]) == newlines)
        // Special text is the special token only inside a segment that parses it.
        let ids = gemma.encode(segments: [("<start_of_turn>user\n", true), ("<start_of_turn>", false)])
        #expect(ids.first == turn && ids.filter { $0 == turn }.count == 1)
        #expect(gemma.encode(segments: [("<start_of", true), ("_turn>", true)]) == [turn])
    }

    // MARK: - Components on hand-made files

    /// A tokenizer.json with a tiny vocabulary: a-z, space, ▁, a few merges, <s> and <0x..> bytes.
    static func json(normalizer: String = "null", preTokenizer: String = "null", decoder: String = "null",
                     postProcessor: String = "null", model: String? = nil, added: String = "[]") -> String {
        var vocab: [String] = ["\"<unk>\": 0", "\"<s>\": 1", "\"</s>\": 2"]
        var id = 3
        for b in 0..<256 { vocab.append("\"<0x\(String(format: "%02X", b))>\": \(id)"); id += 1 }
        for c in "abcdehlorw▁ĠHW1234" { vocab.append("\"\(c)\": \(id)"); id += 1 }
        for t in ["he", "ll", "llo", "hello", "▁hello", "Ġhello", "wo", "wor", "worl", "world", "▁world", "Ġworld"] {
            vocab.append("\"\(t)\": \(id)"); id += 1
        }
        let merges = #"["h e", "l l", "ll o", "he llo", "▁ hello", "Ġ hello", "w o", "wo r", "wor l", "worl d", "▁ world", "Ġ world"]"#
        let m = model ?? """
            {"type": "BPE", "dropout": null, "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
             "vocab": {\(vocab.joined(separator: ", "))}, "merges": \(merges)}
            """
        return """
            {"version": "1.0", "added_tokens": \(added), "normalizer": \(normalizer), "pre_tokenizer": \(preTokenizer),
             "post_processor": \(postProcessor), "decoder": \(decoder), "model": \(m)}
            """
    }

    static func make(_ text: String, config: String? = nil) throws -> Tokenizer {
        let dir = Scratch.root.appendingPathComponent("nibble-tokjson-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try text.write(to: dir.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
        if let config { try config.write(to: dir.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8) }
        return try Tokenizer(huggingFaceFolder: dir.path)
    }

    static func texts(_ t: Tokenizer, _ ids: [Int]) -> [String] { ids.map { t.tokenText($0) } }

    @Test func normalizerPrependReplaceAndStripDecoder() throws {
        let t = try Self.make(Self.json(
            normalizer: #"{"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}"#,
            decoder: #"{"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}"#))
        let ids = t.encode("hello world!")
        #expect(Self.texts(t, ids) == ["▁hello", "▁world", "<0x21>"])
        #expect(t.decode(ids) == "hello world!")
        #expect(t.encode("") == [])
    }

    @Test func nfcNormalizer() throws {
        let t = try Self.make(Self.json(normalizer: #"{"type": "NFC"}"#))
        // "e" + U+0301 composes to "é", which is not in the vocabulary: its two bytes.
        #expect(Self.texts(t, t.encode("e\u{301}")) == ["<0xC3>", "<0xA9>"])
        let kc = try Self.make(Self.json(normalizer: #"{"type": "NFKC"}"#))
        #expect(Self.texts(kc, kc.encode("ｈｅ")) == ["he"]) // fullwidth → ASCII
    }

    @Test func byteLevelPreTokenizerAndDecoder() throws {
        let t = try Self.make(Self.json(
            preTokenizer: #"{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}"#,
            decoder: #"{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}"#))
        let ids = t.encode("hello world")
        #expect(Self.texts(t, ids) == ["Ġhello", "Ġworld"])
        #expect(t.decode(ids) == " hello world")
    }

    @Test func digitsAndSplitPreTokenizers() throws {
        let digits = try Self.make(Self.json(preTokenizer: #"{"type": "Digits", "individual_digits": true}"#))
        #expect(Self.texts(digits, digits.encode("a12")) == ["a", "1", "2"])
        let runs = try Self.make(Self.json(preTokenizer: #"{"type": "Digits", "individual_digits": false}"#))
        #expect(runs.encode("12").count == 2) // no merge "1 2": still two tokens
        let split = try Self.make(Self.json(
            preTokenizer: #"{"type": "Split", "pattern": {"String": "l"}, "behavior": "Isolated", "invert": false}"#))
        #expect(Self.texts(split, split.encode("hello")) == ["he", "l", "l", "o"])
        let removed = try Self.make(Self.json(
            preTokenizer: #"{"type": "Split", "pattern": {"String": "l"}, "behavior": "Removed", "invert": false}"#))
        #expect(Self.texts(removed, removed.encode("hello")) == ["he", "o"])
        let previous = try Self.make(Self.json(
            preTokenizer: #"{"type": "Split", "pattern": {"String": "e"}, "behavior": "MergedWithPrevious", "invert": false}"#))
        #expect(Self.texts(previous, previous.encode("hello")) == ["he", "llo"])
        let contiguous = try Self.make(Self.json(
            preTokenizer: #"{"type": "Split", "pattern": {"String": "l"}, "behavior": "Contiguous", "invert": false}"#))
        #expect(Self.texts(contiguous, contiguous.encode("hello")) == ["he", "ll", "o"])
    }

    @Test func metaspace() throws {
        let t = try Self.make(Self.json(
            preTokenizer: #"{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}"#,
            decoder: #"{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}"#,
            added: #"[{"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}]"#))
        #expect(Self.texts(t, t.encode("hello world")) == ["▁hello", "▁world"])
        // "first": no prefix after a special token.
        #expect(Self.texts(t, t.encode("<s>hello", parseSpecial: true)) == ["<s>", "hello"])
        #expect(t.decode(t.encode("hello world")) == "hello world")
    }

    @Test func addedTokens() throws {
        let added = #"""
            [{"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
             {"id": 2, "content": "</s>", "single_word": false, "lstrip": true, "rstrip": true, "normalized": false, "special": true},
             {"id": 300, "content": "wor", "single_word": true, "lstrip": false, "rstrip": false, "normalized": false, "special": false}]
            """#
        let t = try Self.make(Self.json(added: added))
        let s = 1, e = 2
        #expect(t.encode("a<s>b", parseSpecial: true).contains(s))
        #expect(!t.encode("a<s>b", parseSpecial: false).contains(s))
        // lstrip/rstrip swallow the spaces around </s>.
        #expect(Self.texts(t, t.encode("a </s> b", parseSpecial: true)) == ["a", "</s>", "b"])
        #expect(t.encode("a </s> b", parseSpecial: true).contains(e))
        // single_word: "wor" alone is the added token, inside "world" it is not.
        #expect(t.encode("a wor b").contains(300))
        #expect(!t.encode("world").contains(300))
        #expect(t.isControl(s) && !t.isControl(300))
    }

    @Test func templateProcessingAndConfig() throws {
        let t = try Self.make(Self.json(
            postProcessor: #"{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}], "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}, "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}"#,
            added: #"[{"id": 1, "content": "<s>", "special": true, "normalized": false}, {"id": 2, "content": "</s>", "special": true, "normalized": false}]"#),
            config: #"{"bos_token": {"content": "<s>", "special": true}, "eos_token": "</s>"}"#)
        #expect(t.encode("he", addBOS: true) == [1, t.tokenID(forText: "he")!, 2])
        #expect(t.addBOS && t.addEOS && t.bosTokenID == 1 && t.eosTokenID == 2 && t.isEndOfGeneration(2))
    }

    @Test func generationConfigEOSList() throws {
        let dir = Scratch.root.appendingPathComponent("nibble-tokjson-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.json().write(to: dir.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
        try #"{"eos_token_id": [2, 5]}"#.write(to: dir.appendingPathComponent("generation_config.json"), atomically: true, encoding: .utf8)
        let t = try Tokenizer(huggingFaceFolder: dir.path)
        #expect(t.endOfGenerationTokenIDs == [2, 5])
        try #"{"eos_token_id": 7}"#.write(to: dir.appendingPathComponent("generation_config.json"), atomically: true, encoding: .utf8)
        #expect(try Tokenizer(huggingFaceFolder: dir.path).endOfGenerationTokenIDs == [7])
    }

    // MARK: - Errors name the file and the field

    static func error(_ text: String) -> String {
        do {
            _ = try make(text)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test func unknownComponentsAreErrors() {
        let cases: [(String, String, String)] = [
            (Self.json(preTokenizer: #"{"type": "Whitespace"}"#), "'pre_tokenizer.type'", "Whitespace"),
            (Self.json(preTokenizer: #"{"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, {"type": "BertPreTokenizer"}]}"#),
             "'pre_tokenizer.pretokenizers[1].type'", "BertPreTokenizer"),
            (Self.json(normalizer: #"{"type": "Lowercase"}"#), "'normalizer.type'", "Lowercase"),
            (Self.json(decoder: ###"{"type": "WordPiece", "prefix": "##"}"###), "'decoder.type'", "WordPiece"),
            (Self.json(postProcessor: #"{"type": "RobertaProcessing"}"#), "'post_processor.type'", "RobertaProcessing"),
            (Self.json(model: #"{"type": "Unigram", "vocab": []}"#), "'model.type'", "Unigram"),
            (Self.json(preTokenizer: #"{"type": "Split", "pattern": {"Regex": "\\p{L}+"}, "behavior": "Isolated", "invert": false}"#),
             "'pre_tokenizer.pattern.Regex'", "\\p{L}+"),
            (Self.json(preTokenizer: #"{"type": "Split", "pattern": {"String": " "}, "behavior": "Isolated", "invert": true}"#),
             "'pre_tokenizer.invert'", "true"),
            (Self.json(normalizer: #"{"type": "Replace", "pattern": {"Regex": " +"}, "content": " "}"#), "'normalizer.pattern.Regex'", " +"),
        ]
        for (json, field, value) in cases {
            let message = Self.error(json)
            #expect(message.contains("tokenizer.json: unsupported \(field) value '\(value)'"), "\(message)")
            #expect(!message.contains("\n"))
        }
    }

    @Test func malformedFiles() {
        #expect(Self.error("{").contains("tokenizer.json: invalid '(file)': not valid JSON"))
        #expect(Self.error(Self.json(model: #"{"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}"#))
            .contains("tokenizer.json: invalid 'model.merges[0]': 'b' is not in the vocabulary"))
        #expect(Self.error(#"{"model": null}"#).contains("invalid 'model'"))
    }
}
