import Foundation
import Testing

/// A corrupt or missing model gives a short error naming the file: no crash, no hang,
/// no attempt to allocate what a header claims.
@Suite struct BadInputTests {
    static func badFiles() throws -> [(String, String)] {
        let dir = try temporaryDirectory()
        var files: [(String, String)] = []
        func make(_ name: String, _ data: Data) {
            let path = dir.appendingPathComponent(name).path
            FileManager.default.createFile(atPath: path, contents: data)
            files.append((name, path))
        }
        let model = try requireModel()
        let handle = try #require(FileHandle(forReadingAtPath: model))
        make("truncated.gguf", handle.readData(ofLength: 1 << 20))
        var rng = SystemRandomNumberGenerator()
        make("random.gguf", Data((0..<100_000).map { _ in UInt8.random(in: 0...255, using: &rng) }))
        make("empty.gguf", Data())
        // Valid magic and version, then 2^62 tensors and 2^63 metadata entries.
        var absurd = Data([0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0])
        withUnsafeBytes(of: (UInt64(1) << 62).littleEndian) { absurd.append(contentsOf: $0) }
        withUnsafeBytes(of: (UInt64(1) << 63).littleEndian) { absurd.append(contentsOf: $0) }
        absurd.append(Data(count: 4096))
        make("absurd-header.gguf", absurd)
        files.append(("missing", dir.appendingPathComponent("does-not-exist.gguf").path))
        return files
    }

    @Test func infoAndGenerateRejectBadFiles() throws {
        for (name, path) in try Self.badFiles() {
            for command in [["info"], ["generate", "--prompt", "hi", "--max-tokens", "2"], ["tokenize", "--text", "hi"]] {
                let run = try nibble(command + ["--model", path], timeout: 30)
                let lines = run.stderr.split(separator: "\n")
                #expect(run.status == 1, "\(name) \(command[0]): status \(run.status)")
                #expect(!lines.isEmpty && lines.count <= 3, "\(name) \(command[0]): \(run.stderr)")
                #expect(run.stderr.contains(path), "\(name) \(command[0]): \(run.stderr)")
                #expect(run.stdout.isEmpty)
            }
        }
    }

    /// Bad arguments follow the same contract: status 1, at most three lines.
    @Test func badArgumentsAreShort() throws {
        for args in [["generate", "--precision", "q9", "--prompt", "hi"], ["tokenize", "--text", "a", "--file", "b"],
                     ["generate", "--threads", "0"], ["bogus"]] {
            let run = try nibble(args)
            #expect(run.status == 1, "\(args)")
            #expect(run.stderr.hasPrefix("Error: ") && run.stderr.split(separator: "\n").count <= 3, "\(args): \(run.stderr)")
        }
        #expect(try nibble(["generate", "--precision", "q9"]).stderr.contains("q8"))
        #expect(try nibble(["--help"]).status == 0)
    }

    @Test func missingDefaultModelSaysHowToGetOne() throws {
        let empty = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: empty) }
        let run = try nibble(["generate", "--prompt", "hi"], environment: ["XDG_CACHE_HOME": empty.path])
        #expect(run.status == 1)
        #expect(run.stderr.contains("make model"))
    }
}
