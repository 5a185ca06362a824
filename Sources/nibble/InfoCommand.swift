import ArgumentParser
import Foundation
import Inference
import Quantization
import ModelFiles

extension Nibble {
    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Describe a model file and its memory footprint at every precision, without loading it.")

        @OptionGroup var model: ModelFileOption
        @Option(help: "Context length in tokens for the footprint (default: min(model context, 4096)).") var context: Int?
        @OptionGroup var memoryLimit: MemoryLimitOption
        @Flag(help: "Print one JSON object.") var json = false

        func validate() throws {
            if let context, context < 1 { throw ValidationError("--context must be at least 1") }
        }

        func run() throws {
            let path = try model.modelPath()
            let file = try ModelSources.open(path)
            // The bytes on disk: the GGUF file, or a folder's safetensors.
            let fileBytes = (file as? GGUFFile)?.fileBytes
                ?? (file as? HuggingFaceFolder)?.weights.files.reduce(0) { $0 + $1.file.bytes.count } ?? 0
            let config = try ModelConfig(gguf: file)
            let context = self.context ?? min(config.contextLength, 4096)
            let limit = try memoryLimit.bytes()
            var types: [String: Int] = [:]
            for t in file.tensors { types[t.type.name, default: 0] += 1 }
            let precisions = Footprint.all(file: file, config: config, context: context, memoryLimit: limit)
            let output = InfoOutput(
                file: path, fileBytes: fileBytes, architecture: config.architecture,
                parameters: file.tensors.reduce(0) { $0 + $1.elementCount },
                contextLength: config.contextLength, vocabSize: config.vocabSize,
                chatTemplate: file.string("tokenizer.chat_template") != nil,
                tensorTypes: types, precisions: precisions, kernels: KernelLevel.active, prefetch: PrefetchProfile.active)
            if json {
                try Terminal.writeJSON(output)
                return
            }
            func mib(_ b: Int) -> String { String(format: "%.1f MiB", Double(b) / 1048576) }
            func row(_ cells: [String]) -> String {
                zip(cells, [11, 13, 12, 12, 13, 6, 0]).map { $0.padding(toLength: max($1, $0.count), withPad: " ", startingAt: 0) }.joined()
            }
            var lines = [
                "file           \(path) (\(mib(fileBytes))" + (file is HuggingFaceFolder ? ", Hugging Face folder)" : ")"),
                "name           \(ModelName.display(forPath: path))" + (file.string("general.name").map { " (general.name: \($0))" } ?? ""),
                "architecture   \(config.architecture.printable()), \(config.layerCount) layers, width \(config.embeddingLength), FFN \(config.feedForwardLength)"
                    + (config.isSupported ? "" : " (Nibble cannot run it yet; supported: \(Engine.supportedArchitectures.joined(separator: ", ")))"),
                "attention      \(config.headCount) query / \(config.kvHeadCount) KV heads × \(config.headDim), RoPE θ \(config.ropeFreqBase)",
                "parameters     \(String(format: "%.1f M", Double(output.parameters) / 1e6))",
                "context        \(config.contextLength) tokens (trained); footprint below at \(context)",
                "vocabulary     \(config.vocabSize) tokens (\(file.string("tokenizer.ggml.model") ?? "?"), pre-tokenizer \(file.string("tokenizer.ggml.pre") ?? "default"))",
                "chat template  \(output.chatTemplate ? "yes" : "no")",
                "native         \(WeightPlan.native(file).summary) (how the file stores its linear weights)",
                "kernels        \(KernelLevel.active) (this CPU: \(KernelLevel.supported.joined(separator: ", ")); \(KernelLevel.variable) picks a lower one)",
                "prefetch       \(PrefetchProfile.active) (\(PrefetchProfile.cpuFamily.isEmpty ? "this CPU" : PrefetchProfile.cpuFamily): \(PrefetchProfile.detected); \(PrefetchProfile.variable)=\(PrefetchProfile.names.joined(separator: "|")) picks one)",
                "tensors        " + types.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", "),
                "",
                row(["precision", "weights", "linear", "KV cache", "total", "fits", "against the file (limit \(mib(limit)))"]),
            ]
            for p in precisions {
                lines.append(row([p.name, mib(p.weightBytes), mib(p.linearWeightBytes), mib(p.kvBytes),
                                  mib(p.totalBytes), p.fits ? "yes" : "no", p.versusFile?.phrase ?? ""]))
            }
            Terminal.write(Terminal.visible(lines.joined(separator: "\n")) + "\n")
        }
    }
}

/// The contract's `info --json` object.
struct InfoOutput: Encodable {
    var file: String
    var fileBytes: Int
    var architecture: String
    var parameters: Int
    var contextLength: Int
    var vocabSize: Int
    var chatTemplate: Bool
    var tensorTypes: [String: Int]
    var precisions: [Footprint]
    /// The kernels' instruction-set level ("avx2", …).
    var kernels: String
    /// How decode prefetches its weight rows ("nta", "l2", "hw").
    var prefetch: String

    enum CodingKeys: String, CodingKey {
        case file, fileBytes = "file_bytes", architecture, parameters, contextLength = "context_length"
        case vocabSize = "vocab_size", chatTemplate = "chat_template", tensorTypes = "tensor_types", precisions, kernels, prefetch
    }
}
