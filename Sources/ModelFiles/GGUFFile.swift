// A reader for GGUF v2 and v3, the container of llama.cpp models.
// Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
//
//   u32 magic "GGUF" | u32 version | u64 tensor_count | u64 metadata_kv_count
//   metadata_kv_count × (string key, u32 value_type, value)
//   tensor_count × (string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset)
//   padding to `general.alignment` (default 32), then the tensor data
//
// Strings are u64 length + UTF-8 bytes (no terminator). Every read is bounds-checked,
// and every count is checked against the bytes left before anything is allocated,
// so a corrupt or hostile header produces an error naming the offset, never a crash
// or a huge allocation.

/// One entry of the tensor table.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    public let type: GGMLType
    /// Dimensions in ggml order: `shape[0]` (ne0) is the contiguous one, i.e. the row
    /// length of a weight matrix; `shape[1]` is the number of rows.
    public let shape: [Int]
    /// Absolute byte offset of the data within the file.
    public let offset: Int
    public let byteCount: Int

    public var elementCount: Int { shape.reduce(1, *) }
}

/// A mapped GGUF file: its metadata, tensor table and tensor bytes.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: UInt32
    /// Metadata in the order the file stores it.
    public private(set) var metadataKeys: [String]
    public private(set) var metadata: [String: GGUFValue]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Offset of the first tensor byte (after the aligned header).
    public let dataOffset: Int
    public let file: MappedFile
    private let tensorIndex: [String: Int]

    public var fileBytes: Int { file.bytes.count }

    /// Maps and parses `path`.
    /// - Throws: `ModelFileError` naming the file and, for bad bytes, the offset.
    public init(path: String) throws {
        let file = try MappedFile(path: path)
        self.file = file
        self.path = path
        var reader = ByteReader(bytes: file.bytes, path: path)

        let magic = try reader.read(UInt32.self)
        guard magic == 0x4655_4747 else {  // "GGUF" little-endian
            throw ModelFileError.corrupt(path: path, offset: 0, reason: "not a GGUF file (bad magic)")
        }
        version = try reader.read(UInt32.self)
        guard version == 2 || version == 3 else {
            throw ModelFileError.corrupt(path: path, offset: 4, reason: "unsupported GGUF version \(version) (2 and 3 are supported)")
        }
        let tensorCountOffset = reader.offset
        let tensorCount = try reader.read(UInt64.self)
        let kvCountOffset = reader.offset
        let kvCount = try reader.read(UInt64.self)
        // Each metadata entry takes at least 8 (key length) + 4 (type) + 1 bytes, each
        // tensor entry at least 8 + 4 + 8 + 4 + 8.
        guard kvCount <= UInt64(reader.remaining / 13) else {
            throw ModelFileError.corrupt(path: path, offset: kvCountOffset, reason: "header claims \(kvCount) metadata entries, more than the file can hold")
        }
        guard tensorCount <= UInt64(reader.remaining / 32) else {
            throw ModelFileError.corrupt(path: path, offset: tensorCountOffset, reason: "header claims \(tensorCount) tensors, more than the file can hold")
        }

        var keys: [String] = []
        var metadata: [String: GGUFValue] = [:]
        keys.reserveCapacity(Int(kvCount))
        for _ in 0..<Int(kvCount) {
            let keyOffset = reader.offset
            let key = try reader.readString()
            let type = try reader.readValueType()
            let value = try reader.readValue(type, depth: 0)
            guard metadata.updateValue(value, forKey: key) == nil else {
                throw ModelFileError.corrupt(path: path, offset: keyOffset, reason: "duplicate metadata key '\(key.printable())'")
            }
            keys.append(key)
        }
        metadataKeys = keys
        self.metadata = metadata

        var alignment = 32
        if let value = metadata["general.alignment"] {
            alignment = try Self.alignment(value, path: path)
        }
        self.alignment = alignment

        struct Pending { var name: String; var type: GGMLType; var shape: [Int]; var relativeOffset: UInt64; var entryOffset: Int }
        var pending: [Pending] = []
        pending.reserveCapacity(Int(tensorCount))
        var index: [String: Int] = [:]
        for i in 0..<Int(tensorCount) {
            let entryOffset = reader.offset
            let name = try reader.readString(maxLength: Self.maximumTensorNameLength, what: "tensor name")
            let dimsOffset = reader.offset
            let nDims = try reader.read(UInt32.self)
            guard (1...4).contains(nDims) else {  // GGML_MAX_DIMS
                throw ModelFileError.corrupt(path: path, offset: dimsOffset, reason: "tensor '\(name.printable())' has \(nDims) dimensions (1 to 4 allowed)")
            }
            var shape: [Int] = []
            var elements = 1
            for _ in 0..<nDims {
                let dimOffset = reader.offset
                let dim = try reader.read(UInt64.self)
                guard dim > 0, dim < 1 << 40 else {
                    throw ModelFileError.corrupt(path: path, offset: dimOffset, reason: "tensor '\(name.printable())' has dimension \(dim)")
                }
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(dim))
                guard !overflow, product < 1 << 48 else {
                    throw ModelFileError.corrupt(path: path, offset: dimOffset, reason: "tensor '\(name.printable())' has an absurd element count")
                }
                elements = product
                shape.append(Int(dim))
            }
            let typeOffset = reader.offset
            let rawType = try reader.read(UInt32.self)
            guard let type = GGMLType(rawValue: rawType) else {
                throw ModelFileError.corrupt(path: path, offset: typeOffset, reason: "tensor '\(name.printable())' has unknown ggml type \(rawType)")
            }
            guard shape[0] % type.blockSize == 0 else {
                throw ModelFileError.corrupt(path: path, offset: dimsOffset, reason: "tensor '\(name.printable())' row of \(shape[0]) is not a multiple of the \(type.name) block size \(type.blockSize)")
            }
            let relativeOffset = try reader.read(UInt64.self)
            guard index.updateValue(i, forKey: name) == nil else {
                throw ModelFileError.corrupt(path: path, offset: entryOffset, reason: "duplicate tensor name '\(name.printable())'")
            }
            pending.append(Pending(name: name, type: type, shape: shape, relativeOffset: relativeOffset, entryOffset: entryOffset))
        }
        tensorIndex = index

        let dataOffset = (reader.offset + alignment - 1) / alignment * alignment
        self.dataOffset = dataOffset
        let fileSize = file.bytes.count
        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(pending.count)
        for p in pending {
            guard p.relativeOffset % UInt64(alignment) == 0 else {
                throw ModelFileError.corrupt(path: path, offset: p.entryOffset, reason: "tensor '\(p.name.printable())' data offset \(p.relativeOffset) is not aligned to \(alignment)")
            }
            let bytes = p.type.byteCount(elements: p.shape.reduce(1, *))!  // row divisibility checked above
            guard p.relativeOffset <= UInt64(fileSize), dataOffset + Int(p.relativeOffset) + bytes <= fileSize else {
                throw ModelFileError.corrupt(path: path, offset: p.entryOffset,
                    reason: "tensor '\(p.name.printable())' (\(bytes) bytes at \(dataOffset + Int(min(p.relativeOffset, UInt64(Int.max / 2))))) runs past the end of the file (\(fileSize) bytes); the file is truncated")
            }
            tensors.append(GGUFTensorInfo(name: p.name, type: p.type, shape: p.shape, offset: dataOffset + Int(p.relativeOffset), byteCount: bytes))
        }
        self.tensors = tensors
    }

    /// Longest tensor name GGML accepts (`GGML_MAX_NAME` − 1; llama.cpp refuses longer).
    public static let maximumTensorNameLength = 63
    /// Largest `general.alignment` accepted: 1 GiB (GGUF's default is 32 bytes; a
    /// larger alignment would only pad the file with up to that many zero bytes).
    public static let maximumAlignment = 1 << 30

    /// Checks `general.alignment`: a positive power of two, at most `maximumAlignment`.
    static func alignment(_ value: GGUFValue, path: String) throws -> Int {
        func invalid(_ reason: String) -> ModelFileError {
            .invalidValue(path: path, key: "general.alignment", reason: reason)
        }
        guard let a = value.intValue else {
            if case let .uint64(big) = value { throw invalid("is \(big) bytes, more than the 1 GiB Nibble accepts") }
            throw invalid("must be an integer, got \(value)")
        }
        guard a > 0 else { throw invalid("is \(a); it must be a positive power of two") }
        guard a & (a - 1) == 0 else { throw invalid("is \(a), which is not a power of two") }
        guard a <= maximumAlignment else {
            throw invalid("is \(a) bytes, more than the 1 GiB Nibble accepts")
        }
        return a
    }

    // MARK: - Tensors

    public func tensor(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The raw bytes of a tensor, inside the mapping (no copy).
    public func data(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[tensor.offset..<(tensor.offset + tensor.byteCount)])
    }

    /// Checks that the mapped file was not truncated or rewritten since it was mapped.
    public func verifyUnchanged() throws { try file.verifyUnchanged() }

    public func releasePages(of bytes: UnsafeRawBufferPointer) {
        guard let start = bytes.baseAddress, let base = file.bytes.baseAddress else { return }
        let offset = start - base
        file.releasePages(offset..<(offset + bytes.count))
    }

    /// Forgets the values of `keys` (the engine drops the vocabulary arrays once its
    /// tokenizer has built its own tables: for a 262,144-token vocabulary they are tens of
    /// MiB). Call before the file is shared between threads.
    public func discardMetadata(_ keys: Set<String>) {
        metadataKeys.removeAll { keys.contains($0) }
        for key in keys { metadata[key] = nil }
    }

    /// The header: metadata and tensor table (what the tokenizer and config read).
    public var headerBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: file.bytes[0..<min(dataOffset, file.bytes.count)]) }
}

