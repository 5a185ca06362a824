// The tiny reference models (Tools/reference_families.py) as the tests use them: a
// Hugging Face folder plus the GGUF llama.cpp's converter made from it. Model files are
// not committed: each folder's `binaries.json` (Tools/pack_tiny_models.py) holds the GGUF
// as metadata and tensors and the safetensors file as header and data section, and this
// writes them out once per process into a temporary folder next to copies of the text files.
// `adapter.json` (Tools/reference_adapters.py) packs a tiny LoRA adapter the same way, and
// `bf16.json` (Tools/reference_bf16.py) a bfloat16 model.safetensors.

import Foundation
import ModelFiles

public enum TinyModels {
    public enum Failure: Error, CustomStringConvertible {
        case bad(String)
        public var description: String { switch self { case let .bad(s): s } }
    }

    /// The committed folder of `family` (text files and `binaries.json`).
    public static func sourceFolder(_ family: String, resources: URL) -> URL {
        resources.appendingPathComponent("tiny-models").appendingPathComponent(family)
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var made: [String: URL] = [:]

    /// A complete folder for `family` (config.json, tokenizer files, model.safetensors,
    /// `<family>.gguf`, reference.json), written on first use.
    public static func folder(_ family: String, resources: URL) throws -> URL {
        lock.lock()
        defer { lock.unlock() }
        if let url = made[family] { return url }
        let source = sourceFolder(family, resources: resources)
        let out = Scratch.root.appendingPathComponent("nibble-tiny-\(family)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: source.path) where name != "binaries.json" {
            try FileManager.default.copyItem(at: source.appendingPathComponent(name), to: out.appendingPathComponent(name))
        }
        let data = try Data(contentsOf: source.appendingPathComponent("binaries.json"))
        guard let pack = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw Failure.bad("binaries.json") }
        if let text = pack["tokenizer.model"] as? String {
            try bytes(text).write(to: out.appendingPathComponent("tokenizer.model"))
        }
        guard let st = pack["safetensors"] as? [String: Any], let header = st["header"] as? String, let body = st["data"] as? String
        else { throw Failure.bad("\(family): safetensors") }
        try safetensors(header: header, data: body).write(to: out.appendingPathComponent("model.safetensors"))
        guard let g = pack["gguf"] as? [String: Any] else { throw Failure.bad("\(family): gguf") }
        try gguf(g).write(to: out.appendingPathComponent("\(family).gguf").path)
        made[family] = out
        return out
    }

    nonisolated(unsafe) private static var madeAdapters: [String: (peft: URL, gguf: URL?)] = [:]

    /// The tiny LoRA adapter of `family` (Tools/reference_adapters.py, `adapter.json`),
    /// written on first use into a temporary folder: `peft` is a PEFT adapter folder
    /// (adapter_config.json + adapter_model.safetensors), `gguf` the adapter converted by
    /// llama.cpp's convert_lora_to_gguf.py, or nil where the converter refused the adapter
    /// (`adapter.json`'s "gguf_refused" says why).
    public static func adapter(_ family: String, resources: URL) throws -> (peft: URL, gguf: URL?) {
        lock.lock()
        defer { lock.unlock() }
        if let made = madeAdapters[family] { return made }
        let source = sourceFolder(family, resources: resources).appendingPathComponent("adapter.json")
        guard let pack = try JSONSerialization.jsonObject(with: Data(contentsOf: source)) as? [String: Any]
        else { throw Failure.bad("\(family): adapter.json") }
        let out = Scratch.root.appendingPathComponent("nibble-tiny-\(family)-adapter-\(UUID().uuidString)")
        let peft = out.appendingPathComponent("peft")
        try FileManager.default.createDirectory(at: peft, withIntermediateDirectories: true)
        guard let config = pack["adapter_config"] as? [String: Any] else { throw Failure.bad("\(family): adapter_config") }
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
            .write(to: peft.appendingPathComponent("adapter_config.json"))
        guard let st = pack["peft_safetensors"] as? [String: Any], let header = st["header"] as? String,
              let body = st["data"] as? String else { throw Failure.bad("\(family): peft_safetensors") }
        try safetensors(header: header, data: body).write(to: peft.appendingPathComponent("adapter_model.safetensors"))
        var ggufURL: URL?
        if let g = pack["gguf"] as? [String: Any] {
            let url = out.appendingPathComponent("\(family)-lora.gguf")
            try gguf(g).write(to: url.path)
            ggufURL = url
        }
        madeAdapters[family] = (peft, ggufURL)
        return (peft, ggufURL)
    }

    nonisolated(unsafe) private static var madeBF16: [String: URL] = [:]

