import CKernels
import Foundation
import Testing

// Shared helpers for the weight-format tests: deterministic data, Swift wrappers of the
// C API, and the fixture loader.

/// SplitMix64: deterministic test data.
struct TestRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    /// Standard normal (Box-Muller).
    mutating func gaussian() -> Float {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }
}

/// rows × k normal values, row r scaled by `scale(r)`.
func gaussianMatrix(rows: Int, k: Int, seed: UInt64, scale: (Int) -> Float = { _ in 1 }) -> [Float] {
    var rng = TestRNG(seed: seed)
    var out = [Float](repeating: 0, count: rows * k)
    for r in 0..<rows {
        let s = scale(r)
        for i in 0..<k { out[r * k + i] = rng.gaussian() * s }
    }
    return out
}

/// llama.cpp's test-quantize-fns data: 0.1 + 2 cos(i + offset).
func syntheticData(count: Int, offset: Float) -> [Float] {
    (0..<count).map { 0.1 + 2 * Foundation.cos(Float($0) + offset) }
}

/// The formats nb_pack makes from f32 (the concrete precisions).
let allFormats: [nb_format] = [NB_FMT_F32, NB_FMT_F16, NB_FMT_BF16, NB_FMT_Q8, NB_FMT_Q4, NB_FMT_NF4, NB_FMT_Q2]
let quantizedFormats: [nb_format] = [NB_FMT_Q8, NB_FMT_Q4, NB_FMT_NF4, NB_FMT_Q2]
/// The formats that keep GGML's blocks (no packer; tests fill them with random blocks).
let nativeFormats: [nb_format] = [NB_FMT_Q4_0, NB_FMT_Q5_0, NB_FMT_Q5_1, NB_FMT_Q4_K, NB_FMT_Q5_K, NB_FMT_Q6_K]

func formatName(_ fmt: nb_format) -> String {
    nb_format_get(fmt).map { String(cString: $0.pointee.name) } ?? "format \(fmt.rawValue)"
}

func pack(_ fmt: nb_format, _ w: [Float], rows: Int, k: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0xA5, count: nb_format_bytes(fmt, Int64(rows), Int64(k)))
    w.withUnsafeBufferPointer { src in
        bytes.withUnsafeMutableBytes { dst in nb_pack(fmt, src.baseAddress, Int64(rows), Int64(k), dst.baseAddress) }
    }
    return bytes
}

/// nf4 with an explicit scaling, on a pool of `threads` threads (1: no pool).
func packNF4(_ w: [Float], rows: Int, k: Int, scaling: nb_nf4_scaling, threads: Int = 1) -> [UInt8] {
    var bytes = [UInt8](repeating: 0xA5, count: nb_format_bytes(NB_FMT_NF4, Int64(rows), Int64(k)))
    let pool = threads > 1 ? nb_pool_create(Int32(threads)) : nil
    defer { if let pool { nb_pool_destroy(pool) } }
    w.withUnsafeBufferPointer { src in
        bytes.withUnsafeMutableBytes { dst in nb_pack_nf4(src.baseAddress, Int64(rows), Int64(k), scaling, pool, dst.baseAddress) }
    }
    return bytes
}

/// The decoded absmax of each 64-block of a packed nf4 matrix: every code set to 15
/// (value 1.0) and unpacked, so each element reads 1.0 · absmax exactly.
func nf4BlockAbsmax(_ packed: [UInt8], rows: Int, k: Int) -> [Float] {
    var ones = packed
    for i in 0..<rows * k / 2 { ones[i] = 0xFF }
    let values = unpack(NB_FMT_NF4, ones, rows: rows, k: k)
    return stride(from: 0, to: rows * k, by: 64).map { values[$0] }
}

func unpack(_ fmt: nb_format, _ bytes: [UInt8], rows: Int, k: Int) -> [Float] {
    var out = [Float](repeating: .nan, count: rows * k)
    bytes.withUnsafeBytes { w in
        out.withUnsafeMutableBufferPointer { o in
            for r in 0..<rows {
                nb_unpack_row(fmt, w.baseAddress, Int64(rows), Int64(k), Int64(r), o.baseAddress! + r * k)
            }
        }
    }
    return out
}

func quantizeActivations(_ x: [Float], tokens: Int, k: Int) -> [nb_q8a] {
    var out = [nb_q8a](repeating: nb_q8a(), count: tokens * (k / 32))
    x.withUnsafeBufferPointer { xs in
        out.withUnsafeMutableBufferPointer { nb_quantize_activations(xs.baseAddress, Int64(tokens), Int64(k), $0.baseAddress) }
    }
    return out
}

