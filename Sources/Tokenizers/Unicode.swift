// Code point classification and the lenient UTF-8 handling the pre-tokenizers need.
// Ported from llama.cpp src/unicode.cpp (`unicode_cpt_flags`, `unicode_cpt_from_utf8`,
// `unicode_cpts_from_utf8`, `unicode_cpt_to_utf8`, `unicode_len_utf8`).

/// llama.cpp's `unicode_cpt_flags`: one general-category bit per code point, plus whitespace.
///
/// A code point inside the text always has a non-zero value (unassigned ones carry `undefined`);
/// the zero value stands for "outside the current fragment", which the hand-written splitters
/// use as their end-of-text sentinel exactly like llama.cpp's `_get_flags`.
struct CodepointFlags: Equatable {
    var rawValue: UInt16

    static let undefined: UInt16 = 0x0001
    static let number: UInt16 = 0x0002       // \p{N}
    static let letter: UInt16 = 0x0004       // \p{L}
    static let separator: UInt16 = 0x0008    // \p{Z}
    static let accentMark: UInt16 = 0x0010   // \p{M}
    static let punctuation: UInt16 = 0x0020  // \p{P}
    static let symbol: UInt16 = 0x0040       // \p{S}
    static let control: UInt16 = 0x0080      // \p{C}
    static let whitespaceBit: UInt16 = 0x0100 // \s

    /// "Outside the fragment": every test is false and `isPresent` is false.
    static let none = CodepointFlags(rawValue: 0)

    @inline(__always) var isPresent: Bool { rawValue != 0 }
    @inline(__always) var isNumber: Bool { rawValue & Self.number != 0 }
    @inline(__always) var isLetter: Bool { rawValue & Self.letter != 0 }
    @inline(__always) var isAccentMark: Bool { rawValue & Self.accentMark != 0 }
    @inline(__always) var isPunctuation: Bool { rawValue & Self.punctuation != 0 }
    @inline(__always) var isSymbol: Bool { rawValue & Self.symbol != 0 }
    @inline(__always) var isWhitespace: Bool { rawValue & Self.whitespaceBit != 0 }

    /// Flags of `codepoint`, as `unicode_cpt_flags_from_cpt` (values past U+10FFFF are undefined).
    @inline(__always) static func of(_ codepoint: UInt32) -> CodepointFlags {
        let table = CodepointTable.shared.flags
        return codepoint < UInt32(table.count)
            ? CodepointFlags(rawValue: table[Int(codepoint)])
            : CodepointFlags(rawValue: undefined)
    }
}

/// The expanded per-code-point flag table (2.2 MB), built once from `UnicodeData`.
final class CodepointTable: Sendable {
    static let shared = CodepointTable()

    let flags: [UInt16]

    private init() {
        var table = [UInt16](repeating: CodepointFlags.undefined, count: 0x110000)
        var ranges: [(start: Int, flags: UInt16)] = []
        ranges.reserveCapacity(2300)
        for item in UnicodeData.rangeFlags.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let parts = item.split(separator: ":")
            // The data is generated and fixed: a malformed entry is a programming error.
            guard parts.count == 2, let start = Int(parts[0], radix: 16), let value = UInt16(parts[1], radix: 16) else {
                preconditionFailure("UnicodeData.rangeFlags: malformed entry '\(item)'")
            }
            ranges.append((start, value))
        }
        for i in 0..<(ranges.count - 1) {
            let end = min(ranges[i + 1].start, table.count)
            if ranges[i].start < end {
                for cp in ranges[i].start..<end { table[cp] = ranges[i].flags }
            }
        }
        for cp in UnicodeData.whitespace where Int(cp) < table.count {
            table[Int(cp)] |= CodepointFlags.whitespaceBit
        }
        flags = table
    }
}

