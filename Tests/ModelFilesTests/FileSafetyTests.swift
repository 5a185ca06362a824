import Foundation
import Testing
@testable import ModelFiles
import TestFixtures
#if canImport(Glibc)
import Glibc
#endif

/// What a file says, or what it is, never hangs, crashes or floods the terminal
/// (issue 9, items 8 and 12): only regular files are mapped, a mapping knows when its
/// file was truncated or rewritten, quoted names are short and printable, and every
/// error reads as a sentence that names the file.
@Suite struct FileSafetyTests {
    // MARK: - Only regular files

    /// A FIFO is refused at once (opening one for reading used to wait for a writer
    /// forever). If the open blocks, the test opens the writing end to release it and
    /// fails instead of hanging.
    @Test func fifoIsRefusedWithoutBlocking() throws {
        let fifo = String(try temporaryFile("x", []).dropLast(1)) + "model.gguf"
        try #require(mkfifo(fifo, 0o600) == 0)
        nonisolated(unsafe) var result: Result<GGUFFile, Error>?
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            result = Result { try GGUFFile(path: fifo) }
            done.signal()
        }
        if done.wait(timeout: .now() + 10) == .timedOut {
            let writer = open(fifo, O_WRONLY | O_NONBLOCK)  // releases the blocked open
            done.wait()
            if writer >= 0 { close(writer) }
            Issue.record("opening a FIFO blocked")
        }
        #expect(throws: ModelFileError.cannotOpen(path: fifo, reason: "not a regular file (a FIFO)")) { try result!.get() }
    }

    @Test func directoriesAndDevicesAreRefused() throws {
        let dir = Scratch.root.path
        #expect(throws: ModelFileError.cannotOpen(path: dir, reason: "not a regular file (a directory)")) { try GGUFFile(path: dir) }
        #expect(throws: ModelFileError.cannotOpen(path: "/dev/null", reason: "not a regular file (a character device)")) {
            try GGUFFile(path: "/dev/null")
        }
        #expect(ModelFileError.cannotOpen(path: "/dev/null", reason: "not a regular file (a character device)").description
                == "/dev/null: not a regular file (a character device)")
    }

    // MARK: - The mapped file changing on disk

    /// A mapped copy of the sample file, and the copy's path.
    func mappedCopy() throws -> (MappedFile, String) {
        let path = try temporaryFile("model.gguf", sampleFile().serialize())
        return (try MappedFile(path: path), path)
    }

    @Test func truncationIsDetected() throws {
        let (file, path) = try mappedCopy()
        try file.verifyUnchanged()
        let size = file.bytes.count
        try #require(truncate(path, 100) == 0)
        do {
            try file.verifyUnchanged()
            Issue.record("a truncated file passed")
        } catch let error as ModelFileError {
            #expect(error == .changedOnDisk(path: path, detail: "size \(size) → 100 bytes"))
            #expect(error.description == "\(path): the file changed on disk since it was loaded (size \(size) → 100 bytes); /reload or /model to read it again")
        }
        #expect(MappedFile.sizeChange(from: 98_362_432, to: 12_000_000) == "98.4 MB → 12.0 MB")
    }

    /// Sets a file's access and modification times, to the nanosecond.
    func setModified(_ path: String, seconds: Int, nanoseconds: Int) throws {
        var times = [timespec(tv_sec: seconds, tv_nsec: nanoseconds), timespec(tv_sec: seconds, tv_nsec: nanoseconds)]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
    }

    @Test func sameSizeRewriteIsDetected() throws {
        let (file, path) = try mappedCopy()
        // Move the modification time one second forward, as a rewrite in place would.
        try setModified(path, seconds: file.identity.modified.seconds + 1, nanoseconds: file.identity.modified.nanoseconds)
        #expect(throws: ModelFileError.changedOnDisk(path: path, detail: "rewritten in place: same size, new modification time")) {
            try file.verifyUnchanged()
        }
        // Even a nanosecond counts.
        let (other, otherPath) = try mappedCopy()
        try setModified(otherPath, seconds: other.identity.modified.seconds, nanoseconds: (other.identity.modified.nanoseconds + 1) % 1_000_000_000)
        #expect(throws: ModelFileError.self) { try other.verifyUnchanged() }
    }

    /// Replacing the file by rename leaves the mapping on the old file, which stays
    /// whole: re-reading it is safe, so the check passes.
    @Test func replacementByRenameIsSafe() throws {
        let (file, path) = try mappedCopy()
        let replacement = path + ".new"
        #expect(FileManager.default.createFile(atPath: replacement, contents: Data([1, 2, 3])))
        try #require(rename(replacement, path) == 0)
        try file.verifyUnchanged()
        #expect(file.pathNamesAnotherFile)
        #expect(file.bytes.count == sampleFile().serialize().count)
        let (fresh, _) = try mappedCopy()
        #expect(!fresh.pathNamesAnotherFile)
    }

    // MARK: - Quoting what the file says

    @Test func printableEscapesAndCuts() {
        #expect("blk.0.attn_q.weight".printable() == "blk.0.attn_q.weight")
        #expect("a\u{1B}[2Jb\n\t\u{0}\u{7F}\u{85}".printable() == "a\\x1B[2Jb\\n\\t\\x00\\x7F\\x85")
        #expect("evil\u{202E}txt".printable() == "evil\\u{202E}txt")
        let long = String(repeating: "x", count: 17_000)
        #expect(long.printable() == String(repeating: "x", count: 60) + "…")
        #expect(String(repeating: "y", count: 60).printable() == String(repeating: "y", count: 60))
        #expect(String(repeating: "\u{1}", count: 100).printable().count <= 61)
        #expect(GGUFValue.string(long).description.count <= 63)
    }

    /// The first tensor entry of `sampleFile()`: the offset of its name's length.
    func firstTensorNameOffset(_ bytes: [UInt8]) throws -> Int {
        let name: [UInt8] = [1, 0, 0, 0, 0, 0, 0, 0, UInt8(ascii: "m")]  // u64 length 1, "m"
        return try #require((0..<(bytes.count - name.count)).first { Array(bytes[$0..<($0 + name.count)]) == name })
    }

    func message(_ bytes: [UInt8]) throws -> String {
        let path = try temporaryFile("bad.gguf", bytes)
        do {
            _ = try GGUFFile(path: path)
        } catch let error as ModelFileError {
            let text = error.description
            #expect(text.hasPrefix(path))
            #expect(!text.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }, "\(text)")
            return text
        }
        Issue.record("a corrupt file parsed")
        return ""
    }

    /// A corrupt tensor-name length once quoted kilobytes of header bytes as the name.
    @Test func corruptNameLengthsGiveShortMessages() throws {
        let bytes = sampleFile().serialize()
        let at = try firstTensorNameOffset(bytes)
        var long = bytes
        withUnsafeBytes(of: UInt64(17_000).littleEndian) { for i in 0..<8 { long[at + i] = $0[i] } }
        let text = try message(long)
        #expect(text.contains("tensor name of 17000 bytes is longer than the 63 allowed"), "\(text)")
        #expect(text.count < 200)
        // A length just a little too long pulls binary bytes into the name, which is
        // then quoted (escaped, at most 60 characters) by the next error.
        var short = bytes
        short[at] = 40
        let quoted = try message(short)
        #expect(quoted.contains("tensor '"), "\(quoted)")
        #expect(quoted.contains("\\x"), "\(quoted)")
        #expect(quoted.count < 250, "\(quoted)")
    }

    @Test func alignment() throws {
        let huge = try temporaryFile("huge.gguf", sampleFile(alignment: 1 << 21).serialize())
        #expect(try GGUFFile(path: huge).alignment == 1 << 21)
        func refused(_ value: GGUFValue, _ fragment: String) throws {
            var w = GGUFWriter()
            w.add("general.alignment", value)
            let path = try temporaryFile("a.gguf", w.serialize())
            do {
                _ = try GGUFFile(path: path)
                Issue.record("alignment \(value) accepted")
            } catch let error as ModelFileError {
                #expect(error.description == "\(path): 'general.alignment' \(fragment)")
            }
        }
        try refused(.uint32(48), "is 48, which is not a power of two")
        try refused(.uint32(0), "is 0; it must be a positive power of two")
        try refused(.uint64(1 << 31), "is 2147483648 bytes, more than the 1 GiB Nibble accepts")
        try refused(.uint64(UInt64.max), "is 18446744073709551615 bytes, more than the 1 GiB Nibble accepts")
        try refused(.string("32"), "must be an integer, got \"32\"")
    }

    // MARK: - Errors are sentences

    @Test func writingToAMissingFolderSaysSo() throws {
        let path = "/nonexistent/nibble/dir/x.gguf"
        let error = ModelFileError.cannotWrite(path: path, reason: "no such file or directory")
        #expect(throws: error) { try sampleFile().write(to: path) }
        #expect(error.description == "/nonexistent/nibble/dir/x.gguf: cannot write (no such file or directory)")
        // Every route to the text gives the sentence, not "ModelFileError error 0".
        #expect(error.localizedDescription == error.description)
        #expect((error as NSError).localizedDescription == error.description)
        let dir = Scratch.root.path
        #expect(throws: ModelFileError.cannotWrite(path: dir, reason: "is a directory")) { try sampleFile().write(to: dir) }
        // A good write leaves no temporary file behind.
        let good = try temporaryFile("placeholder", [])
        let target = good + ".gguf"
        try sampleFile().write(to: target)
        #expect(try GGUFFile(path: target).tensors.count == 2)
        let folder = URL(fileURLWithPath: target).deletingLastPathComponent().path
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).sorted() == ["placeholder", "placeholder.gguf"])
    }
}