/// Y (tokens × ldY, pre-filled with a sentinel) after nb_matmul over `rowRange`.
func matmul(_ fmt: nb_format, _ w: [UInt8], rows: Int, k: Int, x: [Float], xq: [nb_q8a], tokens: Int,
            ldY: Int, rowRange: Range<Int>) -> [Float] {
    var y = [Float](repeating: matmulSentinel, count: tokens * ldY)
    w.withUnsafeBytes { wb in
        x.withUnsafeBufferPointer { xs in
            xq.withUnsafeBufferPointer { xqs in
                y.withUnsafeMutableBufferPointer { ys in
                    nb_matmul(fmt, wb.baseAddress, Int64(rows), Int64(k), xs.baseAddress, xqs.baseAddress, ys.baseAddress,
                              Int64(tokens), Int64(ldY), Int64(rowRange.lowerBound), Int64(rowRange.upperBound))
                }
            }
        }
    }
    return y
}

let matmulSentinel: Float = -12345.5

/// Every SIMD level this CPU can run (AVX2, AVX-VNNI and AVX-512 on a Zen 5): kernel tests
/// compare each with the scalar path, so no path goes untested on a machine that has it.
let simdLevels: [nb_isa] = [NB_ISA_AVX2, NB_ISA_AVXVNNI, NB_ISA_AVX512, NB_ISA_NEON].filter { nb_isa_supported($0) != 0 }
/// The scalar path and every SIMD level.
let allLevels: [nb_isa] = [NB_ISA_SCALAR] + simdLevels

/// Runs `body` with vdpbf16ps allowed or not (on a CPU with AVX512-BF16 the AVX-512 bf16
/// kernels without it run only so), then restores.
func withBFloat16DotProducts<T>(_ allowed: Bool, _ body: () throws -> T) rethrows -> T {
    let previous = nb_bf16_dot_products(allowed ? 1 : 0)
    defer { _ = nb_bf16_dot_products(previous) }
    return try body()
}

/// The AVX-512 bf16 kernels without vdpbf16ps (a no-op where AVX-512 is missing: `body` is
/// then not run).
func withoutBFloat16DotProducts(_ body: () -> Void) {
    guard nb_isa_supported(NB_ISA_AVX512) != 0 else { return }
    withBFloat16DotProducts(false, body)
}

/// `x` rounded to bf16 (to nearest even) and back: the activations bf16 weights multiply.
func roundedToBFloat16(_ x: Float) -> Float {
    let bits = x.bitPattern
    guard !x.isNaN else { return x }
    return Float(bitPattern: ((bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16) << 16)
}

/// Runs `body` with the kernels dispatched to `isa` (if the CPU has it), then restores.
func withISA<T>(_ isa: nb_isa, _ body: () throws -> T) rethrows -> T {
    let previous = nb_force_isa(isa)
    defer { _ = nb_force_isa(previous) }
    return try body()
}

/// The value an activation block stands for: d · q.
func dequantizedActivation(_ xq: [nb_q8a], tokens: Int, k: Int) -> [Float] {
    var out = [Float](repeating: 0, count: tokens * k)
    for (b, block) in xq.enumerated() {
        withUnsafeBytes(of: block.qs) { qs in
            for j in 0..<32 { out[b * 32 + j] = block.d * Float(Int8(bitPattern: qs[j])) }
        }
    }
    return out
}

func qsArray(_ block: nb_q8a) -> [Int8] {
    withUnsafeBytes(of: block.qs) { Array($0.bindMemory(to: Int8.self)) }
}

func rmse(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count)
    var sum = 0.0
    for i in a.indices { let d = Double(a[i]) - Double(b[i]); sum += d * d }
    return (sum / Double(a.count)).squareRoot()
}

// ---- fixtures ------------------------------------------------------------------------------

/// A JSON fixture in Tests/QuantizationTests/Resources, found next to this source file
/// (works with or without the target declaring the folder as a resource).
func quantFixture(_ name: String) throws -> [String: Any] {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Resources").appendingPathComponent(name)
    let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url))
    guard let dictionary = object as? [String: Any] else { throw FixtureError.malformed(name) }
    return dictionary
}

enum FixtureError: Error { case malformed(String) }

func base64Bytes(_ value: Any?) throws -> [UInt8] {
    guard let text = value as? String, let data = Data(base64Encoded: text) else { throw FixtureError.malformed("base64") }
    return [UInt8](data)
}

func base64Floats(_ value: Any?) throws -> [Float] {
    let bytes = try base64Bytes(value)
    return bytes.withUnsafeBytes { raw in
        (0..<bytes.count / 4).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
    }
}

