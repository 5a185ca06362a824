import Foundation

/// Writes PEFT LoRA adapter folders (adapter_config.json + adapter_model.safetensors)
/// for tests, as `PeftModel.save_pretrained` lays them out.
public enum LoRAFixtures {
    /// One adapted module: `name` as the base model names it
    /// (`model.layers.0.self_attn.q_proj`), A (rank × inputs) and B (outputs × rank).
    public struct Module: Sendable {
        public var name: String
        public var inputs: Int
        public var outputs: Int
        public var rankOfA: Int
        public var a: [Float]
        public var b: [Float]

        public init(name: String, inputs: Int, outputs: Int, rankOfA: Int, a: [Float], b: [Float]) {
            self.name = name
            self.inputs = inputs
            self.outputs = outputs
            self.rankOfA = rankOfA
            self.a = a
            self.b = b
        }
    }

    /// Modules with seeded uniform values in ±`amplitude` (PEFT starts B at zero, which
    /// would test nothing).
    public static func randomModules(_ shapes: [(name: String, inputs: Int, outputs: Int)], rank: Int, amplitude: Float,
                                     seed: UInt64) -> [Module] {
        var state = 0x9E37_79B9_7F4A_7C15 &+ seed
        func random() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return (Float(state >> 40) / Float(1 << 24) - 0.5) * 2 * amplitude
        }
        return shapes.map { s in
            Module(name: s.name, inputs: s.inputs, outputs: s.outputs, rankOfA: rank,
                   a: (0..<rank * s.inputs).map { _ in random() }, b: (0..<s.outputs * rank).map { _ in random() })
        }
    }

    public static func writePEFT(_ modules: [Module], rank: Int, alpha: Double, rslora: Bool = false, fanInFanOut: Bool = false,
                                 extraConfig: [String: Any] = [:], to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var config: [String: Any] = [
            "peft_type": "LORA", "r": rank, "lora_alpha": alpha, "use_rslora": rslora, "bias": "none",
            "target_modules": Array(Set(modules.map { String($0.name.split(separator: ".").last!) })).sorted(),
            "fan_in_fan_out": fanInFanOut, "task_type": "CAUSAL_LM", "modules_to_save": NSNull(),
        ]
        config.merge(extraConfig) { $1 }
        try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]).write(to: folder.appendingPathComponent("adapter_config.json"))
        var tensors: [(String, [Int], [Float])] = []
        for m in modules {
            tensors.append(("base_model.model.\(m.name).lora_A.weight", [m.rankOfA, m.inputs], m.a))
            tensors.append(("base_model.model.\(m.name).lora_B.weight", [m.outputs, rank], m.b))
        }
        try writeSafetensors(tensors, to: folder.appendingPathComponent("adapter_model.safetensors"))
    }

    /// A safetensors file of F32 tensors (name, shape, values).
    public static func writeSafetensors(_ tensors: [(String, [Int], [Float])], to url: URL) throws {
        var header: [String: Any] = ["__metadata__": ["format": "pt"]]
        var body = Data()
        for (name, shape, values) in tensors {
            header[name] = ["dtype": "F32", "shape": shape, "data_offsets": [body.count, body.count + 4 * values.count]]
            values.withUnsafeBytes { body.append(contentsOf: $0) }
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var file = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(json)
        file.append(body)
        try file.write(to: url)
    }
}
