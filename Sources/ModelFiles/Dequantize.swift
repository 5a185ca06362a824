// Dequantisation of ggml blocks to f32.
//
// One implementation, in C (CKernels: dequant.c, ported from ggml's `dequantize_row_*` in
// ggml/src/ggml-quants.c, and the weight-format table in formats.c), shared with the
// engine's embedding lookup; checked bit for bit against gguf-py's
// `gguf.quants.dequantize` (Tests/ModelFilesTests, fixtures from Tools/reference_dequant.py).
// The C code never fuses `d * q + m` into an FMA: the references round twice.
import CKernels

extension GGMLType {
    /// Whether `dequantize(_:count:into:)` handles this type: F32, F16, BF16, Q4_0, Q4_1,
    /// Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS.
    public var canDequantize: Bool { nb_ggml_can_dequantize(rawValue) != 0 }

    /// Converts `count` elements (a whole number of blocks) starting at `source` to f32.
    /// - Precondition: `canDequantize` and `count % blockSize == 0`.
    public func dequantize(_ source: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(canDequantize && count % blockSize == 0)
        let done = nb_ggml_dequantize(rawValue, source, Int64(count), out)
        precondition(done != 0, "no dequantiser for \(name)")
    }
}