extension GGUFFile: ModelSource {}

// MARK: - Byte reader

/// A cursor over the mapped bytes; every read checks the bounds and reports the offset.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    let path: String
    private(set) var offset = 0

    init(bytes: UnsafeRawBufferPointer, path: String) {
        self.bytes = bytes
        self.path = path
    }

    var remaining: Int { bytes.count - offset }

    private func truncated(_ what: String) -> ModelFileError {
        .corrupt(path: path, offset: offset, reason: "file ends while reading \(what) (file is \(bytes.count) bytes; truncated?)")
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw truncated("a \(size)-byte integer") }
        let value = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += size
        return value
    }

    /// Reads a u64 length and that many bytes as UTF-8; `maxLength` bounds names that
    /// have a limit, so a corrupt length fails here instead of swallowing the header.
    mutating func readString(maxLength: Int? = nil, what: String = "string") throws -> String {
        let lengthOffset = offset
        let length = try read(UInt64.self)
        if let maxLength, length > UInt64(maxLength) {
            throw ModelFileError.corrupt(path: path, offset: lengthOffset, reason: "\(what) of \(length) bytes is longer than the \(maxLength) allowed")
        }
        guard length <= UInt64(remaining) else {
            throw ModelFileError.corrupt(path: path, offset: lengthOffset, reason: "\(what) of \(length) bytes runs past the end of the file")
        }
        let n = Int(length)
        let string = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)]), as: UTF8.self)
        offset += n
        return string
    }

    mutating func readValueType() throws -> GGUFValueType {
        let typeOffset = offset
        let raw = try read(UInt32.self)
        guard let type = GGUFValueType(rawValue: raw) else {
            throw ModelFileError.corrupt(path: path, offset: typeOffset, reason: "unknown metadata value type \(raw)")
        }
        return type
    }

    mutating func readValue(_ type: GGUFValueType, depth: Int) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try read(UInt8.self))
        case .int8: return .int8(try read(Int8.self))
        case .uint16: return .uint16(try read(UInt16.self))
        case .int16: return .int16(try read(Int16.self))
        case .uint32: return .uint32(try read(UInt32.self))
        case .int32: return .int32(try read(Int32.self))
        case .float32: return .float32(Float(bitPattern: try read(UInt32.self)))
        case .uint64: return .uint64(try read(UInt64.self))
        case .int64: return .int64(try read(Int64.self))
        case .float64: return .float64(Double(bitPattern: try read(UInt64.self)))
        case .bool:
            let boolOffset = offset
            let raw = try read(UInt8.self)
            guard raw <= 1 else {
                throw ModelFileError.corrupt(path: path, offset: boolOffset, reason: "boolean value \(raw) is neither 0 nor 1")
            }
            return .bool(raw == 1)
        case .string: return .string(try readString())
        case .array:
            guard depth < 16 else {
                throw ModelFileError.corrupt(path: path, offset: offset, reason: "arrays nested deeper than 16 levels")
            }
            let elementType = try readValueType()
            let countOffset = offset
            let count = try read(UInt64.self)
            guard count <= UInt64(remaining / elementType.minimumEncodedSize) else {
                throw ModelFileError.corrupt(path: path, offset: countOffset, reason: "array claims \(count) elements, more than the file can hold")
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(count))
            for _ in 0..<Int(count) {
                items.append(try readValue(elementType, depth: depth + 1))
            }
            return .array(type: elementType, items)
        }
    }
}
