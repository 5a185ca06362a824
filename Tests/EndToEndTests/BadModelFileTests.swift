import Foundation
import TestFixtures
import ModelFiles
import Testing

/// Issue 9 ("never crash on what a file says") through the binary: a FIFO, files whose
/// parts disagree, NaN weights, an unknown architecture, a corrupt name length,
/// unwritable outputs and memory failures each end with status 1 and a short error
/// whose first line names the file and what is wrong.
@Suite struct BadModelFileTests {
    /// The default model written again with `change` applied (GGUFWriter), in a fresh folder.
    static func variant(_ name: String, _ change: (inout [(key: String, value: GGUFValue)], inout [GGUFWriter.Tensor]) throws -> Void) throws -> String {
        let file = try GGUFFile(path: try requireModel())
        var metadata = file.metadataKeys.map { (key: $0, value: file.metadata[$0]!) }
        var tensors = file.tensors.map { GGUFWriter.Tensor(name: $0.name, type: $0.type, shape: $0.shape, data: Array(file.data(of: $0))) }
        try change(&metadata, &tensors)
        var writer = GGUFWriter(version: file.version, alignment: file.alignment)
        for (key, value) in metadata { writer.add(key, value) }
        for t in tensors { writer.add(tensor: t) }
        let path = try temporaryDirectory().appendingPathComponent(name).path
        try writer.write(to: path)
        return path
    }

    /// Removes the folder `variant` made (each is a 98 MB copy).
    static func remove(_ path: String) {
        try? FileManager.default.removeItem(at: URL(fileURLWithPath: path).deletingLastPathComponent())
    }

    static func set(_ key: String, _ value: GGUFValue, in metadata: inout [(key: String, value: GGUFValue)]) throws {
        let i = try #require(metadata.firstIndex { $0.key == key }, "no \(key)")
        metadata[i].value = value
    }

    /// Asserts the error contract and returns stderr's first line.
    @discardableResult
    func expectRefused(_ run: RunResult, naming path: String, sourceLocation: SourceLocation = #_sourceLocation) -> String {
        let lines = run.stderr.split(separator: "\n").map(String.init)
        #expect(run.status == 1, "status \(run.status): \(run.stderr)", sourceLocation: sourceLocation)
        #expect(!lines.isEmpty && lines.count <= 3, "\(run.stderr)", sourceLocation: sourceLocation)
        #expect(lines.first?.hasPrefix("Error: \(path): ") == true, "\(run.stderr)", sourceLocation: sourceLocation)
        #expect(!run.stderr.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, "control characters in \(run.stderr)", sourceLocation: sourceLocation)
        return lines.first ?? ""
    }

    // MARK: - 8a: only regular files

