/// The value types of GGUF metadata (`enum gguf_type` in gguf.h), in file order.
public enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8, uint16, int16, uint32, int32, float32, bool, string, array, uint64, int64, float64

    /// Smallest encoded size of one value of this type, used to reject counts that
    /// cannot fit in the bytes left before anything is allocated.
    var minimumEncodedSize: Int {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64, .string: 8   // a string is at least its u64 length
        case .array: 12                              // u32 type + u64 count
        }
    }
}

/// One metadata value. Arrays may nest (an array of arrays of strings is legal GGUF).
/// Not `indirect`: the arrays nest through `Array`'s buffer, and a boxed case per value made
/// a 262,144-token vocabulary three quarters of a million heap allocations.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    /// Elements all share `type`, as the format requires.
    case array(type: GGUFValueType, [GGUFValue])
    case uint64(UInt64)
    case int64(Int64)
    case float64(Double)

    public var type: GGUFValueType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .float32: .float32
        case .bool: .bool
        case .string: .string
        case .array: .array
        case .uint64: .uint64
        case .int64: .int64
        case .float64: .float64
        }
    }

    /// Any integer type as `Int` (nil for non-integers and values that do not fit).
    public var intValue: Int? {
        switch self {
        case let .uint8(v): Int(v)
        case let .int8(v): Int(v)
        case let .uint16(v): Int(v)
        case let .int16(v): Int(v)
        case let .uint32(v): Int(v)
        case let .int32(v): Int(v)
        case let .uint64(v): Int(exactly: v)
        case let .int64(v): Int(v)
        default: nil
        }
    }

    /// Any number as `Double`.
    public var doubleValue: Double? {
        switch self {
        case let .float32(v): Double(v)
        case let .float64(v): v
        default: intValue.map(Double.init)
        }
    }

    public var boolValue: Bool? {
        if case let .bool(v) = self { return v }
        return nil
    }

    public var stringValue: String? {
        if case let .string(v) = self { return v }
        return nil
    }

    public var arrayValue: [GGUFValue]? {
        if case let .array(_, v) = self { return v }
        return nil
    }
}

extension GGUFValue: CustomStringConvertible {
    /// A short rendering for `nibble info`: long arrays are summarised.
    public var description: String {
        switch self {
        case let .string(s): return "\"\(s.printable())\""
        case let .array(type, items):
            return items.count > 8 ? "[\(items.count) × \(type)]" : "[" + items.map(\.description).joined(separator: ", ") + "]"
        case let .bool(v): return "\(v)"
        case let .float32(v): return "\(v)"
        case let .float64(v): return "\(v)"
        case let .uint64(v): return "\(v)"
        default: return intValue.map { "\($0)" } ?? "?"
        }
    }
}
