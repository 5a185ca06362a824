import ModelFiles

/// Byte-level BPE as llama.cpp runs it for `tokenizer.ggml.model == "gpt2"` (and Gemma 4's
/// SPM-style BPE): port of `llm_tokenizer_bpe_session::tokenize` (src/llama-vocab.cpp).
///
/// Each pre-tokenized word is cut into characters (of the byte-level-encoded text), then the
/// adjacent pair with the lowest merge rank is merged repeatedly (ties: leftmost first), using a
/// priority queue over a doubly linked list of symbols, so a word of n characters costs
/// O(n log n). Finished symbols that are not vocabulary tokens fall back to byte tokens, or are
/// dropped when the vocabulary has none (as llama.cpp does).
///
/// Symbols carry ids instead of strings: merge parts are interned once at load time (vocabulary
/// ids, then extra ids for the rare merge parts that are not tokens), and the merge table maps an
/// id pair straight to (rank, merged id). No string is built while encoding.
struct BytePairEncoding {
    let vocab: ByteStringTable
    let vocabularySize: Int
    /// Merge parts/results that are not vocabulary tokens, with ids from `vocabularySize` up.
    private let extras: ByteStringTable
    /// `left << 32 | right` → `rank << 32 | merged`.
    private let merges: PairTable
    let preTokenizer: PreTokenizer
    /// Token for the single byte `b` as a one-byte text (byte-level fallback), or -1.
    private let singleByteToken: [Int32]
    /// Token `<0xXX>` for each byte (SPM-style BPE fallback), or -1.
    private let hexByteToken: [Int32]

    /// - Parameter merges: `tokenizer.ggml.merges`, "left right" strings; the index is the rank.
    init(vocab: ByteStringTable, vocabularySize: Int, merges: [String], preTokenizer: PreTokenizer) {
        self.vocab = vocab
        self.vocabularySize = vocabularySize
        self.preTokenizer = preTokenizer
        var extras = ByteStringTable(capacity: 64)
        var table = PairTable(capacity: merges.count)

        func intern(_ bytes: UnsafeBufferPointer<UInt8>) -> Int32 {
            if let id = vocab.lookup(bytes) { return id }
            if let id = extras.lookup(bytes) { return id }
            let id = Int32(vocabularySize + extras.count)
            extras.set(bytes, id)
            return id
        }

        var joined: [UInt8] = []
        var rank: UInt64 = 0
        for var merge in merges {
            defer { rank += 1 }
            merge.makeContiguousUTF8()
            merge.utf8.withContiguousStorageIfAvailable { bytes in
                // llama.cpp splits at the first space after the first byte (`word.find(' ', 1)`);
                // a merge without one is recorded for the empty pair, which can never match.
                guard bytes.count > 1, let space = bytes[1...].firstIndex(of: 0x20) else { return }
                let leftBytes = UnsafeBufferPointer(rebasing: bytes[..<space])
                let rightBytes = UnsafeBufferPointer(rebasing: bytes[(space + 1)...])
                let left = intern(leftBytes)
                let right = intern(rightBytes)
                joined.removeAll(keepingCapacity: true)
                joined.append(contentsOf: leftBytes)
                joined.append(contentsOf: rightBytes)
                let merged = joined.withUnsafeBufferPointer { intern($0) }
                let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
                // `bpe_ranks.emplace`: the first rank of a repeated pair wins.
                table.insertIfAbsent(key, rank << 32 | UInt64(UInt32(bitPattern: merged)))
            }
        }
        self.extras = extras
        self.merges = table

        var single = [Int32](repeating: -1, count: 256)
        var hex = [Int32](repeating: -1, count: 256)
        let digits = Array("0123456789ABCDEF".utf8)
        for b in 0..<256 {
            if let id = vocab.lookup([UInt8(b)]) { single[b] = id }
            let name: [UInt8] = [0x3C, 0x30, 0x78, digits[b >> 4], digits[b & 15], 0x3E] // <0xXX>
            if let id = vocab.lookup(name) { hex[b] = id }
        }
        singleByteToken = single
        hexByteToken = hex
    }

    /// Hugging Face BPE (tokenizers/src/models/bpe/model.rs): what a character that is not a
    /// token becomes. nil for llama.cpp's rules.
    struct UnknownHandling {
        /// `byte_fallback`: the character's `<0xXX>` tokens, if all of them exist.
        var byteFallback: Bool
        /// `unk_token`'s id, else the character is dropped.
        var unknownID: Int32?
        /// `fuse_unk`: consecutive unknown characters give one unknown token.
        var fuseUnknown: Bool
    }
    private(set) var huggingFace: UnknownHandling? = nil