    /// `open` on a FIFO used to wait for a writer forever; the timeout turns a
    /// regression into a failure instead of a hung suite.
    @Test func fifoIsRefusedAtOnce() throws {
        let fifo = try temporaryDirectory().appendingPathComponent("f.gguf").path
        try #require(mkfifo(fifo, 0o600) == 0)
        for command in [["info"], ["generate", "--prompt", "hi", "--max-tokens", "1"], ["tokenize", "--text", "hi"]] {
            let run = try nibble(command + ["--model", fifo], timeout: 20)
            #expect(run.stderr == "Error: \(fifo): not a regular file (a FIFO)\n", "\(command[0]): \(run.stderr)")
            #expect(run.status == 1)
        }
        let dir = try temporaryDirectory().path
        #expect(try nibble(["info", "--model", dir]).stderr
                == "Error: \(dir): a folder without config.json, so not a Hugging Face model folder (a model is a GGUF file or such a folder)\n")
    }

    // MARK: - 11: inconsistent files

    @Test func vocabularyShorterThanTheEmbedding() throws {
        let path = try Self.variant("short-vocab.gguf") { metadata, _ in
            for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.token_type"] {
                let i = try #require(metadata.firstIndex { $0.key == key })
                guard case let .array(type, items) = metadata[i].value else { throw CancellationError() }
                metadata[i].value = .array(type: type, Array(items.dropLast(100)))
            }
        }
        defer { Self.remove(path) }
        for command in [["generate", "--prompt", "hi", "--max-tokens", "2"], ["info"]] {
            let line = expectRefused(try nibble(command + ["--model", path]), naming: path)
            #expect(line.contains("49052 tokens") && line.contains("49152 rows"), "\(line)")
        }
    }

    @Test func blockCountSmallerThanTheBlocksPresent() throws {
        let path = try Self.variant("blocks.gguf") { metadata, _ in try Self.set("llama.block_count", .uint32(20), in: &metadata) }
        defer { Self.remove(path) }
        let line = expectRefused(try nibble(["generate", "--model", path, "--prompt", "hi", "--max-tokens", "2"]), naming: path)
        #expect(line.contains("'llama.block_count' is 20") && line.contains("blk.29") && line.contains("30 blocks"), "\(line)")
    }

    /// NaN in a norm weight made every logit NaN, which greedy sampling read as token 0
    /// (EOS): an empty reply marked `eos`.
    @Test func nanWeightsStopWithAnError() throws {
        let path = try Self.variant("nan.gguf") { _, tensors in
            let i = try #require(tensors.firstIndex { $0.name == "blk.3.ffn_norm.weight" })
            try #require(tensors[i].type == .f32)
            withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { for b in 0..<4 { tensors[i].data[40 + b] = $0[b] } }
        }
        defer { Self.remove(path) }
        for extra in [[], ["--json"]] {
            let run = try nibble(["generate", "--model", path, "--prompt", "The capital of France is", "--temperature", "0", "--max-tokens", "4"] + extra)
            let line = expectRefused(run, naming: path)
            #expect(line.contains("the model produced non-finite logits (NaN or Inf) after 5 tokens"), "\(line)")
            #expect(run.stdout.isEmpty, "\(run.stdout)")
        }
    }

    /// A qwen2 file was reported as missing 'qwen2.block_count' when Nibble could not
    /// run qwen2: an unknown architecture is said first; a known one names its missing key.
    @Test func unsupportedArchitectureIsSaidFirst() throws {
        let path = try Self.variant("mamba.gguf") { metadata, _ in try Self.set("general.architecture", .string("mamba"), in: &metadata) }
        defer { Self.remove(path) }
        for command in [["info"], ["generate", "--prompt", "hi"]] {
            let run = try nibble(command + ["--model", path])
            #expect(run.stderr == "Error: \(path): architecture 'mamba' is not supported (supported: gemma3, gpt2, llama, phi3, qwen2, qwen3)\n",
                    "\(run.stderr)")
            #expect(run.status == 1)
        }
        let qwen = try Self.variant("qwen2.gguf") { metadata, _ in try Self.set("general.architecture", .string("qwen2"), in: &metadata) }
        defer { Self.remove(qwen) }
        let run = try nibble(["generate", "--model", qwen, "--prompt", "hi"])
        #expect(run.stderr == "Error: \(qwen): missing metadata key 'qwen2.block_count'\n", "\(run.stderr)")
    }

    // MARK: - 12: clear errors

    /// A corrupt tensor-name length used to quote ~17 KB of header bytes.
    @Test func corruptTensorNameLengthIsShort() throws {
        let model = try requireModel()
        let first = try GGUFFile(path: model).tensors[0].name
        var bytes = try Data(contentsOf: URL(fileURLWithPath: model))  // not .alwaysMapped: it is changed below
        var pattern = Data()
        withUnsafeBytes(of: UInt64(first.utf8.count).littleEndian) { pattern.append(contentsOf: $0) }
        pattern.append(contentsOf: first.utf8)
        let at = try #require(bytes.range(of: pattern)).lowerBound
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, length) in [("long.gguf", UInt64(17_000)), ("garbled.gguf", UInt64(first.utf8.count + 30))] {
            withUnsafeBytes(of: length.littleEndian) { for i in 0..<8 { bytes[at + i] = $0[i] } }
            let path = dir.appendingPathComponent(name).path
            try bytes.write(to: URL(fileURLWithPath: path))
            let run = try nibble(["info", "--model", path])
            let line = expectRefused(run, naming: path)
            #expect(run.stderr.count < path.count + 200, "\(run.stderr)")
            if length == 17_000 { #expect(line.contains("tensor name of 17000 bytes is longer than the 63 allowed"), "\(line)") }
            else { #expect(line.contains("tensor 'token_embd.weight\\x"), "\(line)") }
        }
    }

    @Test func unwritableOutputsSaySo() throws {
        let model = try requireModel()
        let missing = "/nonexistent-nibble-dir/x.gguf"
        let run = try nibble(["quantize", "--model", model, "--output", missing])
        #expect(run.stderr == "Error: \(missing): cannot write (no such file or directory)\n")
        #expect(run.status == 1)
        let dir = try temporaryDirectory().path
        #expect(try nibble(["quantize", "--model", model, "--output", dir]).stderr == "Error: \(dir): cannot write (is a directory)\n")
        let text = "/nonexistent-nibble-dir/text.txt"
        #expect(try nibble(["eval", "--model", model, "--file", text]).stderr == "Error: \(text): cannot read (no such file or directory)\n")
        #expect(try nibble(["tokenize", "--model", model, "--file", dir]).stderr == "Error: \(dir): cannot read (is a directory)\n")
        let short = URL(fileURLWithPath: dir).appendingPathComponent("short.txt").path
        try "Too short.".write(toFile: short, atomically: true, encoding: .utf8)
        let eval = try nibble(["eval", "--model", model, "--file", short])
        #expect(eval.stderr.hasPrefix("Error: \(short): the text has 3 tokens, fewer than one window of 512"), "\(eval.stderr)")
    }

    /// Memory failures, from the limit check or from an allocation, name the model.
    @Test func memoryErrorsNameTheModel() throws {
        let model = try requireModel()
        let limit = expectRefused(try nibble(["generate", "--model", model, "--prompt", "hi", "--memory-limit", "100M"]), naming: model)
        #expect(limit.contains("needs") && limit.contains("memory limit"), "\(limit)")
        // 300 MB of address space: the file maps, the f32 weights (540 MB) cannot.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "ulimit -v 300000 && exec \"$0\" \"$@\"", nibbleBinary, "generate", "--model", model,
                             "--precision", "f32", "--memory-limit", "100G", "--threads", "1", "--prompt", "hi", "--max-tokens", "1"]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let line = expectRefused(RunResult(status: process.terminationStatus, stdout: "", stderr: stderr), naming: model)
        #expect(line.contains("cannot allocate") || line.contains("cannot map"), "\(line)")
    }
}
