// Pre-tokenization: splitting text into the "words" that BPE merges never cross.
//
// Ported from llama.cpp: the per-`tokenizer.ggml.pre` regex lists in `llm_tokenizer_bpe`'s
// constructor (src/llama-vocab.cpp) and `unicode_regex_split` with its hand-written splitters
// (src/unicode.cpp). llama.cpp applies the regexes of a pre-tokenizer one after the other; each
// one re-splits every piece produced so far into its matches and the gaps between them. Regexes
// with a hand-written splitter (GPT-2, Llama 3, Qwen2, Qwen3.5, newlines) are ported line by line;
// the few others llama.cpp runs through `std::regex` are simple enough (a character class, an
// optional leading space, a run) to be written here as matchers with identical results. No regex
// engine is involved, so the result does not depend on ICU or on the Swift Unicode tables.

/// One regex of a pre-tokenizer, as llama.cpp spells it in `llm_tokenizer_bpe`.
enum SplitRule: Sendable {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)` (+ `\s+`):
    /// `unicode_regex_split_custom_gpt2`.
    case gpt2
    /// `(?i:'s|…)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`:
    /// `unicode_regex_split_custom_llama3`.
    case llama3
    /// As `llama3` with `\p{N}` instead of `\p{N}{1,3}`: `unicode_regex_split_custom_qwen2`.
    case qwen2
    /// As `qwen2` with letter runs also taking `\p{M}`: `unicode_regex_split_custom_qwen35`.
    case qwen35
    /// `[^\n]+|[\n]+`: `unicode_regex_split_custom_newlines`.
    case newlines
    /// `\p{N}`: every number code point on its own.
    case isolatedNumbers
    /// `\p{N}+`.
    case numberRuns
    /// `[0-9][0-9][0-9]`.
    case asciiDigitTriples
    /// `[\p{P}\$\+<=>\^~\|]+`, plus `` ` `` when `backtick` (Falcon).
    case punctuationRuns(backtick: Bool)
    /// `[\r\n]`.
    case isolatedLineBreaks
    /// `\s?\p{L}+`.
    case optionalSpaceLetters
    /// `\s?\p{P}+`.
    case optionalSpacePunctuation
    /// `\s?[ranges]+` over literal code point ranges.
    case optionalSpaceRun([ClosedRange<UInt32>])
    /// `[ranges]+` over literal code point ranges.
    case run([ClosedRange<UInt32>])
    /// `\s+$`.
    case trailingWhitespace
}

/// How a BPE vocabulary pre-processes text, derived from `tokenizer.ggml.pre`.
struct PreTokenizer: Sendable {
    /// The name as read from the file (`default` when the key is absent).
    var name: String
    var rules: [SplitRule]
    /// GPT-2 byte-to-unicode encoding of each word before BPE (false for SPM-style BPE, Gemma 4).
    var byteEncode = true
    /// Replace spaces by U+2581 before splitting (SPM-style BPE, Gemma 4).
    var escapeWhitespace = false
    /// Emit a whole word that is a token without running merges (`ignore_merges`).
    var ignoreMerges = false
    /// llama.cpp's default for `add_bos` when the file does not say.
    var addBOSDefault = false
    /// llama.cpp clears the default BOS id for this pre-tokenizer (ChatGLM).
    var clearsDefaultBOS = false
    /// llama.cpp's `clean_spaces` (HF `clean_up_tokenization_spaces`); informational, see `Tokenizer.decode`.
    var cleanSpaces = true
    /// Gemma 4: a word made only of newlines is looked up as a whole first.
    var newlineWordsAsTokens = false