func isaName(_ isa: nb_isa) -> String { String(cString: nb_isa_name(isa)) }

/// The suites that switch the kernels' dispatch, run one test at a time. nb_force_isa sets
/// the level of the calling thread only (withISA's body runs the kernels on it), so other
/// tests' models keep the machine's level: a process-wide switch once made a greedy replay
/// at the same precision diverge from its recording when a kernel test forced the scalar
/// level mid-reply.
@Suite(.serialized) enum KernelPaths {}

/// The formats with an interleaved layout (nb_interleave).
let interleavedFormats: [nb_format] = [NB_FMT_Q8, NB_FMT_Q4, NB_FMT_Q4_0, NB_FMT_Q5_0, NB_FMT_Q5_1, NB_FMT_Q2, NB_FMT_NF4,
                                        NB_FMT_Q4_K, NB_FMT_Q5_K, NB_FMT_Q6_K]

/// `blocks` (rows × k in `fmt`'s GGML blocks) interleaved, written in the row pieces given (in
/// that order) into a buffer first filled with `fill`. (nf4: `blocks` is the whole matrix for
/// every piece.)
func interleave(_ fmt: nb_format, _ blocks: [UInt8], rows: Int, k: Int, pieces: [Range<Int>]? = nil, fill: UInt8 = 0xA5) -> [UInt8] {
    var out = [UInt8](repeating: fill, count: nb_interleaved_bytes(fmt, Int64(rows), Int64(k)))
    let rowBytes = nb_format_bytes(fmt, 1, Int64(k))
    blocks.withUnsafeBytes { src in
        out.withUnsafeMutableBytes { dst in
            for piece in pieces ?? [0..<rows] {
                let at = fmt == NB_FMT_NF4 ? 0 : piece.lowerBound * rowBytes
                nb_interleave(fmt, Int64(rows), Int64(k), src.baseAddress! + at, Int64(piece.lowerBound), Int64(piece.count), dst.baseAddress)
            }
        }
    }
    return out
}

/// Rows `range` of an interleaved matrix as GGML blocks (nf4: in a whole matrix of zeros).
func deinterleave(_ fmt: nb_format, _ il: [UInt8], rows: Int, k: Int, range: Range<Int>) -> [UInt8] {
    let count = fmt == NB_FMT_NF4 ? nb_format_bytes(fmt, Int64(rows), Int64(k)) : range.count * nb_format_bytes(fmt, 1, Int64(k))
    var out = [UInt8](repeating: 0, count: count)
    il.withUnsafeBytes { src in
        out.withUnsafeMutableBytes { nb_deinterleave(fmt, Int64(rows), Int64(k), src.baseAddress, Int64(range.lowerBound), Int64(range.count), $0.baseAddress) }
    }
    return out
}

/// Y (tokens × ldY, pre-filled with the sentinel) after nb_matmul_interleaved over `rowRange`.
func matmulInterleaved(_ fmt: nb_format, _ il: [UInt8], rows: Int, k: Int, xq: [UInt8], tokens: Int, ldY: Int,
                       rowRange: Range<Int>) -> [Float] {
    var y = [Float](repeating: matmulSentinel, count: tokens * ldY)
    il.withUnsafeBytes { wb in
        xq.withUnsafeBytes { xqb in
            y.withUnsafeMutableBufferPointer { ys in
                nb_matmul_interleaved(fmt, wb.baseAddress, Int64(rows), Int64(k), xqb.baseAddress, ys.baseAddress, Int64(tokens),
                                      Int64(ldY), Int64(rowRange.lowerBound), Int64(rowRange.upperBound))
            }
        }
    }
    return y
}

/// softmax(scale · q_h·K)·V in double precision for each of `heads` query heads (q_h at
/// q[h · headDim...]) over `positions` keys and values (row j at j · stride).
func doubleSoftmaxAttention(q: [Float], keys: [Float], values: [Float], heads: Int, headDim: Int, positions: Int, stride: Int,
                            scale: Float) -> [Double] {
    var out: [Double] = []
    for h in 0..<heads {
        var scores = (0..<positions).map { j in
            (0..<headDim).reduce(0.0) { $0 + Double(q[h * headDim + $1]) * Double(keys[j * stride + $1]) } * Double(scale)
        }
        let top = scores.max()!
        scores = scores.map { Foundation.exp($0 - top) }
        let total = scores.reduce(0, +)
        out += (0..<headDim).map { d in (0..<positions).reduce(0.0) { $0 + scores[$1] * Double(values[$1 * stride + d]) } / total }
    }
    return out
}
