import Testing
@testable import Inference

@Suite struct ModelNameTests {
    @Test(arguments: [
        ("/m/SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct"),
        ("Qwen3-4B-Q4_K_M.gguf", "Qwen3-4B"),
        ("gemma-3-4b-it-Q4_K_M.gguf", "gemma-3-4b-it"),
        ("gemma-3-270m-q4_k_m.gguf", "gemma-3-270m"),
        ("Meta-Llama-3.1-8B-Instruct-IQ4_XS.gguf", "Meta-Llama-3.1-8B-Instruct"),
        ("Mistral-7B-Instruct-v0.3.f16.gguf", "Mistral-7B-Instruct-v0.3"),
        ("phi-3-mini-4k-instruct-bf16.gguf", "phi-3-mini-4k-instruct"),
        ("tinyllama-1.1b-chat-v1.0.Q8_0.gguf", "tinyllama-1.1b-chat-v1.0"),
        ("Qwen2.5-0.5B-Instruct-GGUF", "Qwen2.5-0.5B-Instruct"),
        ("/models/SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct"),
        ("model.gguf", "model"),
        ("Q4_0.gguf", "Q4_0"),
    ])
    func namesAsPeopleKnowThem(path: String, name: String) {
        #expect(ModelName.display(forPath: path) == name)
    }
}