    // Literal classes of the DeepSeek regexes, as code point ranges (copied from llama-vocab.cpp;
    // written as numbers so that no editor or compiler normalisation can alter them).
    static let deepseekLetters: [ClosedRange<UInt32>] = [
        0x41...0x5A, 0x61...0x7A, 0xB5...0xB5, 0xC0...0xD6, 0xD8...0xF6, 0xF8...0x1BA, 0x1BC...0x1BF,
        0x1C4...0x293, 0x295...0x2AF, 0x370...0x373, 0x376...0x377, 0x37B...0x37D, 0x37F...0x37F,
        0x386...0x386, 0x388...0x38A, 0x38C...0x38C, 0x38E...0x3A1, 0x3A3...0x3F5, 0x3F7...0x481,
        0x48A...0x52F, 0x531...0x556, 0x10A0...0x10C5, 0x13A0...0x13F5, 0x13F8...0x13FD, 0x1C90...0x1CBA,
        0x1CBD...0x1CBF, 0x1D00...0x1D2B, 0x1D6B...0x1D77, 0x1D79...0x1D9A, 0x1E00...0x1F15, 0x1F18...0x1F1D,
        0x1F20...0x1F45, 0x1F48...0x1F4D, 0x1F50...0x1F57, 0x1F59...0x1F59, 0x1F5B...0x1F5B, 0x1F5D...0x1F5D,
        0x1F5F...0x1F7D, 0x1F80...0x1FB4, 0x1FB6...0x1FBC, 0x1FBE...0x1FBE, 0x1FC2...0x1FC4, 0x1FC6...0x1FCC,
        0x1FD0...0x1FD3, 0x1FD6...0x1FDB, 0x1FE0...0x1FEC, 0x1FF2...0x1FF4, 0x1FF6...0x1FFC, 0x2102...0x2102,
        0x2107...0x2107, 0x210A...0x2113, 0x2115...0x2115, 0x2119...0x211D, 0x2124...0x2124, 0x2126...0x2126,
        0x2128...0x2128, 0x212A...0x212D, 0x212F...0x2134, 0x2139...0x2139, 0x213C...0x213F, 0x2145...0x2149,
        0x214E...0x214E, 0x2183...0x2184, 0x2C00...0x2C7B, 0x2C7E...0x2CE4, 0x2CEB...0x2CEE, 0x2CF2...0x2CF3,
        0xA640...0xA66D, 0xA680...0xA69B, 0xA722...0xA76F, 0xA771...0xA787, 0xA78B...0xA78E, 0xAB70...0xABBF,
        0xFB00...0xFB06, 0xFB13...0xFB17, 0xFF21...0xFF3A, 0xFF41...0xFF5A, 0x10400...0x1044F, 0x104B0...0x104D3,
        0x104D8...0x104FB, 0x10C80...0x10CB2, 0x10CC0...0x10CF2, 0x118A0...0x118DF, 0x1E900...0x1E943,
    ]
    static let deepseekPunctuation: [ClosedRange<UInt32>] = [
        0x21...0x2F, 0x3A...0x7E, 0xFF01...0xFF0F, 0xFF1A...0xFF5E, 0x2018...0x201F, 0x3000...0x3002,
    ]
    static let deepseekCJK: [ClosedRange<UInt32>] = [0x4E00...0x9FA5, 0x800...0x4E00, 0xAC00...0xD7FF]

