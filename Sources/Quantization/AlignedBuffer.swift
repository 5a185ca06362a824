#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An owned, 64-byte aligned, uninitialised byte buffer (cache-line and AVX-512 aligned).
public final class AlignedBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int

    /// - Returns: nil when the memory cannot be had (so a failed precision switch can
    ///   keep the old weights instead of crashing).
    public init?(byteCount: Int) {
        var raw: UnsafeMutableRawPointer?
        guard byteCount >= 0, posix_memalign(&raw, 64, max(byteCount, 64)) == 0, let raw else { return nil }
        pointer = raw
        self.byteCount = byteCount
    }

    /// A zero-filled buffer of `count` values of `T`.
    public static func zeroed<T>(_: T.Type, count: Int) -> AlignedBuffer? {
        guard let buffer = AlignedBuffer(byteCount: count * MemoryLayout<T>.stride) else { return nil }
        buffer.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: buffer.byteCount)
        return buffer
    }

    public func typed<T>(_: T.Type) -> UnsafeMutablePointer<T> {
        pointer.assumingMemoryBound(to: T.self)
    }

    deinit { free(pointer) }
}
