// Qwen 2 / 2.5 (architecture "qwen2": Q, K and V biases) and Qwen 3 ("qwen3": per-head
// RMSNorm of Q and K before RoPE, no biases): Llama's decoder with GPT-NeoX-style RoPE
// (rotate_half on the original rows: llama.cpp's LLAMA_ROPE_TYPE_NEOX, the converter
// does not permute Q/K). The biases are read by `QKVProjection` whenever a file has them.
// Ports of transformers' modeling_qwen2.py / modeling_qwen3.py, read as llama.cpp's
// models/qwen2.cpp and models/qwen3.cpp read the GGUF.

final class Qwen2Model: LlamaModel, @unchecked Sendable {
    override class func rotaryEmbedding(_ l: WeightLoader, config c: ModelConfig) throws -> RotaryEmbedding {
        RotaryEmbedding(layout: .halves, dimensions: c.ropeDimensionCount, base: c.ropeFreqBase, linearScale: c.ropeLinearScale,
                        maxBatch: Engine.prefillChunk)
    }
}

final class Qwen3Model: LlamaModel, @unchecked Sendable {
    override class var queryKeyNorms: Bool { true }

    override class func rotaryEmbedding(_ l: WeightLoader, config c: ModelConfig) throws -> RotaryEmbedding {
        RotaryEmbedding(layout: .halves, dimensions: c.ropeDimensionCount, base: c.ropeFreqBase, linearScale: c.ropeLinearScale,
                        maxBatch: Engine.prefillChunk)
    }
}