    /// The pre-tokenizer llama.cpp uses for `tokenizer.ggml.pre == name` (`llama_vocab::impl::load`
    /// and `llm_tokenizer_bpe`), or nil when llama.cpp does not know the name or uses a regex we
    /// have not ported (then tokenizing would silently differ, so the caller reports an error).
    static func named(_ name: String?) -> PreTokenizer? {
        let gpt2Only: [SplitRule] = [.gpt2]
        let digitsThenGPT2: [SplitRule] = [.isolatedNumbers, .gpt2]
        // A missing name gets llama.cpp's "default" (with a loud warning there).
        guard let name, !name.isEmpty else {
            return PreTokenizer(name: "default", rules: defaultRules)
        }
        switch name {
        case "default":
            return PreTokenizer(name: name, rules: defaultRules)
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano":
            return PreTokenizer(name: name, rules: [.llama3], ignoreMerges: true, addBOSDefault: true)
        case "dbrx", "smaug-bpe":
            return PreTokenizer(name: name, rules: [.llama3])
        case "chatglm-bpe":
            return PreTokenizer(name: name, rules: [.llama3], clearsDefaultBOS: true)
        case "glm4", "glm5":
            return PreTokenizer(name: name, rules: [.llama3], ignoreMerges: true, clearsDefaultBOS: true)
        case "deepseek-llm":
            return PreTokenizer(name: name, rules: [
                .isolatedLineBreaks,
                .optionalSpaceRun(deepseekLetters),
                .optionalSpaceRun(deepseekPunctuation),
                .trailingWhitespace,
                .run(deepseekCJK),
                .numberRuns,
            ], cleanSpaces: false)
        case "deepseek-coder":
            return PreTokenizer(name: name, rules: [
                .isolatedLineBreaks,
                .optionalSpaceLetters,
                .optionalSpacePunctuation,
                .run(deepseekCJK),
                .isolatedNumbers,
            ], cleanSpaces: false)
        case "falcon":
            return PreTokenizer(name: name, rules: [.punctuationRuns(backtick: true), .gpt2, .asciiDigitTriples])
        case "mpt", "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
             "mellum", "modern-bert", "olmo", "jais", "exaone4", "jina-v1-en", "jina-v2-code", "roberta-bpe":
            return PreTokenizer(name: name, rules: gpt2Only)
        case "trillion", "granite-docling":
            return PreTokenizer(name: name, rules: gpt2Only, cleanSpaces: false)
        case "starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2":
            return PreTokenizer(name: name, rules: digitsThenGPT2)
        case "command-r", "smollm":
            return PreTokenizer(name: name, rules: digitsThenGPT2, cleanSpaces: false)
        case "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "solar-open", "grok-2":
            return PreTokenizer(name: name, rules: [.qwen2], cleanSpaces: false)
        case "stablelm2", "megrez":
            return PreTokenizer(name: name, rules: [.qwen2])
        case "qwen35":
            return PreTokenizer(name: name, rules: [.qwen35], cleanSpaces: false)
        case "gemma4", "granite-embed-multi-311m":
            return PreTokenizer(name: name, rules: [.newlines], byteEncode: false, escapeWhitespace: true,
                                newlineWordsAsTokens: true)
        case "sarvam-moe":
            return PreTokenizer(name: name, rules: [.newlines], byteEncode: false, escapeWhitespace: true,
                                cleanSpaces: false)
        default:
            return nil
        }
    }

    /// llama.cpp's fallback regex list (`default:` in `llm_tokenizer_bpe`).
    static let defaultRules: [SplitRule] = [
        .punctuationRuns(backtick: false), .gpt2, .numberRuns, .asciiDigitTriples,
    ]

    /// Splits `codepoints` into words: the lengths (in code points) of consecutive pieces.
    func split(_ cpts: [UInt32], flags: [CodepointFlags]) -> [Int] {
        var offsets = cpts.isEmpty ? [] : [cpts.count]
        for rule in rules {
            offsets = Splitter(cpts: cpts, flags: flags).apply(rule, to: offsets)
        }
        return offsets
    }
}

/// Applies one `SplitRule` to every current piece. `cpts`/`flags` are the whole text; each piece
/// is split on its own, with its ends acting as the ends of the text (as in llama.cpp, where every
/// splitter sees positions outside the piece as `OUT_OF_RANGE`).
struct Splitter {
    let cpts: [UInt32]
    let flags: [CodepointFlags]

    static let outOfRange: UInt32 = 0xFFFF_FFFF

