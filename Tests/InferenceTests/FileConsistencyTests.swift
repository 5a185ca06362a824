import Foundation
import Testing
import ModelFiles
import Quantization
@testable import Inference
#if canImport(Glibc)
import Glibc
import TestFixtures
#endif

/// Writes `source` again as `name` in a fresh folder, after `change` edited its
/// metadata (in file order) and tensors (with their bytes). Returns the new path.
func rewrite(_ source: String, as name: String = "model.gguf",
             change: (inout [(key: String, value: GGUFValue)], inout [GGUFWriter.Tensor]) throws -> Void) throws -> String {
    let file = try GGUFFile(path: source)
    var metadata = file.metadataKeys.map { (key: $0, value: file.metadata[$0]!) }
    var tensors = file.tensors.map { t in
        GGUFWriter.Tensor(name: t.name, type: t.type, shape: t.shape, data: Array(file.data(of: t)))
    }
    try change(&metadata, &tensors)
    var writer = GGUFWriter(version: file.version, alignment: file.alignment)
    for (key, value) in metadata { writer.add(key, value) }
    for t in tensors { writer.add(tensor: t) }
    let dir = Scratch.root.appendingPathComponent("nibble-consistency-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let path = dir.appendingPathComponent(name).path
    try writer.write(to: path)
    return path
}

/// Replaces metadata `key`'s value.
func set(_ key: String, _ value: GGUFValue, in metadata: inout [(key: String, value: GGUFValue)]) throws {
    let i = try #require(metadata.firstIndex { $0.key == key }, "no \(key)")
    metadata[i].value = value
}

/// Stores `value` as element `index` of an f32 tensor.
func poke(_ value: Float, at index: Int, of name: String, in tensors: inout [GGUFWriter.Tensor]) throws {
    let i = try #require(tensors.firstIndex { $0.name == name }, "no \(name)")
    try #require(tensors[i].type == .f32)
    withUnsafeBytes(of: value.bitPattern.littleEndian) { for b in 0..<4 { tensors[i].data[4 * index + b] = $0[b] } }
}

/// The error's text when `body` throws, nil (and a recorded issue) when it does not.
func failure(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> String? {
    do {
        try body()
        Issue.record("no error", sourceLocation: sourceLocation)
        return nil
    } catch {
        return "\(error)"
    }
}

/// Model files whose parts disagree are refused with one line naming the file and both
/// sides (issue 9, item 11); NaN/Inf weights stop generation with an error instead of
/// an empty reply (11c); an unsupported architecture says so (12b); memory errors name
/// the file (12f); and a file changed on disk is not re-read (8b).
@Suite struct FileConsistencyTests {
    static let tiny: Result<String, Error> = Result { try TinyLlamaTests.buildModel().path }

    var greedy: SamplingParameters {
        var p = SamplingParameters()
        p.temperature = 0
        return p
    }

    @Test func vocabularyMustMatchTheEmbeddingRows() throws {
        let source = try Self.tiny.get()
        for delta in [-2, 2] {
            let path = try rewrite(source) { metadata, _ in
                func resize(_ key: String, _ extra: GGUFValue) throws {
                    let i = try #require(metadata.firstIndex { $0.key == key })
                    guard case let .array(type, items) = metadata[i].value else { throw CancellationError() }
                    metadata[i].value = .array(type: type, delta < 0 ? Array(items.dropLast(-delta)) : items + Array(repeating: extra, count: delta))
                }
                try resize("tokenizer.ggml.tokens", .string("<|pad|>"))
                try resize("tokenizer.ggml.token_type", .int32(3))
            }
            let message = failure { _ = try Engine(path: path, precision: .f32, context: 64) }
            let expected = delta < 0
                ? "\(path): 'tokenizer.ggml.tokens' has 270 tokens but 'token_embd.weight' has 272 rows: the ids from 270 on would have no text"
                : "\(path): 'tokenizer.ggml.tokens' has 274 tokens but 'token_embd.weight' has only 272 rows: the ids from 272 on cannot be run"
            #expect(message == expected)
            // `info` reads the config too.
            #expect(failure { _ = try ModelConfig(gguf: GGUFFile(path: path)) } == expected)
        }
    }

    @Test func blockCountMustMatchTheTensorTable() throws {
        let source = try Self.tiny.get()
        let fewer = try rewrite(source) { metadata, _ in try set("llama.block_count", .uint32(1), in: &metadata) }
        #expect(failure { _ = try Engine(path: fewer, precision: .f32, context: 64) }
                == "\(fewer): 'llama.block_count' is 1 but the tensor table has blocks up to blk.1 ('blk.1.attn_norm.weight'), 2 blocks")
        let more = try rewrite(source) { metadata, _ in try set("llama.block_count", .uint32(3), in: &metadata) }
        #expect(failure { _ = try Engine(path: more, precision: .f32, context: 64) }
                == "\(more): tensor 'blk.2.attn_norm.weight' is missing (llama.block_count says 3 blocks)")
    }

    /// A file of an architecture Nibble does not run gets one line naming the file, the
    /// architecture and the ones supported (not a missing 'mamba.block_count'); a known
    /// architecture with a missing key names the key.
    @Test func unsupportedArchitectureIsNamedFirst() throws {
        let source = try Self.tiny.get()
        let supported = "gemma3, gpt2, llama, phi3, qwen2, qwen3"
        #expect(ModelRegistry.supportedArchitectures.joined(separator: ", ") == supported)
        // Only the architecture changed: its keys are missing.
        let bare = try rewrite(source) { metadata, _ in try set("general.architecture", .string("mamba"), in: &metadata) }
        let expected = "\(bare): architecture 'mamba' is not supported (supported: \(supported))"
        #expect(failure { _ = try Engine(path: bare, precision: .f32, context: 64) } == expected)
        #expect(failure { _ = try ModelConfig(gguf: GGUFFile(path: bare)) } == expected)
        // With its keys, the config can still be read (`info` describes such files),
        // but the engine refuses it before reading them.
        func renamed(to arch: String) throws -> String {
            try rewrite(source) { metadata, _ in
                for i in metadata.indices where metadata[i].key.hasPrefix("llama.") {
                    metadata[i].key = arch + "." + metadata[i].key.dropFirst(6)
                }
                try set("general.architecture", .string(arch), in: &metadata)
            }
        }
        let full = try renamed(to: "mamba")
        #expect(failure { _ = try Engine(path: full, precision: .f32, context: 64) }
                == "\(full): architecture 'mamba' is not supported (supported: \(supported))")
        let config = try ModelConfig(gguf: GGUFFile(path: full))
        #expect(config.architecture == "mamba" && !config.isSupported && config.layerCount == 2)
        // A supported architecture whose keys are missing: the key is named.
        let qwen = try rewrite(source) { metadata, _ in try set("general.architecture", .string("qwen2"), in: &metadata) }
        #expect(failure { _ = try Engine(path: qwen, precision: .f32, context: 64) }
                == "\(qwen): missing metadata key 'qwen2.block_count'")
    }

    @Test(arguments: [Float.nan, .infinity])
    func nonFiniteWeightsStopGeneration(value: Float) throws {
        let path = try rewrite(try Self.tiny.get()) { _, tensors in
            try poke(value, at: 5, of: "blk.0.attn_norm.weight", in: &tensors)
        }
        let engine = try Engine(path: path, precision: .f32, threads: 1, context: 64)
        let prompt = [1, 2, 3, 4, 5]
        var streamed: [Int] = []
        #expect(failure { _ = try engine.generate(prompt: prompt, maxTokens: 4, sampling: greedy) { streamed.append($0) } }
                == "\(path): the model produced non-finite logits (NaN or Inf) after 5 tokens; the weights probably contain NaN or Inf")
        #expect(streamed.isEmpty)
        #expect(engine.cachedTokens.isEmpty)
        #expect(throws: EngineError.self) { try engine.logitsAtEveryPosition(for: prompt, from: 2) }
        #expect(throws: EngineError.self) { try engine.logits(for: prompt) }
    }

    @Test func finiteCheck() {
        for count in [0, 1, 15, 16, 17, 47, 272] {
            var values = (0..<count).map { Float($0) - 7.5 }
            values.withUnsafeBufferPointer { #expect(Engine.allFinite($0.baseAddress!, count: count)) }
            for i in 0..<count {
                for bad in [Float.nan, .infinity, -.infinity] {
                    let kept = values[i]
                    values[i] = bad
                    values.withUnsafeBufferPointer { #expect(!Engine.allFinite($0.baseAddress!, count: count), "\(bad) at \(i) of \(count)") }
                    values[i] = kept
                }
            }
        }
        let huge = [Float](repeating: .greatestFiniteMagnitude, count: 64)
        huge.withUnsafeBufferPointer { #expect(Engine.allFinite($0.baseAddress!, count: 64)) }
    }

    @Test func memoryErrorsNameTheFile() throws {
        let path = try Self.tiny.get()
        let message = try #require(failure { _ = try Engine(path: path, precision: .f32, context: 64, memoryLimit: 1000) })
        #expect(message.hasPrefix("\(path): precision f32 needs"), "\(message)")
        #expect(throws: EngineError.cannotLoad(path: path, reason: "cannot allocate 2 MiB for blk.0.ffn_up.weight")) {
            try Engine.namingFile(path) { throw QuantizationError.outOfMemory(bytes: 2 << 20, what: "blk.0.ffn_up.weight") }
        }
    }

    // MARK: - The file changing under a loaded engine (SmolLM2 copies)

    /// An engine on a fresh copy of the default model at q4, and the copy's path.
    func engineOnCopy() throws -> (Engine, String) {
        try #require(FileManager.default.fileExists(atPath: modelPath), "model missing at \(modelPath): run `make model`")
        let dir = Scratch.root.appendingPathComponent("nibble-changed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let copy = dir.appendingPathComponent("model.gguf").path
        try FileManager.default.copyItem(atPath: modelPath, toPath: copy)
        return (try Engine(path: copy, precision: .q4, threads: 2, context: 128), copy)
    }

    func reply(_ engine: Engine) throws -> [Int] {
        engine.resetCache()
        return try engine.generate(prompt: engine.promptTokens("The capital of France is"), maxTokens: 6, sampling: greedy) { _ in }.tokens
    }

    func removeFolder(of path: String) {
        try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path)
    }

    @Test func truncatedFileIsNotReRead() throws {
        let (engine, copy) = try engineOnCopy()
        defer { removeFolder(of: copy) }
        let before = try reply(engine)
        let size = try #require(FileManager.default.attributesOfItem(atPath: copy)[.size] as? Int)
        let handle = try #require(FileHandle(forUpdatingAtPath: copy))
        try handle.truncate(atOffset: 12_000_000)
        try handle.close()
        let message = failure { try engine.setPrecision(.q8) }
        #expect(message == "\(copy): the file changed on disk since it was loaded (size \(String(format: "%.1f", Double(size) / 1e6)) MB → 12.0 MB); /reload or /model to read it again")
        #expect(engine.format == .q4)
        #expect(try reply(engine) == before)
        // The same precision needs no re-reading and is fine.
        #expect(try engine.setPrecision(.q4) == .q4)
    }

    @Test func fileRewrittenInPlaceIsNotReRead() throws {
        let (engine, copy) = try engineOnCopy()
        defer { removeFolder(of: copy) }
        let before = try reply(engine)
        let modified = try #require(FileManager.default.attributesOfItem(atPath: copy)[.modificationDate] as? Date)
        try FileManager.default.setAttributes([.modificationDate: modified.addingTimeInterval(5)], ofItemAtPath: copy)
        #expect(failure { try engine.setPrecision(.q8) }
                == "\(copy): the file changed on disk since it was loaded (rewritten in place: same size, new modification time); /reload or /model to read it again")
        #expect(engine.format == .q4)
        #expect(try reply(engine) == before)
    }

    /// Replacing the file by rename (what editors, `cp` over a new name then `mv`, and
    /// downloads do) leaves the mapping on the old, whole file: switching is safe.
    @Test func fileReplacedByRenameStillSwitches() throws {
        let (engine, copy) = try engineOnCopy()
        defer { removeFolder(of: copy) }
        let other = copy + ".part"
        #expect(FileManager.default.createFile(atPath: other, contents: Data("not a model".utf8)))
        try #require(rename(other, copy) == 0)
        #expect(try engine.setPrecision(.q8) == .q8)
        #expect(!(try reply(engine)).isEmpty)
    }
}
