import ArgumentParser
import Foundation
import Inference
import ModelFiles
import Quantization

extension Nibble {
    struct Quantize: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the model (a GGUF or a Hugging Face folder) as a GGUF at f32, f16, bf16, q8 or q4 (GGML F32/F16/BF16/Q8_0/Q4_1), loadable by llama.cpp.")

        @OptionGroup var model: ModelFileOption
        @OptionGroup var precision: PrecisionOption
        @OptionGroup var threads: ThreadsOption
        @Option(help: "The GGUF file to write.") var output: String

        func run() throws {
            let path = try model.modelPath()
            try GGUFWriter.checkWritable(output)  // before minutes of work, not after
            let file = try ModelSources.open(path)
            let config = try ModelConfig(gguf: file)
            let plan = try Footprint.plan(precision.precision, file: file, config: config, context: 1, memoryLimit: .max)
            let format = plan.linear
            // GGML type and llama.cpp's general.file_type (LLAMA_FTYPE_*) per format.
            func ggml(_ f: WeightFormat) throws -> GGMLType {
                switch f {
                case .f32: return .f32
                case .f16: return .f16
                case .bf16: return .bf16
                case .q8: return .q8_0
                case .q4: return .q4_1
                case .nf4, .q2: throw CLIError("precision \(f.rawValue) has no GGML type; quantize writes f32, f16, bf16, q8 or q4")
                case .q4_0, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K: return GGMLType(rawValue: f.ggmlTypeNumber!)!  // native: the file's blocks
                }
            }
            let fileType: [WeightFormat: UInt32] = [.f32: 0, .f16: 1, .q4: 3, .q8: 7, .bf16: 32]
            let gguf = file as? GGUFFile
            var writer = GGUFWriter(version: 3, alignment: gguf?.alignment ?? 32)
            // A GGUF's keys in its order; a folder's (translated to GGUF keys) sorted, the
            // architecture first as converters write it.
            let keys = gguf?.metadataKeys ?? file.metadata.keys.sorted { ($0 == "general.architecture" ? 0 : 1, $0) < ($1 == "general.architecture" ? 0 : 1, $1) }
            for key in keys {
                let value = key == "general.file_type" ? GGUFValue.uint32(fileType[format] ?? 0) : file.metadata[key]!
                writer.add(key, value)
            }
            if file.metadata["general.file_type"] == nil { writer.add("general.file_type", .uint32(fileType[format] ?? 0)) }
            let pool = WorkerPool(threads: threads.threads ?? ProcessInfo.processInfo.activeProcessorCount)
            for t in file.tensors {
                guard t.type.canDequantize else {
                    throw CLIError("\(path): tensor '\(t.name)' has ggml type \(t.type.name), which Nibble cannot read yet")
                }
                let isMatrix = t.shape.count == 2 && t.shape[1] > 1
                if !isMatrix {
                    let values = try file.dequantize(t)
                    writer.add(tensor: .init(name: t.name, type: .f32, shape: t.shape, data: values.withUnsafeBytes { Array($0) }))
                    continue
                }
                let target = plan.format(ofTensor: t.name)
                let matrix: WeightMatrix
                do {
                    matrix = try plan.matrix(file: file, tensor: t, pool: pool)
                } catch let error as QuantizationError {
                    throw CLIError("\(path): \(error)")  // out of memory: name the model too
                }
                writer.add(tensor: .init(name: t.name, type: try ggml(target), shape: t.shape, data: Array(matrix.packedBytes)))
            }
            try writer.write(to: output)
            let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
            Terminal.writeError(String(format: "wrote %@ (%@, %.1f MiB)\n", output, format.rawValue, Double(size) / 1_048_576))
        }
    }
}