    func apply(_ rule: SplitRule, to offsets: [Int]) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(offsets.count * 2)
        var start = 0
        for length in offsets {
            let end = start + length
            switch rule {
            case .gpt2: gpt2(start, end, &out)
            case .llama3: llama3Family(start, end, &out, singleDigits: false, marks: false)
            case .qwen2: llama3Family(start, end, &out, singleDigits: true, marks: false)
            case .qwen35: llama3Family(start, end, &out, singleDigits: true, marks: true)
            case .newlines: newlines(start, end, &out)
            default: matches(rule, start, end, &out)
            }
            start = end
        }
        return out
    }

    // MARK: Hand-written splitters (unicode.cpp)

    /// Length of the English contraction (`'s 't 'm 'd` → 2, `'re 've 'll` → 3) whose
    /// apostrophe is followed by code points `n1`, `n2` (`outOfRange` past the end), or 0.
    @inline(__always)
    private static func contractionLength(_ n1: UInt32, _ n2: UInt32) -> Int {
        if n1 == 0x73 || n1 == 0x74 || n1 == 0x6D || n1 == 0x64 { return 2 }  // s t m d
        if (n1 == 0x72 && n2 == 0x65) || (n1 == 0x76 && n2 == 0x65) || (n1 == 0x6C && n2 == 0x6C) { return 3 }  // re ve ll
        return 0
    }

    /// `unicode_regex_split_custom_gpt2`.
    private func gpt2(_ ini: Int, _ end: Int, _ out: inout [Int]) {
        @inline(__always) func cpt(_ p: Int) -> UInt32 { p >= ini && p < end ? cpts[p] : Self.outOfRange }
        @inline(__always) func fl(_ p: Int) -> CodepointFlags { p >= ini && p < end ? flags[p] : .none }
        var prevEnd = ini
        @inline(__always) func addToken(_ e: Int) -> Int {
            let len = e - prevEnd
            if len > 0 { out.append(len) }
            prevEnd = e
            return len
        }
        var pos = ini
        while pos < end {
            let c = cpt(pos)
            let f = fl(pos)
            // 's|'t|'re|'ve|'m|'ll|'d
            if c == 0x27, case let n = Self.contractionLength(cpt(pos + 1), cpt(pos + 2)), n > 0 {
                pos += addToken(pos + n); continue
            }
            var f2 = c == 0x20 ? fl(pos + 1) : f
            // <space>?\p{L}+
            if f2.isLetter {
                if c == 0x20 { pos += 1 }
                while f2.isLetter { pos += 1; f2 = fl(pos) }
                _ = addToken(pos); continue
            }
            // <space>?\p{N}+
            if f2.isNumber {
                if c == 0x20 { pos += 1 }
                while f2.isNumber { pos += 1; f2 = fl(pos) }
                _ = addToken(pos); continue
            }
            // <space>?[^\s\p{L}\p{N}]+
            if !(f2.isWhitespace || f2.isLetter || f2.isNumber) && f2.isPresent {
                if c == 0x20 { pos += 1 }
                while !(f2.isWhitespace || f2.isLetter || f2.isNumber) && f2.isPresent { pos += 1; f2 = fl(pos) }
                _ = addToken(pos); continue
            }
            var numWhitespaces = 0
            while fl(pos + numWhitespaces).isWhitespace { numWhitespaces += 1 }
            // \s+(?!\S)
            if numWhitespaces > 1 && cpt(pos + numWhitespaces) != Self.outOfRange {
                pos += numWhitespaces - 1
                _ = addToken(pos); continue
            }
            // \s+
            if numWhitespaces > 0 {
                pos += numWhitespaces
                _ = addToken(pos); continue
            }
            // no match
            pos += 1
            _ = addToken(pos)
        }
    }

    /// `unicode_regex_split_custom_llama3` (`singleDigits: false`), `_qwen2` (`singleDigits: true`)
    /// and `_qwen35` (`singleDigits: true, marks: true`), which differ only in those two places.
    private func llama3Family(_ ini: Int, _ end: Int, _ out: inout [Int], singleDigits: Bool, marks: Bool) {
        @inline(__always) func cpt(_ p: Int) -> UInt32 { p >= ini && p < end ? cpts[p] : Self.outOfRange }
        @inline(__always) func fl(_ p: Int) -> CodepointFlags { p >= ini && p < end ? flags[p] : .none }
        // Only ASCII letters lower-case to the letters of the contractions, so ASCII folding is
        // exactly `unicode_tolower` here.
        @inline(__always) func lower(_ c: UInt32) -> UInt32 { c >= 0x41 && c <= 0x5A ? c + 0x20 : c }
        @inline(__always) func wordChar(_ f: CodepointFlags) -> Bool { f.isLetter || (marks && f.isAccentMark) }
        var prevEnd = ini
        @inline(__always) func addToken(_ e: Int) -> Int {
            let len = e - prevEnd
            if len > 0 { out.append(len) }
            prevEnd = e
            return len
        }
        var pos = ini
        while pos < end {
            let c = cpt(pos)
            let f = fl(pos)
            // (?i:'s|'t|'re|'ve|'m|'ll|'d)
            if c == 0x27, case let n = Self.contractionLength(lower(cpt(pos + 1)), lower(cpt(pos + 2))), n > 0 {
                pos += addToken(pos + n); continue
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+   (qwen35: [\p{L}\p{M}]+)
            if !(c == 0x0D || c == 0x0A || f.isNumber) {
                if wordChar(f) || wordChar(fl(pos + 1)) {
                    pos += 1
                    while wordChar(fl(pos)) { pos += 1 }
                    _ = addToken(pos); continue
                }
            }
            if f.isNumber {
                if singleDigits {
                    // \p{N}
                    pos += 1
                    _ = addToken(pos); continue
                }
                // \p{N}{1,3}
                var first = pos
                while fl(pos).isNumber {
                    pos += 1
                    if pos - first >= 3 {
                        _ = addToken(pos)
                        first = pos
                    }
                }
                _ = addToken(pos); continue
            }
            // <space>?[^\s\p{L}\p{N}]+[\r\n]*   (qwen35 also excludes \p{M})
            var f2 = c == 0x20 ? fl(pos + 1) : f
            // llama.cpp tests `flags` (not `flags2`) for presence on entry; kept as is.
            if !(f2.isWhitespace || wordChar(f2) || f2.isNumber) && f.isPresent {
                if c == 0x20 { pos += 1 }
                while !(f2.isWhitespace || wordChar(f2) || f2.isNumber) && f2.isPresent { pos += 1; f2 = fl(pos) }
                var c2 = cpt(pos)
                while c2 == 0x0D || c2 == 0x0A { pos += 1; c2 = cpt(pos) }
                _ = addToken(pos); continue
            }
            var numWhitespaces = 0
            var lastEndROrN = 0
            while fl(pos + numWhitespaces).isWhitespace {
                let c2 = cpt(pos + numWhitespaces)
                if c2 == 0x0D || c2 == 0x0A { lastEndROrN = pos + numWhitespaces + 1 }
                numWhitespaces += 1
            }
            // \s*[\r\n]+
            if lastEndROrN > 0 {
                pos = lastEndROrN
                _ = addToken(pos); continue
            }
            // \s+(?!\S)
            if numWhitespaces > 1 && cpt(pos + numWhitespaces) != Self.outOfRange {
                pos += numWhitespaces - 1
                _ = addToken(pos); continue
            }
            // \s+
            if numWhitespaces > 0 {
                pos += numWhitespaces
                _ = addToken(pos); continue
            }
            pos += 1
            _ = addToken(pos)
        }
    }

    /// `unicode_regex_split_custom_newlines`.
    private func newlines(_ ini: Int, _ end: Int, _ out: inout [Int]) {
        var pos = ini
        while pos < end {
            let isNewline = cpts[pos] == 0x0A
            let runStart = pos
            while pos < end && (cpts[pos] == 0x0A) == isNewline { pos += 1 }
            out.append(pos - runStart)
        }
    }

    // MARK: Regexes llama.cpp runs through std::regex

    /// `\s` as std::regex sees it in llama.cpp: ASCII `isspace`, and every other code point that
    /// llama.cpp classifies as whitespace (which `unicode_regex_split` rewrites to U+000B first).
    @inline(__always) private func isRegexSpace(_ p: Int) -> Bool {
        let c = cpts[p]
        return c < 0x80 ? UTF8Util.isCSpace(UInt8(c)) : flags[p].isWhitespace
    }

    /// The code point a literal character class sees: non-ASCII whitespace was rewritten to U+000B.
    @inline(__always) private func classCodepoint(_ p: Int) -> UInt32 {
        let c = cpts[p]
        return c >= 0x80 && flags[p].isWhitespace ? 0x0B : c
    }

    @inline(__always) private func inRanges(_ ranges: [ClosedRange<UInt32>], _ p: Int) -> Bool {
        let c = classCodepoint(p)
        for r in ranges where r.contains(c) { return true }
        return false
    }

    /// Emulates `unicode_regex_split_stl`: leftmost matches, each match and each gap between
    /// matches becomes a piece. None of these patterns can match the empty string.
    private func matches(_ rule: SplitRule, _ ini: Int, _ end: Int, _ out: inout [Int]) {
        var prev = ini
        var pos = ini
        while pos < end {
            if let matchEnd = match(rule, at: pos, ini, end), matchEnd > pos {
                if pos > prev { out.append(pos - prev) }
                out.append(matchEnd - pos)
                prev = matchEnd
                pos = matchEnd
            } else {
                pos += 1
            }
        }
        if end > prev { out.append(end - prev) }
    }

    /// End of the match of `rule` starting exactly at `p`, if any.
    private func match(_ rule: SplitRule, at p: Int, _ ini: Int, _ end: Int) -> Int? {
        switch rule {
        case .isolatedNumbers:
            return flags[p].isNumber ? p + 1 : nil
        case .numberRuns:
            return run(from: p, end) { flags[$0].isNumber }
        case .asciiDigitTriples:
            guard p + 3 <= end else { return nil }
            for k in p..<(p + 3) where !(cpts[k] >= 0x30 && cpts[k] <= 0x39) { return nil }
            return p + 3
        case let .punctuationRuns(backtick):
            return run(from: p, end) { k in
                let c = cpts[k]
                if flags[k].isPunctuation { return true }
                switch c {
                case 0x24, 0x2B, 0x3C, 0x3D, 0x3E, 0x5E, 0x7E, 0x7C: return true // $ + < = > ^ ~ |
                case 0x60: return backtick
                default: return false
                }
            }
        case .isolatedLineBreaks:
            return cpts[p] == 0x0D || cpts[p] == 0x0A ? p + 1 : nil
        case .optionalSpaceLetters:
            return optionalSpaceRun(p, end) { flags[$0].isLetter }
        case .optionalSpacePunctuation:
            return optionalSpaceRun(p, end) { flags[$0].isPunctuation }
        case let .optionalSpaceRun(ranges):
            return optionalSpaceRun(p, end) { inRanges(ranges, $0) }
        case let .run(ranges):
            return run(from: p, end) { inRanges(ranges, $0) }
        case .trailingWhitespace:
            guard isRegexSpace(p) else { return nil }
            var k = p
            while k < end && isRegexSpace(k) { k += 1 }
            return k == end ? end : nil
        case .gpt2, .llama3, .qwen2, .qwen35, .newlines:
            return nil // handled by the dedicated splitters
        }
    }

    @inline(__always) private func run(from p: Int, _ end: Int, _ member: (Int) -> Bool) -> Int? {
        var k = p
        while k < end && member(k) { k += 1 }
        return k > p ? k : nil
    }

    /// `\s?[class]+` with backtracking: take the space only if the class follows it.
    @inline(__always) private func optionalSpaceRun(_ p: Int, _ end: Int, _ member: (Int) -> Bool) -> Int? {
        if isRegexSpace(p) && p + 1 < end && member(p + 1) {
            return run(from: p + 1, end, member)
        }
        return run(from: p, end, member)
    }
}