enum UTF8Util {
    /// `unicode_len_utf8`: the sequence length announced by a lead byte (1 for continuation bytes).
    @inline(__always) static func sequenceLength(leadByte: UInt8) -> Int {
        switch leadByte >> 4 {
        case 0xC, 0xD: return 2
        case 0xE: return 3
        case 0xF: return 4
        default: return 1
        }
    }

    /// `unicode_cpts_from_utf8`: decodes leniently, replacing each undecodable byte by U+FFFD and
    /// moving on by one byte. Like llama.cpp it accepts surrogates and overlong forms; code points
    /// past U+10FFFF (which llama.cpp cannot re-encode) are also replaced.
    static func codepoints(_ bytes: UnsafeBufferPointer<UInt8>) -> [UInt32] {
        var result: [UInt32] = []
        result.reserveCapacity(bytes.count)
        var i = 0
        let n = bytes.count
        @inline(__always) func cont(_ k: Int) -> Bool { k < n && bytes[k] & 0xC0 == 0x80 }
        while i < n {
            let b0 = bytes[i]
            if b0 & 0x80 == 0 {
                result.append(UInt32(b0)); i += 1
            } else if b0 & 0x40 == 0 {
                result.append(0xFFFD); i += 1
            } else if b0 & 0x20 == 0 {
                if cont(i + 1) {
                    result.append(UInt32(b0 & 0x1F) << 6 | UInt32(bytes[i + 1] & 0x3F)); i += 2
                } else { result.append(0xFFFD); i += 1 }
            } else if b0 & 0x10 == 0 {
                if cont(i + 1) && cont(i + 2) {
                    result.append(UInt32(b0 & 0x0F) << 12 | UInt32(bytes[i + 1] & 0x3F) << 6 | UInt32(bytes[i + 2] & 0x3F))
                    i += 3
                } else { result.append(0xFFFD); i += 1 }
            } else if b0 & 0x08 == 0 {
                if cont(i + 1) && cont(i + 2) && cont(i + 3) {
                    let cp = UInt32(b0 & 0x07) << 18 | UInt32(bytes[i + 1] & 0x3F) << 12
                        | UInt32(bytes[i + 2] & 0x3F) << 6 | UInt32(bytes[i + 3] & 0x3F)
                    result.append(cp <= 0x10FFFF ? cp : 0xFFFD)
                    i += 4
                } else { result.append(0xFFFD); i += 1 }
            } else {
                result.append(0xFFFD); i += 1
            }
        }
        return result
    }

    /// `unicode_cpt_to_utf8` (no validation of surrogates, as in llama.cpp).
    @inline(__always) static func append(_ cp: UInt32, to out: inout [UInt8]) {
        forEachByte(of: cp) { out.append($0) }
    }

    /// Calls `body` with each byte of the UTF-8 encoding of `cp`, without allocating.
    @inline(__always) static func forEachByte(of cp: UInt32, _ body: (UInt8) -> Void) {
        if cp <= 0x7F {
            body(UInt8(cp))
        } else if cp <= 0x7FF {
            body(0xC0 | UInt8((cp >> 6) & 0x1F))
            body(0x80 | UInt8(cp & 0x3F))
        } else if cp <= 0xFFFF {
            body(0xE0 | UInt8((cp >> 12) & 0x0F))
            body(0x80 | UInt8((cp >> 6) & 0x3F))
            body(0x80 | UInt8(cp & 0x3F))
        } else {
            body(0xF0 | UInt8((cp >> 18) & 0x07))
            body(0x80 | UInt8((cp >> 12) & 0x3F))
            body(0x80 | UInt8((cp >> 6) & 0x3F))
            body(0x80 | UInt8(cp & 0x3F))
        }
    }

    /// C `isspace` in the "C" locale, used by llama.cpp for lstrip/rstrip around special tokens.
    @inline(__always) static func isCSpace(_ b: UInt8) -> Bool {
        b == 0x20 || (b >= 0x09 && b <= 0x0D)
    }
}
