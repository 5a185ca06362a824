import Foundation
import Testing
import ModelFiles
import TestFixtures
@testable import Inference

/// LoRA adapters against merging: an adapter with random A and B on every linear layer
/// of a tiny model must give the logits of the same model with s·B·A added to its
/// weights in the Hugging Face file (by this test, in Hugging Face's layout: Llama Q/K
/// rows unpermuted, GPT-2's Conv1D weights transposed), from the folder and from the
/// GGUF form of the base. Then: on/off/on in one engine equals fresh engines, a switch
/// of precision keeps the adapter, and adapters that do not fit are refused with the
/// module named while the previous adapter stays on.
@Suite struct LoRATests {
    static let families = FamilyReferenceTests.families

    @Test(arguments: families)
    func adapterEqualsMergedWeights(family: String) throws {
        let reference = try FamilyReferenceTests.reference(family)
        let tokens = try #require(reference["tokens"] as? [Int])
        let folder = try FamilyReferenceTests.folder(family)
        let work = try Self.temporaryFolder("lora-\(family)")
        defer { try? FileManager.default.removeItem(at: work) }
        let rslora = family == "qwen2"
        let adapter = try SyntheticAdapter(folder: folder, family: family, rank: 3, alpha: 6, rslora: rslora)
        let adapterPath = work.appendingPathComponent("adapter")
        try adapter.writePEFT(to: adapterPath)
        let merged = work.appendingPathComponent("merged")
        try adapter.writeMergedFolder(from: folder, to: merged)

        let expected = try Engine(path: merged.path, precision: .f32, threads: 2, context: 128).logitsAtEveryPosition(for: tokens)
        let base = try Engine(path: folder.path, precision: .f32, threads: 2, context: 128).logitsAtEveryPosition(for: tokens)
        let change = zip(base, expected).map { abs($0 - $1) }.max()!
        #expect(change > 0.05, "\(family): the adapter hardly changes the logits (\(change)), so this test would not see a wrong one")

        for path in [folder.path, try FamilyReferenceTests.gguf(family)] {
            let engine = try Engine(path: path, precision: .f32, threads: 2, context: 128, adapter: adapterPath.path)
            #expect(engine.adapter?.targets.count == adapter.modules.count, "\(family)")
            let logits = try engine.logitsAtEveryPosition(for: tokens)
            let worst = zip(logits, expected).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-4, "\(family) on \((path as NSString).lastPathComponent): max |Δlogit| vs merged = \(worst)")
        }
    }

    /// The tiny PEFT adapters of Tools/reference_adapters.py (random non-zero A and B on
    /// every projection; rsLoRA on qwen2, r 8 on mistral, fused QKV and gate/up on phi3,
    /// Conv1D on gpt2): transformers + peft's f32 logits at every position within 1e-4
    /// and its 16 greedy tokens, on the folder and on the GGUF form of the base; and the
    /// adapter as llama.cpp's convert_lora_to_gguf.py wrote it, with llama.cpp's scale
    /// (alpha / r: the converter drops use_rslora, so qwen2's GGUF gives the
    /// `gguf_semantics` logits, computed by transformers at that scale).
    @Test(arguments: families)
    func tinyAdaptersGivePEFTLogits(family: String) throws {
        let resources = try #require(Bundle.module.url(forResource: "Resources", withExtension: nil))
        let reference = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: TinyModels.sourceFolder(family, resources: resources)
            .appendingPathComponent("adapter.json"))) as? [String: Any])
        let prompt = try #require(reference["prompt_ids"] as? [Int])
        let rows = try #require(reference["logits"] as? [[Double]])
        let expected = rows.flatMap { $0.map(Float.init) }
        let greedyIDs = try #require(reference["greedy_ids"] as? [Int])
        let (peft, gguf) = try TinyModels.adapter(family, resources: resources)
        var greedy = SamplingParameters()
        greedy.temperature = 0

        func check(_ base: String, _ adapter: URL, logits expected: [Float], lastOnly: Bool, greedy ids: [Int]) throws {
            let what = "\(family): \(adapter.lastPathComponent) on \((base as NSString).lastPathComponent)"
            let engine = try Engine(path: base, precision: .f32, threads: 2, context: 128, adapter: adapter.path)
            var logits = try engine.logitsAtEveryPosition(for: prompt)
            if lastOnly { logits = Array(logits.suffix(expected.count)) }
            try #require(logits.count == expected.count, "\(what)")
            let worst = zip(logits, expected).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-4, "\(what): max |Δlogit| vs transformers + peft = \(worst)")
            let tokens = try engine.generate(prompt: prompt, maxTokens: 16, sampling: greedy, ignoreEndOfGeneration: true) { _ in }.tokens
            #expect(tokens == ids, "\(what)")
        }

        let folder = try FamilyReferenceTests.folder(family).path
        let ggufBase = try FamilyReferenceTests.gguf(family)
        for base in [folder, ggufBase] {
            try check(base, peft, logits: expected, lastOnly: false, greedy: greedyIDs)
        }
        if let gguf {
            let rslora = reference["use_rslora"] as? Bool ?? false
            let semantics = reference["gguf_semantics"] as? [String: Any]
            let logits = rslora ? try #require(semantics?["logits_last"] as? [Double]).map(Float.init) : expected
            let ids = rslora ? try #require(semantics?["greedy_ids"] as? [Int]) : greedyIDs
            for base in [folder, ggufBase] {
                try check(base, gguf, logits: logits, lastOnly: rslora, greedy: ids)
            }
        } else {
            // GPT-2: the converter's file has each Conv1D pair transposed and swapped, and
            // llama.cpp refuses it; so does Nibble, naming the module and both shapes.
            let written = try #require(reference["gguf_converter_output"] as? [String: Any])
            let url = Scratch.root.appendingPathComponent("nibble-\(family)-converter-lora-\(UUID().uuidString).gguf")
            defer { try? FileManager.default.removeItem(at: url) }
            try TinyModels.gguf(written).write(to: url.path)
            #expect {
                try Engine(path: ggufBase, precision: .f32, threads: 2, context: 128, adapter: url.path)
            } throws: { error in
                guard case let .adapterDoesNotFit(_, module, reason) = error as? EngineError else { return false }
                return module.hasPrefix("blk.") && reason.contains("×")
            }
        }
    }

    /// On, off and on again in one engine (and through a precision switch) gives, bit for
    /// bit, what fresh engines with and without the adapter give.
    @Test func onOffOnEqualsFreshEngines() throws {
        let family = "llama"
        let tokens = try #require(try FamilyReferenceTests.reference(family)["tokens"] as? [Int])
        let folder = try FamilyReferenceTests.folder(family)
        let work = try Self.temporaryFolder("lora-onoff")
        defer { try? FileManager.default.removeItem(at: work) }
        let adapterPath = work.appendingPathComponent("adapter").path
        try SyntheticAdapter(folder: folder, family: family, rank: 2, alpha: 4, rslora: false).writePEFT(to: URL(fileURLWithPath: adapterPath))
        let gguf = try FamilyReferenceTests.gguf(family)

        let freshOn = try Engine(path: gguf, precision: .f16, threads: 2, context: 128, adapter: adapterPath).logitsAtEveryPosition(for: tokens)
        let freshOff = try Engine(path: gguf, precision: .f16, threads: 2, context: 128).logitsAtEveryPosition(for: tokens)
        #expect(freshOn != freshOff)

        let engine = try Engine(path: gguf, precision: .f32, threads: 2, context: 128)
        try engine.setAdapter(adapterPath)
        _ = try engine.setPrecision(.f16)
        #expect(engine.adapter != nil)
        #expect(try engine.logitsAtEveryPosition(for: tokens) == freshOn)
        try engine.setAdapter(nil)
        #expect(try engine.logitsAtEveryPosition(for: tokens) == freshOff)
        try engine.setAdapter(adapterPath)
        #expect(try engine.logitsAtEveryPosition(for: tokens) == freshOn)

        // Generation with the cache: the adapter change drops cached keys and values.
        var greedy = SamplingParameters()
        greedy.temperature = 0
        let on = try engine.generate(prompt: tokens, maxTokens: 8, sampling: greedy, ignoreEndOfGeneration: true) { _ in }.tokens
        try engine.setAdapter(nil)
        let off = try engine.generate(prompt: tokens, maxTokens: 8, sampling: greedy, ignoreEndOfGeneration: true) { _ in }.tokens
        let freshOffTokens = try Engine(path: gguf, precision: .f16, threads: 2, context: 128)
            .generate(prompt: tokens, maxTokens: 8, sampling: greedy, ignoreEndOfGeneration: true) { _ in }.tokens
        #expect(off == freshOffTokens)
        let freshOnTokens = try Engine(path: gguf, precision: .f16, threads: 2, context: 128, adapter: adapterPath)
            .generate(prompt: tokens, maxTokens: 8, sampling: greedy, ignoreEndOfGeneration: true) { _ in }.tokens
        #expect(on == freshOnTokens)
    }

    /// Adapters that cannot be applied: one line naming the file, the module and what is
    /// wrong, and the adapter that was on stays on.
    @Test func badAdaptersAreRefusedAndThePreviousOneStays() throws {
        let family = "llama"
        let folder = try FamilyReferenceTests.folder(family)
        let work = try Self.temporaryFolder("lora-bad")
        defer { try? FileManager.default.removeItem(at: work) }
        let good = work.appendingPathComponent("good")
        let synthetic = try SyntheticAdapter(folder: folder, family: family, rank: 2, alpha: 4, rslora: false)
        try synthetic.writePEFT(to: good)
        let engine = try Engine(path: try FamilyReferenceTests.gguf(family), precision: .f32, threads: 2, context: 128, adapter: good.path)

        func refused(_ path: URL, _ fragments: [String], sourceLocation: SourceLocation = #_sourceLocation) {
            do {
                try engine.setAdapter(path.path)
                Issue.record("\(path.lastPathComponent) was accepted", sourceLocation: sourceLocation)
            } catch {
                let message = "\(error)"
                for fragment in fragments {
                    #expect(message.contains(fragment), "\(message) lacks \(fragment)", sourceLocation: sourceLocation)
                }
                #expect(!message.contains("\n"), sourceLocation: sourceLocation)
            }
            #expect(engine.adapter?.path == good.path, sourceLocation: sourceLocation)
        }

        // B has one row too many for q_proj: the model's shape and the adapter's, named.
        var wide = synthetic
        let q = "model.layers.0.self_attn.q_proj"
        let index = try #require(wide.modules.firstIndex { $0.name == q })
        wide.modules[index].outputs += 1
        wide.modules[index].b += [Float](repeating: 0.1, count: wide.rank)
        try wide.writePEFT(to: work.appendingPathComponent("wide"))
        let rows = wide.modules[index].outputs - 1, columns = wide.modules[index].inputs
        refused(work.appendingPathComponent("wide"), [q, "\(rows)×\(columns)", "\(rows + 1)×\(columns)", "wide"])

        // A's rank differs from B's.
        var ranks = synthetic
        ranks.modules[0].a += [Float](repeating: 0.1, count: ranks.modules[0].inputs)
        ranks.modules[0].rankOfA = ranks.rank + 1
        try ranks.writePEFT(to: work.appendingPathComponent("ranks"))
        refused(work.appendingPathComponent("ranks"), [ranks.modules[0].name, "ranks differ"])

        // A module the model does not have.
        var stranger = synthetic
        stranger.modules[0].name = "model.layers.7.self_attn.q_proj"
        try stranger.writePEFT(to: work.appendingPathComponent("stranger"))
        refused(work.appendingPathComponent("stranger"), ["model.layers.7.self_attn.q_proj"])

        // DoRA, and a pickled adapter.
        try synthetic.writePEFT(to: work.appendingPathComponent("dora"), extraConfig: ["use_dora": true])
        refused(work.appendingPathComponent("dora"), ["adapter_config.json", "use_dora"])
        let pickled = work.appendingPathComponent("pickled")
        try FileManager.default.createDirectory(at: pickled, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: good.appendingPathComponent("adapter_config.json"), to: pickled.appendingPathComponent("adapter_config.json"))
        try Data([0x80, 0x02]).write(to: pickled.appendingPathComponent("adapter_model.bin"))
        refused(pickled, ["adapter_model.bin", "pickle", "safetensors"])

        // A model file is not an adapter.
        refused(URL(fileURLWithPath: try FamilyReferenceTests.gguf(family)), ["general.type"])
        // Nor is an adapter of another family's modules (Phi-3's fused qkv_proj).
        let phi3 = try SyntheticAdapter(folder: try FamilyReferenceTests.folder("phi3"), family: "phi3", rank: 2, alpha: 4, rslora: false)
        try phi3.writePEFT(to: work.appendingPathComponent("phi3"))
        refused(work.appendingPathComponent("phi3"), ["phi3", "module base_model.model.model.layers.0."])
    }

    static func temporaryFolder(_ name: String) throws -> URL {
        let url = Scratch.root.appendingPathComponent("nibble-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// A PEFT LoRA adapter with seeded random A and B on every linear layer of a tiny
/// model's blocks, and the same change merged into the model's safetensors.
struct SyntheticAdapter {
    var modules: [LoRAFixtures.Module]
    let rank: Int
    let alpha: Double
    let rslora: Bool
    /// GPT-2's Conv1D stores its weights as inputs × outputs.
    let transposed: Bool
    var scale: Float { Float(rslora ? alpha / Double(rank).squareRoot() : alpha / Double(rank)) }

    init(folder: URL, family: String, rank: Int, alpha: Double, rslora: Bool) throws {
        self.rank = rank
        self.alpha = alpha
        self.rslora = rslora
        transposed = family == "gpt2"
        let (header, _) = try Self.readSafetensors(folder.appendingPathComponent("model.safetensors"))
        var shapes: [(name: String, inputs: Int, outputs: Int)] = []
        for (name, value) in header.sorted(by: { $0.key < $1.key }) where name.hasSuffix(".weight") {
            guard let entry = value as? [String: Any], let shape = entry["shape"] as? [Int], shape.count == 2,
                  name.contains(".layers.") || name.contains(".h.") else { continue }
            let (outputs, inputs) = transposed ? (shape[1], shape[0]) : (shape[0], shape[1])
            shapes.append((String(name.dropLast(".weight".count)), inputs, outputs))
        }
        modules = LoRAFixtures.randomModules(shapes, rank: rank, amplitude: 0.3, seed: UInt64(rank))
    }

    func writePEFT(to folder: URL, extraConfig: [String: Any] = [:]) throws {
        try LoRAFixtures.writePEFT(modules, rank: rank, alpha: alpha, rslora: rslora, fanInFanOut: transposed, extraConfig: extraConfig, to: folder)
    }

    /// `source`'s folder with W + s·B·A in its model.safetensors (in the file's layout).
    func writeMergedFolder(from source: URL, to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: source.path)
        where !name.hasSuffix(".gguf") && name != "model.safetensors" && name != "reference.json" {
            try FileManager.default.copyItem(at: source.appendingPathComponent(name), to: folder.appendingPathComponent(name))
        }
        let file = source.appendingPathComponent("model.safetensors")
        let (header, dataStart) = try Self.readSafetensors(file)
        var bytes = [UInt8](try Data(contentsOf: file))
        for m in modules {
            let entry = try #require(header[m.name + ".weight"] as? [String: Any])
            try #require(entry["dtype"] as? String == "F32")
            let offsets = try #require(entry["data_offsets"] as? [Int])
            let start = dataStart + offsets[0]
            bytes.withUnsafeMutableBytes { raw in
                let w = (raw.baseAddress! + start).assumingMemoryBound(to: Float.self)
                for o in 0..<m.outputs {
                    for i in 0..<m.inputs {
                        var delta: Float = 0
                        for r in 0..<rank { delta += m.b[o * rank + r] * m.a[r * m.inputs + i] }
                        w[transposed ? i * m.outputs + o : o * m.inputs + i] += scale * delta
                    }
                }
            }
        }
        try Data(bytes).write(to: folder.appendingPathComponent("model.safetensors"))
    }

    static func readSafetensors(_ url: URL) throws -> (header: [String: Any], dataStart: Int) {
        let data = try Data(contentsOf: url)
        let length = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try #require(try JSONSerialization.jsonObject(with: data.subdata(in: 8..<8 + length)) as? [String: Any])
        return (header, 8 + length)
    }
}
