import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Builds a GGUF file (v2 or v3): metadata in insertion order, tensors aligned to
/// `alignment`. Used by `nibble quantize` and by tests that need well-formed (or
/// deliberately broken) files.
public struct GGUFWriter {
    public struct Tensor {
        public var name: String
        public var type: GGMLType
        /// ggml order: shape[0] is the contiguous dimension.
        public var shape: [Int]
        public var data: [UInt8]

        public init(name: String, type: GGMLType, shape: [Int], data: [UInt8]) {
            self.name = name
            self.type = type
            self.shape = shape
            self.data = data
        }
    }

    public var version: UInt32
    public var alignment: Int
    public private(set) var metadata: [(key: String, value: GGUFValue)] = []
    public private(set) var tensors: [Tensor] = []

    public init(version: UInt32 = 3, alignment: Int = 32) {
        self.version = version
        self.alignment = alignment
    }

    public mutating func add(_ key: String, _ value: GGUFValue) {
        metadata.append((key, value))
    }

    public mutating func add(tensor: Tensor) {
        tensors.append(tensor)
    }

    /// The complete file.
    public func serialize() -> [UInt8] {
        var out = header()
        for t in tensors {
            out.append(contentsOf: t.data)
            while out.count % alignment != 0 { out.append(0) }
        }
        return out
    }

    /// Everything before the tensor data: magic, version, counts, metadata, tensor
    /// table and padding to the alignment.
    func header() -> [UInt8] {
        var out: [UInt8] = []
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func putString(_ s: String) {
            put(UInt64(s.utf8.count))
            out.append(contentsOf: s.utf8)
        }
        func putValue(_ v: GGUFValue) {
            switch v {
            case let .uint8(x): put(x)
            case let .int8(x): put(x)
            case let .uint16(x): put(x)
            case let .int16(x): put(x)
            case let .uint32(x): put(x)
            case let .int32(x): put(x)
            case let .float32(x): put(x.bitPattern)
            case let .bool(x): put(UInt8(x ? 1 : 0))
            case let .string(x): putString(x)
            case let .array(type, items):
                put(type.rawValue)
                put(UInt64(items.count))
                items.forEach(putValue)
            case let .uint64(x): put(x)
            case let .int64(x): put(x)
            case let .float64(x): put(x.bitPattern)
            }
        }
        put(UInt32(0x4655_4747))
        put(version)
        put(UInt64(tensors.count))
        put(UInt64(metadata.count))
        for (key, value) in metadata {
            putString(key)
            put(value.type.rawValue)
            putValue(value)
        }
        var offset = 0
        for t in tensors {
            putString(t.name)
            put(UInt32(t.shape.count))
            for d in t.shape { put(UInt64(d)) }
            put(t.type.rawValue)
            put(UInt64(offset))
            offset += (t.data.count + alignment - 1) / alignment * alignment
        }
        while out.count % alignment != 0 { out.append(0) }
        return out
    }

    /// Writes the file atomically: a temporary file in the same folder, fsync, rename.
    /// On failure nothing is left behind and an existing file at `path` is untouched.
    public func write(to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
        do {
            guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
                throw ModelFileError.cannotOpen(path: temporary.path, reason: "cannot create the file")
            }
            // Streamed: the header, then each tensor's bytes and padding.
            let handle = try FileHandle(forWritingTo: temporary)
            try handle.write(contentsOf: header())
            for t in tensors {
                try handle.write(contentsOf: t.data)
                let padding = (alignment - t.data.count % alignment) % alignment
                if padding > 0 { try handle.write(contentsOf: [UInt8](repeating: 0, count: padding)) }
            }
            try handle.synchronize()
            try handle.close()
            guard rename(temporary.path, path) == 0 else {
                throw ModelFileError.cannotOpen(path: path, reason: String(cString: strerror(errno)))
            }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw ModelFileError.cannotOpen(path: path, reason: "cannot write: \(error.localizedDescription)")
        }
    }
}
