// tokenizer.json pre-tokenizers (tokenizers/src/pre_tokenizers): split a normalized piece of
// text into the words BPE never merges across. Regex splits reuse llama.cpp's hand-written
// splitters (PreTokenizer.swift), which reproduce the GPT-2 / Llama 3 / Qwen 2 regexes exactly.

enum HFPreTokenizers {
    /// Splits `text` with each pre-tokenizer in turn; `atInputStart` is true when the text begins
    /// at offset 0 of the input (Metaspace's `prepend_scheme: first`).
    static func apply(_ steps: [HFPreTokenizer], to text: [UInt8], atInputStart: Bool) -> [[UInt8]] {
        guard !text.isEmpty else { return [] }
        var pieces: [[UInt8]] = [text]
        for step in steps {
            var next: [[UInt8]] = []
            next.reserveCapacity(pieces.count * 2)
            for (index, piece) in pieces.enumerated() {
                switch step {
                case let .split(rule):
                    splitWithRule(piece, rule, into: &next)
                case let .splitLiteral(pattern, behavior):
                    splitLiteral(piece, pattern, behavior, into: &next)
                case let .byteLevel(addPrefixSpace, useRegex):
                    var p = piece
                    if addPrefixSpace && p.first != 0x20 { p.insert(0x20, at: 0) }
                    var words: [[UInt8]] = []
                    if useRegex { splitWithRule(p, .gpt2, into: &words) } else { words = [p] }
                    for word in words {
                        var mapped: [UInt8] = []
                        mapped.reserveCapacity(word.count * 2)
                        for b in word { mapped.append(contentsOf: ByteLevel.utf8ForByte[Int(b)]) }
                        next.append(mapped)
                    }
                case let .metaspace(replacement, scheme, split):
                    var p = Normalizers.replaceAll(piece, [0x20], replacement)
                    let prepend: Bool
                    switch scheme {
                    case .always: prepend = true
                    case .first: prepend = atInputStart && index == 0
                    case .never: prepend = false
                    }
                    if prepend && !p.starts(with: replacement) { p = replacement + p }
                    if split {
                        splitLiteral(p, replacement, .mergedWithNext, into: &next)
                    } else {
                        next.append(p)
                    }
                }
            }
            pieces = next
        }
        return pieces
    }

    /// Splits at the matches of a regex splitter, keeping matches and gaps (`Isolated`).
    static func splitWithRule(_ text: [UInt8], _ rule: SplitRule, into out: inout [[UInt8]]) {
        guard !text.isEmpty else { return }
        let cpts = text.withUnsafeBufferPointer { UTF8Util.codepoints($0) }
        let flags = cpts.map { CodepointFlags.of($0) }
        let lengths = PreTokenizer(name: "", rules: [rule]).split(cpts, flags: flags)
        var start = 0
        for length in lengths {
            var word: [UInt8] = []
            word.reserveCapacity(length * 2)
            for i in start..<(start + length) { UTF8Util.append(cpts[i], to: &word) }
            start += length
            if !word.isEmpty { out.append(word) }
        }
    }

    /// `Split` with a literal pattern (`NormalizedString::split`); empty pieces are dropped.
    static func splitLiteral(_ text: [UInt8], _ pattern: [UInt8], _ behavior: HFSplitBehavior, into out: inout [[UInt8]]) {
        var matches: [Range<Int>] = []
        text.withUnsafeBufferPointer { buffer in
            var i = 0
            while let m = SpecialTokenPartitioner.find(pattern, in: buffer, from: i, to: buffer.count) {
                matches.append(m..<(m + pattern.count))
                i = m + pattern.count
            }
        }
        guard !matches.isEmpty else {
            if !text.isEmpty { out.append(text) }
            return
        }
        // Cut the text into (range, isMatch) spans, then group them by behavior.
        var spans: [(Range<Int>, Bool)] = []
        var pos = 0
        for m in matches {
            if m.lowerBound > pos { spans.append((pos..<m.lowerBound, false)) }
            spans.append((m, true))
            pos = m.upperBound
        }
        if pos < text.count { spans.append((pos..<text.count, false)) }

        var pieces: [Range<Int>] = []
        switch behavior {
        case .removed:
            pieces = spans.filter { !$0.1 }.map(\.0)
        case .isolated:
            pieces = spans.map(\.0)
        case .mergedWithPrevious:
            var start: Int? = nil
            for (range, isMatch) in spans {
                if start == nil { start = range.lowerBound }
                if isMatch { pieces.append(start!..<range.upperBound); start = nil }
            }
            if let s = start { pieces.append(s..<text.count) }
        case .mergedWithNext:
            var start = 0
            for (range, isMatch) in spans where isMatch && range.lowerBound > start {
                pieces.append(start..<range.lowerBound)
                start = range.lowerBound
            }
            pieces.append(start..<text.count)
        case .contiguous:
            for (range, isMatch) in spans {
                if isMatch, let last = pieces.last, last.upperBound == range.lowerBound,
                   let lastSpan = spans.first(where: { $0.0.upperBound == last.upperBound }), lastSpan.1 {
                    pieces[pieces.count - 1] = last.lowerBound..<range.upperBound
                } else {
                    pieces.append(range)
                }
            }
        }
        for r in pieces where !r.isEmpty { out.append(Array(text[r])) }
    }
}
