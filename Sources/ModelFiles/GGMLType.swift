/// The tensor element types of ggml, as numbered in `ggml.h` (`enum ggml_type`).
///
/// Traits follow ggml's `type_traits` table (ggml/src/ggml.c): elements per block and
/// bytes per block. Only block geometry lives here; the dequantisers that Nibble
/// implements are in `Dequantize.swift`.
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q5_0 = 6
    case q5_1 = 7
    case q8_0 = 8
    case q8_1 = 9
    case q2_K = 10
    case q3_K = 11
    case q4_K = 12
    case q5_K = 13
    case q6_K = 14
    case q8_K = 15
    case iq2_XXS = 16
    case iq2_XS = 17
    case iq3_XXS = 18
    case iq1_S = 19
    case iq4_NL = 20
    case iq3_S = 21
    case iq2_S = 22
    case iq4_XS = 23
    case i8 = 24
    case i16 = 25
    case i32 = 26
    case i64 = 27
    case f64 = 28
    case iq1_M = 29
    case bf16 = 30
    case tq1_0 = 34
    case tq2_0 = 35
    case mxfp4 = 39

    /// The name ggml and llama.cpp print (`ggml_type_name`), e.g. "Q4_1", "BF16".
    public var name: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .bf16: "BF16"
        case .f64: "F64"
        case .i8: "I8"
        case .i16: "I16"
        case .i32: "I32"
        case .i64: "I64"
        case .mxfp4: "MXFP4"
        default: "\(self)".uppercased()
        }
    }

    /// Elements per block (`blck_size`).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16, .f64, .i8, .i16, .i32, .i64: 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_NL, .mxfp4: 32
        default: 256  // K-quants, IQ super-blocks and ternary types use QK_K = 256
        }
    }

    /// Bytes per block (`type_size`), i.e. `sizeof(block_xxx)` in ggml-common.h.
    public var blockBytes: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .f64, .i64: 8
        case .i8: 1
        case .i16: 2
        case .i32: 4
        case .q4_0: 18      // f16 d + 16 bytes of nibbles
        case .q4_1: 20      // f16 d, f16 m + 16 bytes of nibbles
        case .q5_0: 22      // f16 d + 4 bytes high bits + 16 bytes of nibbles
        case .q5_1: 24      // f16 d, f16 m + 4 + 16
        case .q8_0: 34      // f16 d + 32 int8
        case .q8_1: 36      // f16 d, f16 s + 32 int8
        case .q2_K: 84
        case .q3_K: 110
        case .q4_K: 144
        case .q5_K: 176
        case .q6_K: 210
        case .q8_K: 292
        case .iq2_XXS: 66
        case .iq2_XS: 74
        case .iq3_XXS: 98
        case .iq1_S: 50
        case .iq4_NL: 18
        case .iq3_S: 110
        case .iq2_S: 82
        case .iq4_XS: 136
        case .iq1_M: 56
        case .tq1_0: 54
        case .tq2_0: 66
        case .mxfp4: 17
        }
    }

    /// Bits of storage per weight, block overhead included (Q4_1: 5.0).
    public var bitsPerWeight: Double { Double(blockBytes * 8) / Double(blockSize) }

    /// Bytes taken by `count` elements, or nil when `count` is not a whole number of blocks.
    public func byteCount(elements count: Int) -> Int? {
        guard count >= 0, count % blockSize == 0 else { return nil }
        let (bytes, overflow) = (count / blockSize).multipliedReportingOverflow(by: blockBytes)
        return overflow ? nil : bytes
    }

    /// Looks a type up by the name ggml prints ("q4_1" and "Q4_1" both work).
    public init?(name: String) {
        guard let match = GGMLType.allCases.first(where: { $0.name.lowercased() == name.lowercased() }) else { return nil }
        self = match
    }
}