    /// Hugging Face BPE with `merges` as (left, right) texts in rank order. Every part and every
    /// merged text must be a token (`tokenizers` refuses the file otherwise); a pair listed twice
    /// keeps its last rank, as `tokenizers`' merge map does.
    /// - Throws: `TokenizerError.invalidField` naming the merge.
    init(vocab: ByteStringTable, vocabularySize: Int, mergePairs: [(left: [UInt8], right: [UInt8])],
         preTokenizer: PreTokenizer, unknown: UnknownHandling, file: String) throws {
        self.vocab = vocab
        self.vocabularySize = vocabularySize
        self.preTokenizer = preTokenizer
        huggingFace = unknown
        extras = ByteStringTable(capacity: 16)
        var table = PairTable(capacity: mergePairs.count)
        for rank in mergePairs.indices.reversed() {
            let (left, right) = mergePairs[rank]
            func id(_ bytes: [UInt8]) throws -> Int32 {
                guard let id = vocab.lookup(bytes) else {
                    throw TokenizerError.invalidField(
                        file: file, field: "model.merges[\(rank)]",
                        reason: "'\(String(decoding: bytes, as: UTF8.self).printable(limit: 200))' is not in the vocabulary")
                }
                return id
            }
            let l = try id(left), r = try id(right), merged = try id(left + right)
            let key = UInt64(UInt32(bitPattern: l)) << 32 | UInt64(UInt32(bitPattern: r))
            table.insertIfAbsent(key, UInt64(rank) << 32 | UInt64(UInt32(bitPattern: merged)))
        }
        merges = table
        singleByteToken = [Int32](repeating: -1, count: 256)
        let digits = Array("0123456789ABCDEF".utf8)
        hexByteToken = (0..<256).map { b in
            vocab.lookup([0x3C, 0x30, 0x78, digits[b >> 4], digits[b & 15], 0x3E]) ?? -1 // <0xXX>
        }
    }

    /// Tokenizes one pre-tokenized word (already in the vocabulary's spelling), appending to `output`.
    func encode(word: [UInt8], into output: inout [Int], scratch: inout Scratch) {
        scratch.word.removeAll(keepingCapacity: true)
        scratch.word.append(contentsOf: word)
        encodeWord(&scratch, into: &output)
    }

    /// Number of merges actually usable (for diagnostics).
    var mergeCount: Int { merges.count }

    // MARK: Encoding

    fileprivate struct Symbol {
        var start: Int32   // byte offset in the encoded word
        var length: Int32  // 0 once merged into its left neighbour
        var prev: Int32
        var next: Int32
        var id: Int32      // vocabulary or extra id of the text; -1 if unknown
    }

    fileprivate struct Bigram: HeapElement {
        var rank: Int32
        var left: Int32
        var right: Int32
        var leftLength: Int32
        var rightLength: Int32
        var merged: Int32

        // `llm_bigram_bpe::comparator`: lowest rank first, then leftmost.
        static func precedes(_ a: Bigram, _ b: Bigram) -> Bool {
            a.rank < b.rank || (a.rank == b.rank && a.left < b.left)
        }
    }

    /// Reusable buffers for one `encode` call.
    struct Scratch {
        fileprivate var word: [UInt8] = []
        fileprivate var symbols: [Symbol] = []
        fileprivate var heap = BinaryHeap<Bigram>()
    }

    /// Tokenizes one raw-text fragment (`llm_tokenizer_bpe_session::tokenize`), appending to `output`.
    func encode(_ text: [UInt8], into output: inout [Int], scratch: inout Scratch) {
        var text = text
        if preTokenizer.escapeWhitespace {
            text = SentencePiece.escapeWhitespace(text)
        }
        let cpts = text.withUnsafeBufferPointer { UTF8Util.codepoints($0) }
        let table = CodepointTable.shared.flags
        let flags = cpts.map { cp in
            cp < UInt32(table.count) ? CodepointFlags(rawValue: table[Int(cp)]) : CodepointFlags(rawValue: CodepointFlags.undefined)
        }
        let offsets = preTokenizer.split(cpts, flags: flags)
        var start = 0
        for length in offsets {
            // Re-encode the word from its code points (invalid input was replaced by U+FFFD),
            // byte-level mapped if the vocabulary is byte-level.
            scratch.word.removeAll(keepingCapacity: true)
            for i in start..<(start + length) {
                if preTokenizer.byteEncode {
                    UTF8Util.forEachByte(of: cpts[i]) { b in
                        scratch.word.append(contentsOf: ByteLevel.utf8ForByte[Int(b)])
                    }
                } else {
                    UTF8Util.append(cpts[i], to: &scratch.word)
                }
            }
            start += length
            encodeWord(&scratch, into: &output)
        }
    }

    @inline(__always) private func lookupSymbol(_ bytes: UnsafeBufferPointer<UInt8>) -> Int32 {
        if let id = vocab.lookup(bytes) { return id }
        if let id = extras.lookup(bytes) { return id }
        return -1
    }

