/// Token attributes, bit for bit llama.cpp's `llama_token_attr` (include/llama.h).
public struct TokenAttributes: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let unknown = TokenAttributes(rawValue: 1 << 0)
    public static let unused = TokenAttributes(rawValue: 1 << 1)
    public static let normal = TokenAttributes(rawValue: 1 << 2)
    public static let control = TokenAttributes(rawValue: 1 << 3)
    public static let userDefined = TokenAttributes(rawValue: 1 << 4)
    public static let byte = TokenAttributes(rawValue: 1 << 5)
    public static let normalized = TokenAttributes(rawValue: 1 << 6)
    public static let lstrip = TokenAttributes(rawValue: 1 << 7)
    public static let rstrip = TokenAttributes(rawValue: 1 << 8)
    public static let singleWord = TokenAttributes(rawValue: 1 << 9)

    /// The attributes llama.cpp derives from a `tokenizer.ggml.token_type` value
    /// (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte; anything else undefined).
    init(tokenType: Int) {
        switch tokenType {
        case 1: self = .normal
        case 2: self = .unknown
        case 3: self = .control
        case 4: self = .userDefined
        case 5: self = .unused
        case 6: self = .byte
        default: self = []
        }
    }
}

/// A piece of input text after special-token partitioning.
enum Fragment: Equatable {
    /// Bytes `range` of the input, still to be tokenized.
    case text(Range<Int>)
    /// A special token found verbatim in the input.
    case token(Int)
}

/// Splits input text around special tokens: port of `llama_vocab::impl::tokenizer_st_partition`
/// (src/llama-vocab.cpp).
///
/// Candidates are the control, user-defined and unknown tokens, longest text first; each one in
/// turn splits every remaining text fragment at its non-overlapping occurrences, left to right.
/// With `parseSpecial == false` control and unknown tokens are skipped, but user-defined tokens
/// are still matched: llama.cpp does this on purpose, following Hugging Face `tokenizers`, which
/// always extracts added tokens that are not "special". Tokens with the `lstrip`/`rstrip`
/// attribute swallow the ASCII whitespace before/after them.
struct SpecialTokenPartitioner {
    /// Candidate token ids, longest text first (ties by id: llama.cpp's `std::sort` is not
    /// stable, so its order among equal lengths is unspecified; ties only matter for overlapping
    /// candidates of equal length, which real vocabularies do not have).
    struct Candidate {
        let id: Int
        let text: [UInt8]
        let attributes: TokenAttributes
    }
    let candidates: [Candidate]

    /// `ids` in the order they are tried; only their texts are kept (a few thousand of a
    /// vocabulary's hundreds of thousands).
    init(candidates ids: [Int], texts: [[UInt8]], attributes: [TokenAttributes]) {
        candidates = ids.map { Candidate(id: $0, text: texts[$0], attributes: attributes[$0]) }
    }

    func partition(_ text: [UInt8], parseSpecial: Bool) -> [Fragment] {
        guard !text.isEmpty else { return [] }
        var fragments: [Fragment] = [.text(0..<text.count)]
        guard !candidates.isEmpty else { return fragments }
        text.withUnsafeBufferPointer { buffer in
            // Vocabularies have up to thousands of candidates and almost none occur in a given
            // text: a bitmap of the byte pairs present rules most of them out in O(1).
            var pairs = [UInt64](repeating: 0, count: 1024)
            var singles: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
            var previous = -1
            for b in buffer {
                let v = Int(b)
                switch v >> 6 {
                case 0: singles.0 |= 1 << UInt64(v & 63)
                case 1: singles.1 |= 1 << UInt64(v & 63)
                case 2: singles.2 |= 1 << UInt64(v & 63)
                default: singles.3 |= 1 << UInt64(v & 63)
                }
                if previous >= 0 {
                    let k = previous << 8 | v
                    pairs[k >> 6] |= 1 << UInt64(k & 63)
                }
                previous = v
            }
            func hasPair(_ a: UInt8, _ b: UInt8) -> Bool {
                let k = Int(a) << 8 | Int(b)
                return pairs[k >> 6] & (1 << UInt64(k & 63)) != 0
            }
            func hasByte(_ b: UInt8) -> Bool {
                let v = Int(b), bit: UInt64 = 1 << UInt64(v & 63)
                switch v >> 6 {
                case 0: return singles.0 & bit != 0
                case 1: return singles.1 & bit != 0
                case 2: return singles.2 & bit != 0
                default: return singles.3 & bit != 0
                }
            }

            for candidate in candidates {
                let id = candidate.id, attr = candidate.attributes
                if !parseSpecial && !attr.isDisjoint(with: [.control, .unknown]) { continue }
                let pattern = candidate.text
                let m = pattern.count
                guard m > 0, m <= buffer.count else { continue }
                if m == 1 {
                    guard hasByte(pattern[0]) else { continue }
                } else {
                    guard hasPair(pattern[0], pattern[1]), hasPair(pattern[m - 2], pattern[m - 1]) else { continue }
                }

                var result: [Fragment] = []
                result.reserveCapacity(fragments.count + 2)
                var changed = false
                for fragment in fragments {
                    guard case let .text(range) = fragment else { result.append(fragment); continue }
                    var pos = range.lowerBound
                    let end = range.upperBound
                    while let match = Self.find(pattern, in: buffer, from: pos, to: end) {
                        changed = true
                        var leftEnd = match
                        if attr.contains(.lstrip) {
                            while leftEnd > pos && UTF8Util.isCSpace(buffer[leftEnd - 1]) { leftEnd -= 1 }
                        }
                        if leftEnd > pos { result.append(.text(pos..<leftEnd)) }
                        result.append(.token(id))
                        pos = match + pattern.count
                        if attr.contains(.rstrip) {
                            while pos < end && UTF8Util.isCSpace(buffer[pos]) { pos += 1 }
                        }
                    }
                    if pos < end { result.append(.text(pos..<end)) }
                }
                if changed { fragments = result }
            }
        }
        return fragments
    }

    /// First occurrence of `pattern` in `buffer[from..<to]`.
    @inline(__always)
    static func find(_ pattern: [UInt8], in buffer: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Int? {
        let m = pattern.count
        guard to - from >= m else { return nil }
        return pattern.withUnsafeBufferPointer { p in
            let first = p[0]
            var i = from
            let last = to - m
            while i <= last {
                if buffer[i] == first {
                    var k = 1
                    while k < m && buffer[i + k] == p[k] { k += 1 }
                    if k == m { return i }
                }
                i += 1
            }
            return nil
        }
    }
}
