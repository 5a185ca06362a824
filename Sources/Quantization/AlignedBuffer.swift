import Synchronization
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
/// mmap threshold after the first large free). Their pages are committed on first touch,
/// 4 KiB at a time, or with `hugePages` 2 MiB at a time (`HugePages`): for memory that is
/// all touched at once and read all over, all the time (a `WeightArena`'s, the weights).
public final class AlignedBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int
    private enum Storage {
        case heap
        case map(length: Int)
        /// Part of an arena's chunk, which lives as long as any of its slices.
        case slice(HugePages.Chunk)
    }
    private let storage: Storage

    static let mapThreshold = 1 << 20

    /// - Parameters:
    ///   - hugePages: a buffer of a megabyte or more in transparent huge pages.
    ///   - smallHead: with `hugePages`, the first 2 MiB stay in 4 KiB pages, so that memory
    ///     filled from the start (the KV cache) commits no more than it uses while it is
    ///     short, and huge pages after that.
    ///   - mapped: a map of its own at any size, for scratch freed as soon as it is used,
    ///     so that the heap never holds it. (The loader's staging buffers, freed between
    ///     matrices, raised peak RSS by 13 MiB in one load of five once the weights no
    ///     longer came from the heap and filled what they left.)
    /// - Returns: nil when the memory cannot be had (so a failed precision switch can
    ///   keep the old weights instead of crashing).
    public init?(byteCount: Int, hugePages: Bool = false, smallHead: Bool = false, mapped: Bool = false) {
        guard byteCount >= 0 else { return nil }
        if byteCount >= AlignedBuffer.mapThreshold || mapped {
            guard let (raw, length) = HugePages.map(byteCount, huge: hugePages, smallHead: smallHead) else { return nil }
            pointer = raw
            storage = .map(length: length)
        } else {
            var raw: UnsafeMutableRawPointer?
            guard posix_memalign(&raw, 64, max(byteCount, 64)) == 0, let raw else { return nil }
            pointer = raw
            storage = .heap
        }
        self.byteCount = byteCount
    }

    fileprivate init(slice pointer: UnsafeMutableRawPointer, byteCount: Int, of chunk: HugePages.Chunk) {
        self.pointer = pointer
        self.byteCount = byteCount
        storage = .slice(chunk)
    }

    /// A zero-filled buffer of `count` values of `T`.
    public static func zeroed<T>(_: T.Type, count: Int) -> AlignedBuffer? {
        guard let buffer = AlignedBuffer(byteCount: count * MemoryLayout<T>.stride) else { return nil }
        if case .heap = buffer.storage {  // fresh anonymous maps are zero already
            buffer.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: buffer.byteCount)
        }
        return buffer
    }

    public func typed<T>(_: T.Type) -> UnsafeMutablePointer<T> {
        pointer.assumingMemoryBound(to: T.self)
    }

    deinit {
        switch storage {
        case .heap: free(pointer)
        case .map(let length): munmap(pointer, length)
        case .slice: break  // the chunk is unmapped with its last slice
        }
    }
}

/// Anonymous memory in 2 MiB-aligned maps advised `MADV_HUGEPAGE`, so that where the
/// kernel grants transparent huge pages (`/sys/kernel/mm/transparent_hugepage/enabled`
/// `always` or `madvise`) each 2 MiB of it is one TLB entry instead of 512. Decode reads
/// every weight once a token; with 4 KiB pages that is a TLB miss (and a page walk, which
/// the hardware prefetchers do not cross) every 4 KiB. Only whole 2 MiB extents inside a
/// map get huge pages; the rest stays 4 KiB, so a map commits no more than its length.
/// Measured in BENCHMARKS.md (2026-12-05 21:30).
enum HugePages {
    static let size = 2 << 20

