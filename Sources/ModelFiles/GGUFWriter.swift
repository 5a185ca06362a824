import Foundation
#if canImport(Glibc)
import Glibc
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let systemWrite = Darwin.write
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
    /// - Throws: `ModelFileError.cannotWrite` naming `path` and the system's reason,
    ///   e.g. "x.gguf: cannot write (no such file or directory)".
    public func write(to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp").path
        func failure(_ code: Int32) -> ModelFileError { .cannotWrite(path: path, reason: ModelFileError.systemReason(code)) }
        try Self.checkWritable(path)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure(errno) }
        var done = false
        defer {
            if !done {
                close(fd)
                unlink(temporary)
            }
        }
        func put(_ bytes: UnsafeRawBufferPointer) throws {
            var offset = 0
            while offset < bytes.count {
                let n = systemWrite(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw failure(errno)
                }
                offset += n
            }
        }
        // Streamed: the header, then each tensor's bytes and padding.
        try header().withUnsafeBytes(put)
        let zeros = [UInt8](repeating: 0, count: alignment)
        for t in tensors {
            try t.data.withUnsafeBytes(put)
            let padding = (alignment - t.data.count % alignment) % alignment
            if padding > 0 { try zeros.withUnsafeBytes { try put(UnsafeRawBufferPointer(rebasing: $0[..<padding])) } }
        }
        guard fsync(fd) == 0 else { throw failure(errno) }
        done = true
        guard close(fd) == 0 else {
            let code = errno
            unlink(temporary)
            throw failure(code)
        }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw failure(code)
        }
    }

    /// Fails early, before any work, when `path` cannot be written: its folder is
    /// missing or not writable, or `path` is a folder.
    /// - Throws: `ModelFileError.cannotWrite` with the system's reason.
    public static func checkWritable(_ path: String) throws {
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR {
            throw ModelFileError.cannotWrite(path: path, reason: ModelFileError.systemReason(EISDIR))
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard access(folder, W_OK | X_OK) == 0 else {
            throw ModelFileError.cannotWrite(path: path, reason: ModelFileError.systemReason(errno))
        }
    }
}
