#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. The pages stay owned by the kernel's page
/// cache, so a 5 GB model costs no heap and re-reading a tensor never touches the disk
/// twice.
///
/// Only regular files are mapped: the path is checked before it is opened (a FIFO
/// would block `open` until a writer comes, a device could be anything), and opened
/// without blocking in case it changed in between. The descriptor stays open so that
/// `verifyUnchanged()` can tell whether the mapped file itself was truncated or
/// rewritten (reading a truncated mapping is a SIGBUS), which a replacement by rename
/// cannot do: the mapping keeps the old file.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    /// The mapped bytes; valid for the lifetime of this object.
    public let bytes: UnsafeRawBufferPointer
    /// What the file was when it was mapped.
    public let identity: Identity
    private let descriptor: Int32

    /// Device, inode, size and modification time of a file.
    public struct Identity: Sendable, Equatable {
        public var device: UInt64
        public var inode: UInt64
        public var size: Int
        /// Modification time, seconds and nanoseconds since the epoch.
        public var modified: (seconds: Int, nanoseconds: Int)

        init(_ info: stat) {
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
            size = Int(info.st_size)
            #if canImport(Darwin)
            modified = (Int(info.st_mtimespec.tv_sec), Int(info.st_mtimespec.tv_nsec))
            #else
            modified = (Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec))
            #endif
        }

        public static func == (a: Identity, b: Identity) -> Bool {
            a.device == b.device && a.inode == b.inode && a.size == b.size && a.modified == b.modified
        }
    }

    public init(path: String) throws {
        self.path = path
        func failure(_ code: Int32) -> ModelFileError {
            .cannotOpen(path: path, reason: ModelFileError.systemReason(code))
        }
        var info = stat()
        guard stat(path, &info) == 0 else { throw failure(errno) }
        try Self.requireRegularFile(info, path: path)
        // O_NONBLOCK: should the path have become a FIFO since, open returns at once.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw failure(errno) }
        var mapped = false
        defer { if !mapped { close(fd) } }
        guard fstat(fd, &info) == 0 else { throw failure(errno) }
        try Self.requireRegularFile(info, path: path)
        let size = Int(info.st_size)
        guard size > 0 else { throw ModelFileError.cannotOpen(path: path, reason: "file is empty") }
        let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let base, base != MAP_FAILED else {
            throw ModelFileError.cannotOpen(path: path, reason: "cannot map: " + ModelFileError.systemReason(errno))
        }
        bytes = UnsafeRawBufferPointer(start: base, count: size)
        identity = Identity(info)
        descriptor = fd
        mapped = true
    }

    /// Refuses anything but a regular file, saying what it is instead.
    static func requireRegularFile(_ info: stat, path: String) throws {
        let kind: String
        switch info.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFDIR: kind = "a directory"
        case S_IFIFO: kind = "a FIFO"
        case S_IFCHR: kind = "a character device"
        case S_IFBLK: kind = "a block device"
        case S_IFSOCK: kind = "a socket"
        default: kind = "not a file"
        }
        throw ModelFileError.cannotOpen(path: path, reason: "not a regular file (\(kind))")
    }

    /// Throws `ModelFileError.changedOnDisk` when the mapped file (not whatever the path
    /// names now) has another size or modification time than when it was mapped: it
    /// was truncated (reading the mapping could fault) or rewritten in place (the
    /// bytes would mix two versions). Call it before re-reading tensors from the
    /// mapping. A file replaced by rename passes: the mapping still holds the old one.
    /// Drops the pages of `range` (byte offsets in the file) from this process's memory:
    /// they stay in the page cache and come back on the next access. The weights are
    /// copied out of the mapping, so after a tensor is loaded its file pages would only
    /// count a second time in the resident set.
    public func releasePages(_ range: Range<Int>) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        // Only whole pages inside the range: a page shared with a neighbour stays.
        let start = (max(range.lowerBound, 0) + page - 1) / page * page
        let end = min(range.upperBound, bytes.count) / page * page
        guard start < end, let base = bytes.baseAddress else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }

    public func verifyUnchanged() throws {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw ModelFileError.changedOnDisk(path: path, detail: "it cannot be checked: " + ModelFileError.systemReason(errno))
        }
        let now = Identity(info)
        if now.size != identity.size {
            throw ModelFileError.changedOnDisk(path: path, detail: "size " + Self.sizeChange(from: identity.size, to: now.size))
        }
        if now.modified != identity.modified {
            throw ModelFileError.changedOnDisk(path: path, detail: "rewritten in place: same size, new modification time")
        }
    }

    /// Whether `path` now names another file than the mapped one (replaced or removed);
    /// the mapping itself stays valid then.
    public var pathNamesAnotherFile: Bool {
        var info = stat()
        guard stat(path, &info) == 0 else { return true }
        let now = Identity(info)
        return now.device != identity.device || now.inode != identity.inode
    }

    /// "98.4 MB → 12.0 MB", or exact bytes when the rounded sizes look alike.
    static func sizeChange(from old: Int, to new: Int) -> String {
        func mb(_ b: Int) -> String {
            let tenths = (b * 10 + 500_000) / 1_000_000
            return "\(tenths / 10).\(tenths % 10) MB"
        }
        return mb(old) != mb(new) ? "\(mb(old)) → \(mb(new))" : "\(old) → \(new) bytes"
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count)
        close(descriptor)
    }
}