    /// `bytes` (rounded up to 4 KiB) of fresh zeroed memory and the length to unmap, or nil;
    /// `huge`: 2 MiB-aligned and advised for huge pages (Linux; elsewhere a plain map), all
    /// of it or, with `smallHead`, all but the first 2 MiB.
    static func map(_ bytes: Int, huge: Bool = true, smallHead: Bool = false) -> (UnsafeMutableRawPointer, Int)? {
        let length = (max(bytes, 1) + 4095) & ~4095
        #if os(Linux)
        if huge {
            // Map 2 MiB more, then give back the head before the first boundary and the tail.
            guard let raw = mmap(nil, length + size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                  raw != MAP_FAILED else { return nil }
            let start = Int(bitPattern: raw), aligned = (start + size - 1) & ~(size - 1)
            if aligned > start { munmap(raw, aligned - start) }
            let tail = start + size - aligned
            if tail > 0 { munmap(UnsafeMutableRawPointer(bitPattern: aligned + length), tail) }
            let pointer = UnsafeMutableRawPointer(bitPattern: aligned)!
            let head = smallHead ? min(size, length) : 0
            if head < length { _ = madvise(pointer + head, length - head, MADV_HUGEPAGE) }  // a hint: no huge pages is not an error
            return (pointer, length)
        }
        #endif
        guard let raw = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              raw != MAP_FAILED else { return nil }
        return (raw, length)
    }

    /// One map that slices are cut from; unmapped when the arena and every slice are gone.
    final class Chunk: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer
        let length: Int
        init?(bytes: Int) {
            guard let (pointer, length) = HugePages.map(bytes) else { return nil }
            (self.pointer, self.length) = (pointer, length)
        }
        deinit { munmap(pointer, length) }
    }
}

/// Memory for one model's weight matrices, in huge pages (`HugePages`). A matrix of
/// `HugePages.size` (2 MiB) or more is a map of its own; smaller ones (most of a small
/// model's: SmolLM2's are 69–553 KiB at q4) are cut, 64-byte aligned and back to back, from
/// shared chunks, so that they share huge pages too: the first chunk as large as the
/// loader expects them to take in all (`smallBytes`), any more of `chunkBytes`, each slice
/// in the first chunk it fits. What is committed beyond the matrices is the 2 MiB extent
/// each chunk's last slice ends in, so one chunk sized by the plan wastes least. A chunk
/// is unmapped when the arena and its last matrix are gone, so a precision switch gives the
/// old weights' memory back as before.
public final class WeightArena: Sendable {
    private struct State {
        var nextChunk: Int
        var chunks: [(chunk: HugePages.Chunk, used: Int)] = []
    }
    private let state: Mutex<State>
    private let chunkBytes: Int

    /// - Parameter smallBytes: what the matrices under 2 MiB will take, each rounded up to
    ///   64 bytes (`WeightArena.sliceBytes`); 0 if not known.
    public init(smallBytes: Int = 0, chunkBytes: Int = 8 << 20) {
        state = Mutex(State(nextChunk: smallBytes > 0 ? smallBytes : chunkBytes))
        self.chunkBytes = chunkBytes
    }

    /// What a matrix of `byteCount` bytes takes of a shared chunk (0: it gets a map of its own).
    public static func sliceBytes(_ byteCount: Int) -> Int {
        byteCount >= HugePages.size ? 0 : (max(byteCount, 1) + 63) & ~63
    }

    /// `byteCount` bytes of zeroed memory, or nil when no memory can be had.
    public func allocate(byteCount: Int) -> AlignedBuffer? {
        guard byteCount >= 0 else { return nil }
        let size = WeightArena.sliceBytes(byteCount)
        if size == 0 { return AlignedBuffer(byteCount: byteCount, hugePages: true) }
        return state.withLock { s -> AlignedBuffer? in
            var index = s.chunks.firstIndex { $0.used + size <= $0.chunk.length }
            if index == nil {
                guard let fresh = HugePages.Chunk(bytes: max(size, s.nextChunk)) else { return nil }
                s.chunks.append((fresh, 0))
                s.nextChunk = chunkBytes
                index = s.chunks.count - 1
            }
            let (chunk, used) = s.chunks[index!]
            s.chunks[index!].used = used + size
            return AlignedBuffer(slice: chunk.pointer + used, byteCount: byteCount, of: chunk)
        }
    }
}
