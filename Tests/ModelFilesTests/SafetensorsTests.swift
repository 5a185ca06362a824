import Foundation
import Testing
@testable import ModelFiles
import TestFixtures

/// Safetensors files and model folders built here, good and bad: each bad one is
/// refused with one line naming the file and the tensor or field at fault.
@Suite struct SafetensorsTests {
    /// A scratch folder, removed when the test ends.
    final class Scratch {
        let url = TestFixtures.Scratch.root.appendingPathComponent("nibble-st-\(UUID().uuidString)")
        init() throws { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(at: url) }
        func path(_ name: String) -> String { url.appendingPathComponent(name).path }
        func write(_ name: String, _ data: Data) throws -> String {
            try data.write(to: url.appendingPathComponent(name))
            return path(name)
        }
    }

    /// A safetensors file: `header` as JSON after its u64 length, then `dataBytes` bytes.
    static func safetensors(header: String, dataBytes: Int, headerLength: UInt64? = nil) -> Data {
        let json = Data(header.utf8)
        var out = Data()
        withUnsafeBytes(of: (headerLength ?? UInt64(json.count)).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(Data((0..<dataBytes).map { UInt8($0 & 0xFF) }))
        return out
    }

    func failure(_ body: () throws -> Void) -> String {
        do { try body() } catch { return "\(error)" }
        return "no error"
    }

    @Test func readsAValidFile() throws {
        let s = try Scratch()
        let header = #"{"__metadata__":{"format":"pt"},"b":{"dtype":"F16","shape":[2,3],"data_offsets":[16,28]},"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"c":{"dtype":"BF16","shape":[2],"data_offsets":[28,32]}}"#
        let path = try s.write("ok.safetensors", Self.safetensors(header: header, dataBytes: 32))
        let file = try SafetensorsFile(path: path)
        #expect(file.tensors.map(\.name) == ["a", "b", "c"])
        #expect(file.tensor(named: "b")?.type == .f16 && file.tensor(named: "b")?.shape == [2, 3])
        #expect(file.metadata["format"] == "pt")
        let a = try #require(file.tensor(named: "a"))
        #expect(Array(file.data(of: a)) == (0..<16).map { UInt8($0) })
    }

    @Test func refusesBadHeaders() throws {
        let s = try Scratch()
        func check(_ name: String, _ data: Data, _ mentions: [String]) throws {
            let path = try s.write(name, data)
            let message = failure { _ = try SafetensorsFile(path: path) }
            #expect(message.hasPrefix(path + ": "), "\(message)")
            #expect(!message.contains("\n"))
            for m in mentions { #expect(message.contains(m), "\(message) should mention \(m)") }
        }
        let good = #"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#
        try check("length.safetensors", Self.safetensors(header: good, dataBytes: 16, headerLength: 1 << 40), ["header length", "past the end"])
        try check("json.safetensors", Self.safetensors(header: #"{"w": [1, 2"#, dataBytes: 16), ["not well-formed JSON"])
        try check("offsets.safetensors", Self.safetensors(header: #"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]}}"#, dataBytes: 16),
                  ["'w'", "past the end of the data section"])
        try check("overlap.safetensors", Self.safetensors(header: #"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"v":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#, dataBytes: 16),
                  ["'w'", "'v'", "overlaps"])
        try check("size.safetensors", Self.safetensors(header: #"{"w":{"dtype":"F16","shape":[2,2],"data_offsets":[0,16]}}"#, dataBytes: 16),
                  ["'w'", "16 bytes", "F16", "8 bytes"])
        try check("dtype.safetensors", Self.safetensors(header: #"{"w":{"dtype":"I8","shape":[16],"data_offsets":[0,16]}}"#, dataBytes: 16),
                  ["'w'", "I8", "F32, F16 and BF16"])
    }

    /// A one-layer Llama folder with a config.json written by `config`.
    func folder(_ s: Scratch, config: String) throws -> String {
        try Data(config.utf8).write(to: s.url.appendingPathComponent("config.json"))
        let header = #"{"model.embed_tokens.weight":{"dtype":"F32","shape":[4,2],"data_offsets":[0,32]}}"#
        _ = try s.write("model.safetensors", Self.safetensors(header: header, dataBytes: 32))
        let tokenizer = #"{"model":{"type":"BPE","vocab":{"a":0,"b":1,"c":2,"d":3},"merges":[]},"pre_tokenizer":{"type":"ByteLevel","use_regex":true},"added_tokens":[]}"#
        try Data(tokenizer.utf8).write(to: s.url.appendingPathComponent("tokenizer.json"))
        return s.url.path
    }

    @Test func refusesBadConfigs() throws {
        let s = try Scratch()
        let configPath = s.path("config.json")
        var path = try folder(s, config: #"{"model_type":"llama","num_hidden_layers":1,"num_attention_heads":1,"intermediate_size":4,"vocab_size":4}"#)
        #expect(failure { _ = try HuggingFaceFolder(path: path) } == "\(configPath): 'hidden_size' is missing")
        path = try folder(s, config: #"{"model_type":"mamba","hidden_size":2}"#)
        let message = failure { _ = try HuggingFaceFolder(path: path) }
        #expect(message.hasPrefix("\(configPath): model_type 'mamba' is not one Nibble runs (supported: llama, mistral"), "\(message)")
        path = try folder(s, config: #"{"model_type":"llama","hidden_size":"big"}"#)
        #expect(failure { _ = try HuggingFaceFolder(path: path) } == "\(configPath): 'hidden_size' is not an integer")
        path = try folder(s, config: #"{"model_type":"llama","hidden_size":2,"num_hidden_layers":1,"num_attention_heads":1,"intermediate_size":4,"vocab_size":4}"#)
        let ok = try HuggingFaceFolder(path: path)
        #expect(ok.int("llama.embedding_length") == 2 && ok.tensor(named: "token_embd.weight")?.shape == [2, 4])
        #expect(ok.string("tokenizer.ggml.pre") == "gpt-2")
    }

    @Test func refusesAnUnknownPreTokenizer() throws {
        let s = try Scratch()
        let path = try folder(s, config: #"{"model_type":"llama","hidden_size":2,"num_hidden_layers":1,"num_attention_heads":1,"intermediate_size":4,"vocab_size":4}"#)
        let tokenizer = #"{"model":{"type":"BPE","vocab":{"a":0,"b":1,"c":2,"d":3},"merges":[]},"pre_tokenizer":{"type":"Whitespace"},"added_tokens":[]}"#
        try Data(tokenizer.utf8).write(to: s.url.appendingPathComponent("tokenizer.json"))
        let message = failure { _ = try HuggingFaceFolder(path: path) }
        #expect(message.hasPrefix(s.path("tokenizer.json") + ": pre_tokenizer Whitespace is not one Nibble recognises"), "\(message)")
    }

    @Test func readsShardedFolders() throws {
        let s = try Scratch()
        _ = try folder(s, config: #"{"model_type":"llama","hidden_size":2,"num_hidden_layers":1,"num_attention_heads":1,"intermediate_size":4,"vocab_size":4}"#)
        try FileManager.default.removeItem(atPath: s.path("model.safetensors"))
        _ = try s.write("model-00001-of-00002.safetensors", Self.safetensors(header: #"{"model.embed_tokens.weight":{"dtype":"F32","shape":[4,2],"data_offsets":[0,32]}}"#, dataBytes: 32))
        _ = try s.write("model-00002-of-00002.safetensors", Self.safetensors(header: #"{"model.norm.weight":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#, dataBytes: 4))
        let index = #"{"metadata":{},"weight_map":{"model.embed_tokens.weight":"model-00001-of-00002.safetensors","model.norm.weight":"model-00002-of-00002.safetensors"}}"#
        _ = try s.write("model.safetensors.index.json", Data(index.utf8))
        let folder = try HuggingFaceFolder(path: s.url.path)
        #expect(folder.tensor(named: "output_norm.weight")?.type == .bf16)
        #expect(folder.tensors.count == 2)
        let bad = #"{"weight_map":{"model.embed_tokens.weight":"model-00001-of-00002.safetensors","model.norm.weight":"model-00001-of-00002.safetensors"}}"#
        _ = try s.write("model.safetensors.index.json", Data(bad.utf8))
        let message = failure { _ = try HuggingFaceFolder(path: s.url.path) }
        #expect(message.contains("model-00001-of-00002.safetensors: tensor 'model.norm.weight' is missing"), "\(message)")
    }
}
