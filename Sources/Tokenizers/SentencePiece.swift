/// SentencePiece-style BPE as llama.cpp runs it for `tokenizer.ggml.model == "llama"`: port of
/// `llm_tokenizer_spm_session::tokenize` (src/llama-vocab.cpp).
///
/// The whole fragment (spaces already escaped to U+2581 "▁") is cut into UTF-8 characters; then
/// the adjacent pair whose concatenation is a vocabulary token with the highest score is merged,
/// repeatedly (ties: leftmost first). Characters that never became tokens are emitted as byte
/// tokens `<0xXX>` ("byte fallback").
///
/// llama.cpp also keeps a `rev_merge` map to re-split symbols that are not tokens; since a merge
/// only ever produces a token, only unmerged single characters can fail the final lookup and
/// those are never in that map, so the re-split never happens and is not ported.
struct SentencePiece {
    let vocab: ByteStringTable
    let scores: [Float]
    /// Token for each byte: `<0xXX>`, else the one-byte text (`llama_vocab::byte_to_token`), else
    /// the unknown token, else -1 (llama.cpp would throw; we drop the byte).
    let byteTokens: [Int32]

    init(vocab: ByteStringTable, scores: [Float], unknownTokenID: Int?) {
        self.vocab = vocab
        self.scores = scores
        let digits = Array("0123456789ABCDEF".utf8)
        byteTokens = (0..<256).map { b in
            let name: [UInt8] = [0x3C, 0x30, 0x78, digits[b >> 4], digits[b & 15], 0x3E] // <0xXX>
            if let id = vocab.lookup(name) { return id }
            if let id = vocab.lookup([UInt8(b)]) { return id }
            return unknownTokenID.map { Int32($0) } ?? -1
        }
    }

    /// `llama_escape_whitespace`: every space becomes U+2581 (E2 96 81).
    static func escapeWhitespace(_ text: [UInt8]) -> [UInt8] {
        guard text.contains(0x20) else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(text.count + text.count / 2)
        for b in text {
            if b == 0x20 { out.append(contentsOf: [0xE2, 0x96, 0x81]) } else { out.append(b) }
        }
        return out
    }

    private struct Symbol {
        var start: Int32
        var length: Int32
        var prev: Int32
        var next: Int32
    }

    private struct Bigram: HeapElement {
        var score: Float
        var left: Int32
        var right: Int32
        var size: Int32

        // `llm_bigram_spm::comparator`: highest score first, then leftmost.
        static func precedes(_ a: Bigram, _ b: Bigram) -> Bool {
            a.score > b.score || (a.score == b.score && a.left < b.left)
        }
    }

    /// Tokenizes already-escaped text, appending to `output`.
    func encode(_ text: [UInt8], into output: inout [Int]) {
        let n = text.count
        guard n > 0 else { return }
        text.withUnsafeBufferPointer { t in
            var symbols: [Symbol] = []
            symbols.reserveCapacity(n)
            var offset = 0
            var index: Int32 = 0
            while offset < n {
                let len = min(n - offset, UTF8Util.sequenceLength(leadByte: t[offset]))
                offset += len
                symbols.append(Symbol(start: Int32(offset - len), length: Int32(len), prev: index - 1,
                                      next: offset == n ? -1 : index + 1))
                index += 1
            }

            var heap = BinaryHeap<Bigram>()
            // `try_add_bigram`: queue the pair if its concatenation (contiguous in `t`) is a token.
            func tryAdd(_ left: Int32, _ right: Int32) {
                guard left >= 0, right >= 0 else { return }
                let l = symbols[Int(left)], r = symbols[Int(right)]
                let size = Int(l.length + r.length)
                let start = Int(l.start)
                guard let id = vocab.lookup(UnsafeBufferPointer(rebasing: t[start..<(start + size)])),
                      Int(id) < scores.count else { return }
                heap.push(Bigram(score: scores[Int(id)], left: left, right: right, size: Int32(size)))
            }

            for i in 1..<max(symbols.count, 1) { tryAdd(Int32(i - 1), Int32(i)) }

            while let bigram = heap.pop() {
                let l = Int(bigram.left), r = Int(bigram.right)
                let leftSymbol = symbols[l], rightSymbol = symbols[r]
                if leftSymbol.length == 0 || rightSymbol.length == 0
                    || leftSymbol.length + rightSymbol.length != bigram.size {
                    continue
                }
                symbols[l].length += rightSymbol.length
                symbols[r].length = 0
                symbols[l].next = rightSymbol.next
                if rightSymbol.next >= 0 { symbols[Int(rightSymbol.next)].prev = bigram.left }
                tryAdd(leftSymbol.prev, bigram.left)
                tryAdd(bigram.left, rightSymbol.next)
            }

            var i: Int32 = 0
            while i != -1 {
                let symbol = symbols[Int(i)]
                let start = Int(symbol.start), end = start + Int(symbol.length)
                if let id = vocab.lookup(UnsafeBufferPointer(rebasing: t[start..<end])) {
                    output.append(Int(id))
                } else {
                    for k in start..<end where byteTokens[Int(t[k])] >= 0 {
                        output.append(Int(byteTokens[Int(t[k])]))
                    }
                }
                i = symbol.next
            }
        }
    }
}
