import CKernels
import Foundation
import Testing
@testable import ModelFiles

func resource(_ name: String) throws -> [String: Any] {
    let url = try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Resources"))
    return try #require(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
}

func modelPath(_ variable: String, _ file: String) -> String {
    let env = ProcessInfo.processInfo.environment
    if let path = env[variable], !path.isEmpty { return path }
    let cache = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.cache")
    return cache + "/nibble/models/" + file
}

/// Dequantisation must equal gguf-py's `gguf.quants.dequantize` bit for bit
/// (fixtures from Tools/reference_dequant.py): every type the engine reads, on synthetic
/// blocks, and every tensor of both model files (no tensor is skipped).
@Suite struct DequantizeTests {
    @Test func syntheticBlocksOfEveryType() throws {
        let fixture = try resource("synthetic-dequant.json")
        let entries = try #require(fixture["entries"] as? [[String: Any]])
        var covered = Set<GGMLType>()
        for entry in entries {
            let typeName = try #require(entry["type"] as? String)
            let type = try #require(GGMLType(name: typeName))
            let count = try #require(entry["count"] as? Int)
            let base64 = try #require(entry["bytes_base64"] as? String)
            let bytes = try #require(Data(base64Encoded: base64))
            #expect(type.byteCount(elements: count) == bytes.count)
            var out = [Float](repeating: .nan, count: count)
            bytes.withUnsafeBytes { raw in
                out.withUnsafeMutableBufferPointer { type.dequantize(raw.baseAddress!, count: count, into: $0.baseAddress!) }
            }
            #expect(out.withUnsafeBytes { SHA256.hex($0) } == entry["sha256"] as? String, "\(type.name)")
            let values = try #require(entry["values"] as? [Double])
            #expect(values.map(Float.init) == out, "\(type.name)")
            covered.insert(type)
        }
        #expect(covered == [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq4_NL, .iq4_XS])
        #expect(GGMLType.allCases.filter(\.canDequantize).sorted { $0.rawValue < $1.rawValue } == covered.sorted { $0.rawValue < $1.rawValue },
                "every type the engine reads has fixture blocks")
    }

    @Test(arguments: [("smollm2-dequant.json", "NIBBLE_MODEL", "SmolLM2-135M-Instruct.Q4_1.gguf"),
                      ("gemma3-dequant.json", "NIBBLE_GEMMA", "gemma-3-270m-q4_k_m.gguf")])
    func realTensors(fixtureName: String, variable: String, file: String) throws {
        let path = modelPath(variable, file)
        try #require(FileManager.default.fileExists(atPath: path), "model missing at \(path): run `make test`, which installs it")
        let gguf = try GGUFFile(path: path)
        let fixture = try resource(fixtureName)
        let tensors = try #require(fixture["tensors"] as? [[String: Any]])
        #expect(tensors.count == gguf.tensors.count)
        for reference in tensors {
            let name = try #require(reference["name"] as? String)
            let tensor = try #require(gguf.tensor(named: name))
            #expect(tensor.type.name == reference["type"] as? String)
            #expect(tensor.shape == reference["shape"] as? [Int])
            #expect(tensor.type.canDequantize, "\(name): \(tensor.type.name)")
            let values = try gguf.dequantize(tensor)
            #expect(values.withUnsafeBytes { SHA256.hex($0) } == reference["sha256"] as? String, "\(name)")
            for sample in try #require(reference["samples"] as? [[Double]]) {
                #expect(values[Int(sample[0])] == Float(sample[1]), "\(name)[\(Int(sample[0]))]")
            }
        }
    }

    /// The C dequantisers' block geometry is ggml's (GGMLType's traits).
    @Test func blockGeometryMatchesGGML() {
        for type in GGMLType.allCases where type.canDequantize {
            #expect(Int(nb_ggml_block_size(type.rawValue)) == type.blockSize && Int(nb_ggml_block_bytes(type.rawValue)) == type.blockBytes,
                    "\(type.name)")
        }
        #expect(nb_ggml_dequantize(GGMLType.q8_K.rawValue, nil, 0, nil) == 0)  // no dequantiser: nothing written
    }

    @Test func sha256KnownAnswers() {
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex([UInt8](repeating: 0x61, count: 1000)) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }
}
