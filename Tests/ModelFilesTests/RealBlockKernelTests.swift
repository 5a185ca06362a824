import CKernels
import Foundation
import ModelFiles
import Testing

/// The native kernels on real blocks: every quantized matrix of Gemma 3 270M Q4_K_M (Q4_K,
/// Q6_K, Q5_0, Q8_0; its first 96 rows) at every SIMD level the CPU has gives the scalar
/// path's bits, for activations at ordinary and Gemma-sized scales with zero blocks and
/// outliers. (The random blocks of Tests/QuantizationTests do not cover what a real
/// quantizer writes.) Serialized, as the KernelPaths suites, to keep the machine's load down.
@Suite(.serialized) struct RealBlockKernelTests {
    static let formats: [GGMLType: nb_format] = [.q4_K: NB_FMT_Q4_K, .q6_K: NB_FMT_Q6_K, .q5_0: NB_FMT_Q5_0, .q8_0: NB_FMT_Q8]
    static let levels = [NB_ISA_AVX2, NB_ISA_AVXVNNI, NB_ISA_AVX512, NB_ISA_NEON].filter { nb_isa_supported($0) != 0 }

    /// Activations in [-scale, scale], every 97th 3e4, every third 256-block zero.
    static func activations(tokens: Int, k: Int, scale: Float) -> [Float] {
        var state: UInt64 = 12345
        return (0..<tokens * k).map { i in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            if (i / 256) % 3 == 1 { return 0 }
            if i % 97 == 0 { return 3e4 }
            return scale * (Float(Int64(bitPattern: state >> 11) % 2000) / 1000 - 1)
        }
    }

    @Test func gemmaBlocksAtEveryLevelEqualScalar() throws {
        let path = modelPath("NIBBLE_GEMMA", "gemma-3-270m-q4_k_m.gguf")
        try #require(FileManager.default.fileExists(atPath: path), "model missing at \(path): run `make test`, which installs it")
        let file = try GGUFFile(path: path)
        var checked = Set<GGMLType>()
        for tensor in file.tensors {
            guard let fmt = Self.formats[tensor.type], tensor.shape.count == 2 else { continue }
            let k = tensor.shape[0], rows = min(tensor.shape[1], 96)
            let weights = file.data(of: tensor).baseAddress!
            let kind = nb_format_get(fmt).pointee.activation
            for tokens in [1, 5, 70] {
                for scale: Float in [1, 300, 1e5] {
                    let x = Self.activations(tokens: tokens, k: k, scale: scale)
                    func run(_ isa: nb_isa) -> (xq: [UInt8], y: [Float]) {
                        let previous = nb_force_isa(isa)
                        defer { _ = nb_force_isa(previous) }
                        var xq = [UInt8](repeating: 0, count: Int(nb_activation_bytes(kind, Int64(tokens), Int64(k))))
                        nb_quantize_for(kind, x, Int64(tokens), Int64(k), &xq)
                        var y = [Float](repeating: 0, count: tokens * rows)
                        nb_matmul(fmt, weights, Int64(tensor.shape[1]), Int64(k), x, xq, &y, Int64(tokens), Int64(rows), 0, Int64(rows))
                        return (xq, y)
                    }
                    let scalar = run(NB_ISA_SCALAR)
                    for level in Self.levels {
                        let simd = run(level)
                        let label = "\(tensor.name) (\(tensor.type.name), k \(k)) tokens \(tokens) scale \(scale), \(String(cString: nb_isa_name(level)))"
                        #expect(simd.xq == scalar.xq, "\(label): activations")
                        #expect(simd.y.map(\.bitPattern) == scalar.y.map(\.bitPattern), "\(label)")
                    }
                }
            }
            checked.insert(tensor.type)
        }
        #expect(checked == Set(Self.formats.keys), "the file's quantized types: \(checked)")
    }
}