    /// The bfloat16 variant of `family` (Tools/reference_bf16.py, `bf16.json`; llama only):
    /// a Hugging Face folder with the bf16 `config.json` and `model.safetensors` and the
    /// family's tokenizer files, written on first use. No GGUF.
    public static func bf16Folder(_ family: String, resources: URL) throws -> URL {
        lock.lock()
        defer { lock.unlock() }
        if let url = madeBF16[family] { return url }
        let source = sourceFolder(family, resources: resources)
        guard let pack = try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("bf16.json"))) as? [String: Any],
              let config = pack["config"] as? [String: Any], let st = pack["safetensors"] as? [String: Any],
              let header = st["header"] as? String, let body = st["data"] as? String
        else { throw Failure.bad("\(family): bf16.json") }
        let out = Scratch.root.appendingPathComponent("nibble-tiny-\(family)-bf16-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        for name in ["generation_config.json", "tokenizer.json", "tokenizer_config.json"]
        where FileManager.default.fileExists(atPath: source.appendingPathComponent(name).path) {
            try FileManager.default.copyItem(at: source.appendingPathComponent(name), to: out.appendingPathComponent(name))
        }
        let binaries = try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("binaries.json"))) as? [String: Any]
        if let text = binaries?["tokenizer.model"] as? String {
            try bytes(text).write(to: out.appendingPathComponent("tokenizer.model"))
        }
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
            .write(to: out.appendingPathComponent("config.json"))
        try safetensors(header: header, data: body).write(to: out.appendingPathComponent("model.safetensors"))
        madeBF16[family] = out
        return out
    }

    /// A safetensors file from its header (verbatim) and base64 data section.
    private static func safetensors(header: String, data body: String) throws -> Data {
        var file = Data()
        let headerBytes = Data(header.utf8)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(headerBytes)
        file.append(try bytes(body))
        return file
    }

    private static func bytes(_ base64: String) throws -> Data {
        guard let d = Data(base64Encoded: base64) else { throw Failure.bad("base64") }
        return d
    }

    /// A GGUF packed as data (`binaries.json`'s "gguf", `adapter.json`'s "gguf") as a writer.
    public static func gguf(_ g: [String: Any]) throws -> GGUFWriter {
        var writer = GGUFWriter(version: UInt32(g["version"] as? Int ?? 3), alignment: g["alignment"] as? Int ?? 32)
        for case let entry as [Any] in g["metadata"] as? [Any] ?? [] {
            guard entry.count >= 3, let key = entry[0] as? String, let type = entry[1] as? String else { throw Failure.bad("metadata") }
            if type == "array" {
                guard entry.count == 4, let item = entry[2] as? String, let values = entry[3] as? [Any],
                      let itemType = valueType(item) else { throw Failure.bad(key) }
                writer.add(key, .array(type: itemType, try values.map { try value(item, $0, key) }))
            } else {
                writer.add(key, try value(type, entry[2], key))
            }
        }
        for case let t as [Any] in g["tensors"] as? [Any] ?? [] {
            guard t.count == 4, let name = t[0] as? String, let typeName = t[1] as? String, let type = GGMLType(name: typeName),
                  let shape = t[2] as? [Int], let data = t[3] as? String else { throw Failure.bad("tensor") }
            writer.add(tensor: .init(name: name, type: type, shape: shape, data: [UInt8](try bytes(data))))
        }
        return writer
    }

    private static func valueType(_ name: String) -> GGUFValueType? {
        ["uint8": .uint8, "int8": .int8, "uint16": .uint16, "int16": .int16, "uint32": .uint32, "int32": .int32,
         "float32": .float32, "bool": .bool, "string": .string, "uint64": .uint64, "int64": .int64, "float64": .float64][name]
    }

    private static func value(_ type: String, _ v: Any, _ key: String) throws -> GGUFValue {
        let n = v as? NSNumber
        switch type {
        case "string": if let s = v as? String { return .string(s) }
        case "bool": if let n { return .bool(n.boolValue) }
        case "float32": if let n { return .float32(n.floatValue) }
        case "float64": if let n { return .float64(n.doubleValue) }
        case "uint8": if let n { return .uint8(n.uint8Value) }
        case "int8": if let n { return .int8(n.int8Value) }
        case "uint16": if let n { return .uint16(n.uint16Value) }
        case "int16": if let n { return .int16(n.int16Value) }
        case "uint32": if let n { return .uint32(n.uint32Value) }
        case "int32": if let n { return .int32(n.int32Value) }
        case "uint64": if let n { return .uint64(n.uint64Value) }
        case "int64": if let n { return .int64(n.int64Value) }
        default: break
        }
        throw Failure.bad("\(key): \(type) value")
    }
}