    private func encodeWord(_ scratch: inout Scratch, into output: inout [Int]) {
        let word = scratch.word
        let n = word.count
        guard n > 0 else { return }
        word.withUnsafeBufferPointer { w in
            scratch.symbols.removeAll(keepingCapacity: true)
            scratch.heap.removeAll()

            var whole = false
            if preTokenizer.ignoreMerges, let id = vocab.lookup(w) {
                scratch.symbols.append(Symbol(start: 0, length: Int32(n), prev: -1, next: -1, id: id))
                whole = true
            } else if preTokenizer.newlineWordsAsTokens, !w.contains(where: { $0 != 0x0A }), let id = vocab.lookup(w) {
                // Gemma 4 fix (llama.cpp PR #21343): newline runs are tokens of their own.
                scratch.symbols.append(Symbol(start: 0, length: Int32(n), prev: -1, next: -1, id: id))
                whole = true
            }
            if !whole {
                var offset = 0
                var index: Int32 = 0
                while offset < n {
                    let len = min(n - offset, UTF8Util.sequenceLength(leadByte: w[offset]))
                    let id = lookupSymbol(UnsafeBufferPointer(rebasing: w[offset..<(offset + len)]))
                    offset += len
                    scratch.symbols.append(Symbol(start: Int32(offset - len), length: Int32(len), prev: index - 1,
                                                  next: offset == n ? -1 : index + 1, id: id))
                    index += 1
                }
                let count = scratch.symbols.count
                if count > 1 {
                    for i in 1..<count { addBigram(Int32(i - 1), Int32(i), &scratch) }
                }
                while let bigram = scratch.heap.pop() {
                    let l = Int(bigram.left), r = Int(bigram.right)
                    let leftSymbol = scratch.symbols[l]
                    let rightSymbol = scratch.symbols[r]
                    // Stale entry: one side already merged or grew (llama.cpp compares the texts;
                    // symbols only grow to the right, so comparing lengths is equivalent).
                    if leftSymbol.length == 0 || rightSymbol.length == 0
                        || leftSymbol.length != bigram.leftLength || rightSymbol.length != bigram.rightLength {
                        continue
                    }
                    scratch.symbols[l].length += rightSymbol.length
                    scratch.symbols[l].id = bigram.merged
                    scratch.symbols[r].length = 0
                    scratch.symbols[l].next = rightSymbol.next
                    if rightSymbol.next >= 0 { scratch.symbols[Int(rightSymbol.next)].prev = bigram.left }
                    addBigram(leftSymbol.prev, bigram.left, &scratch)
                    addBigram(bigram.left, rightSymbol.next, &scratch)
                }
            }

            // Emit in order (the symbol array is in text order; merged-away symbols have length 0).
            var previousWasUnknown = false
            for symbol in scratch.symbols where symbol.length > 0 {
                if symbol.id >= 0 && Int(symbol.id) < vocabularySize {
                    output.append(Int(symbol.id))
                    previousWasUnknown = false
                    continue
                }
                if let hf = huggingFace {
                    // Only a single character can fail to be a token (merges make tokens).
                    let s = Int(symbol.start), e = s + Int(symbol.length)
                    if hf.byteFallback && (s..<e).allSatisfy({ hexByteToken[Int(w[$0])] >= 0 }) {
                        for k in s..<e { output.append(Int(hexByteToken[Int(w[k])])) }
                        previousWasUnknown = false
                    } else if let unk = hf.unknownID {
                        if !(hf.fuseUnknown && previousWasUnknown) { output.append(Int(unk)) }
                        previousWasUnknown = true
                    }
                    continue
                }
                // Not a token: one token per byte of its text, skipping bytes without one.
                let s = Int(symbol.start)
                for k in s..<(s + Int(symbol.length)) {
                    let token = preTokenizer.byteEncode ? singleByteToken[Int(w[k])] : hexByteToken[Int(w[k])]
                    if token >= 0 { output.append(Int(token)) }
                }
            }
        }
    }

    @inline(__always) private func addBigram(_ left: Int32, _ right: Int32, _ scratch: inout Scratch) {
        guard left >= 0, right >= 0 else { return }
        let l = scratch.symbols[Int(left)], r = scratch.symbols[Int(right)]
        guard l.id >= 0, r.id >= 0 else { return }
        let key = UInt64(UInt32(bitPattern: l.id)) << 32 | UInt64(UInt32(bitPattern: r.id))
        guard let value = merges.value(for: key) else { return }
        scratch.heap.push(Bigram(rank: Int32(truncatingIfNeeded: value >> 32), left: left, right: right,
                                 leftLength: l.length, rightLength: r.length,
                                 merged: Int32(bitPattern: UInt32(truncatingIfNeeded: value))))
    }
}
