#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An owned, 64-byte aligned, uninitialised byte buffer (cache-line and AVX-512 aligned).
///
/// Buffers of a megabyte or more are their own anonymous memory maps: freeing them
/// gives the pages back to the system at once, so the RSS after a precision switch is
/// the new weights' and not the old ones' (glibc keeps freed heap memory, and raises its
/// mmap threshold after the first large free). Their pages are committed on first touch.
public final class AlignedBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int
    private let mapped: Bool

    static let mapThreshold = 1 << 20

    /// - Returns: nil when the memory cannot be had (so a failed precision switch can
    ///   keep the old weights instead of crashing).
    public init?(byteCount: Int) {
        guard byteCount >= 0 else { return nil }
        if byteCount >= AlignedBuffer.mapThreshold {
            let raw = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let raw, raw != MAP_FAILED else { return nil }
            pointer = raw
            mapped = true
        } else {
            var raw: UnsafeMutableRawPointer?
            guard posix_memalign(&raw, 64, max(byteCount, 64)) == 0, let raw else { return nil }
            pointer = raw
            mapped = false
        }
        self.byteCount = byteCount
    }

    /// A zero-filled buffer of `count` values of `T`.
    public static func zeroed<T>(_: T.Type, count: Int) -> AlignedBuffer? {
        guard let buffer = AlignedBuffer(byteCount: count * MemoryLayout<T>.stride) else { return nil }
        if !buffer.mapped {  // fresh anonymous maps are zero already
            buffer.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: buffer.byteCount)
        }
        return buffer
    }

    public func typed<T>(_: T.Type) -> UnsafeMutablePointer<T> {
        pointer.assumingMemoryBound(to: T.self)
    }

    deinit {
        if mapped { munmap(pointer, byteCount) } else { free(pointer) }
    }
}
