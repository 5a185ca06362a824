// swift-tools-version:6.0
import Foundation
import PackageDescription

// Numeric code is 10-100x slower unoptimised, so the release configuration carries
// its own flags: plain `swift build -c release` gives the fast binary. Bounds and
// overflow checks stay on everywhere (-O, not -Ounchecked): every module parses or
// indexes something a file decides, and the hot loops are C kernels or unsafe-pointer
// loops that have no bounds checks to remove (measured: `nibble bench` decode and
// prefill within noise of -Ounchecked, BENCHMARKS.md).
let fastSwift: [SwiftSetting] = [
    .unsafeFlags(["-wmo"], .when(configuration: .release)),
]
let fastC: [CSetting] = [
    .unsafeFlags(["-O3", "-fno-math-errno"], .when(configuration: .release)),
]

let package = Package(
    name: "Nibble",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "nibble", targets: ["nibble"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
    ],
    targets: [
        // SIMD kernels per weight format with runtime CPU dispatch and a scalar fallback.
        .target(name: "CKernels", cSettings: fastC),
        // GGUF reader (mmap'd, bounds-checked) and ggml type dequantisation (CKernels' dequantisers).
        .target(name: "ModelFiles", dependencies: ["CKernels"], swiftSettings: fastSwift),
        // Weight formats, matrices over them, and the worker pool.
        .target(name: "Quantization", dependencies: ["CKernels"], swiftSettings: fastSwift),
        // The JSON parser (ordered objects, ints and doubles apart) for tokenizer.json and templates.
        .target(name: "JSON", swiftSettings: fastSwift),
        // Byte-level BPE and SentencePiece tokenizers built from GGUF metadata.
        .target(name: "Tokenizers", dependencies: ["ModelFiles", "JSON"], swiftSettings: fastSwift),
        // Model configs, architectures, KV cache, sampler, engine.
        .target(name: "Inference", dependencies: ["ModelFiles", "Quantization", "Tokenizers"], swiftSettings: fastSwift),
        // Jinja interpreter for Hugging Face chat templates.
        .target(name: "Templates", dependencies: ["JSON"], swiftSettings: fastSwift),
        // Conversations (Codable, versioned), chat sessions, context policy, save/load/replay.
        .target(name: "Chat", dependencies: ["Inference", "Templates", "ModelFiles", "Quantization", "Tokenizers", "Remote"], swiftSettings: fastSwift),
        // One HTTP exchange on libcurl, loaded with dlopen only when a server is used (CHTTP.h).
        .target(name: "CHTTP", cSettings: fastC, linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]),
        // A client of OpenAI-compatible servers (llama-server, vLLM, Ollama): GET /v1/models and
        // streamed chat completions over CHTTP, with its own event-stream parser.
        .target(name: "Remote", dependencies: ["JSON", "CHTTP"], swiftSettings: fastSwift),
        // libedit's native API for the REPL's line editing (`make` installs libedit-dev).
        .systemLibrary(name: "CEditLine", pkgConfig: "libedit", providers: [.apt(["libedit-dev"])]),
        .executableTarget(
            name: "nibble",
            dependencies: ["Inference", "Templates", "Chat", "Remote", "CEditLine", "CKernels", "ModelFiles", "Quantization", "Tokenizers",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: fastSwift),

        .testTarget(name: "JSONTests", dependencies: ["JSON"]),
        .testTarget(name: "ModelFilesTests", dependencies: ["ModelFiles", "CKernels", "TestFixtures"], resources: [.copy("Resources")]),
        .testTarget(name: "QuantizationTests", dependencies: ["Quantization", "CKernels"], resources: [.copy("Resources")]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers", "ModelFiles", "TestFixtures"], resources: [.copy("Resources")]),
        // Writes the tiny reference models' GGUF and safetensors files from their JSON fixtures.
        .target(name: "TestFixtures", dependencies: ["ModelFiles", "Remote"], path: "Tests/TestFixtures"),
        .testTarget(name: "InferenceTests", dependencies: ["Inference", "ModelFiles", "Quantization", "Tokenizers", "TestFixtures"], resources: [.copy("Resources")]),
        .testTarget(name: "TemplatesTests", dependencies: ["Templates", "ModelFiles", "TestFixtures"], resources: [.copy("Resources")]),
        .testTarget(name: "ChatTests", dependencies: ["Chat", "Inference", "TestFixtures", "Remote"]),
        .testTarget(name: "EndToEndTests", dependencies: ["nibble", "ModelFiles", "TestFixtures", "Remote", "Chat", "JSON"]),
        // Against two real llama-server instances ($NIBBLE_LLAMA_SERVER, `make llama-server`) and a
        // fake server (Tools/remote_test_server.py); uses the built `nibble` for its q8 copy.
        .testTarget(name: "RemoteTests", dependencies: ["Remote", "JSON", "nibble", "TestFixtures"]),
    ],
    swiftLanguageModes: [.v5]
)

// libFuzzer targets (Fuzz/), only when NIBBLE_FUZZ is set: they have no `main` of their
// own (libFuzzer's is linked in by -sanitize=fuzzer), so a plain build must not see them.
// `make fuzz` and `make test` build them in .build-fuzz (Makefile).
if ProcessInfo.processInfo.environment["NIBBLE_FUZZ"] != nil {
    let fuzzers: [(String, [Target.Dependency])] = [
        ("FuzzGGUF", ["ModelFiles", "Tokenizers", "Inference"]),
        ("FuzzConversation", ["Chat"]),
        ("FuzzTokenizer", ["Tokenizers", "ModelFiles"]),
        ("FuzzTemplate", ["Templates"]),
    ]
    for (name, dependencies) in fuzzers {
        package.targets.append(.executableTarget(name: name, dependencies: dependencies, path: "Fuzz/\(name)",
                                                 swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
    }
}
