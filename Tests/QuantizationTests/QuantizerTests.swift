import CKernels
import Foundation
import Testing

// ---- Swift transliterations of GGML's reference quantisers (ggml-quants.c) ----------------

/// quantize_row_q8_0_ref: d = amax/127 (f16), q = roundf(x · (1/d)).
func ggmlQ8_0(_ x: [Float]) -> [UInt8] {
    var out: [UInt8] = []
    for b in stride(from: 0, to: x.count, by: 32) {
        let block = x[b..<b + 32]
        var amax: Float = 0
        for v in block { amax = max(amax, abs(v)) }
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        let h = Float16(d).bitPattern
        out += [UInt8(h & 0xFF), UInt8(h >> 8)]
        for v in block { out.append(UInt8(bitPattern: Int8((v * id).rounded()))) }
    }
    return out
}

/// quantize_row_q4_1_ref: d = (max-min)/15, m = min (both f16), q = min(15, (int8)((x-min)/d + 0.5)).
func ggmlQ4_1(_ x: [Float]) -> [UInt8] {
    var out: [UInt8] = []
    for b in stride(from: 0, to: x.count, by: 32) {
        let block = Array(x[b..<b + 32])
        var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
        for v in block { if v < lo { lo = v }; if v > hi { hi = v } }
        let d = (hi - lo) / 15
        let id: Float = d != 0 ? 1 / d : 0
        let hd = Float16(d).bitPattern, hm = Float16(lo).bitPattern
        out += [UInt8(hd & 0xFF), UInt8(hd >> 8), UInt8(hm & 0xFF), UInt8(hm >> 8)]
        for j in 0..<16 {
            let q0 = min(15, Int8((block[j] - lo) * id + 0.5)), q1 = min(15, Int8((block[j + 16] - lo) * id + 0.5))
            out.append(UInt8(q0) | UInt8(q1) << 4)
        }
    }
    return out
}

/// The plain 2-bit quantiser the q2 search starts from: d = (max-min)/3, m = min (f16),
/// q = clamp(round((x-m)/d)); returns the squared error per 64-group.
func naiveQ2GroupErrors(_ x: [Float]) -> [Double] {
    stride(from: 0, to: x.count, by: 64).map { g in
        let group = x[g..<g + 64]
        let lo = group.min()!, hi = group.max()!
        let d = Float(Float16((hi - lo) / 3)), m = Float(Float16(lo))
        let id: Float = d > 0 ? 1 / d : 0
        var err = 0.0
        for v in group {
            let q = Float(Int(min(max((v - m) * id, 0), 3) + 0.5))
            let e = Double(d * q + m - v)
            err += e * e
        }
        return err
    }
}

@Suite struct QuantizerTests {
    /// RMSE of pack → unpack on llama.cpp's synthetic data (test-quantize-fns.cpp), with
    /// llama.cpp's own metric (sqrt(Σ err²)/n, threshold 0.002 for ≥ 4 bits, 0.0075 for 2)
    /// and the plain RMSE. Measured: f16 0.00028, bf16 0.0023, q8 0.0048, q4 0.073,
    /// nf4 0.137, q2 0.288 (plain min/max would give 0.346).
    @Test(arguments: [Float(0), 1.5])
    func roundTripOnSyntheticData(offset: Float) {
        let rows = 4, k = 1024
        let x = syntheticData(count: rows * k, offset: offset)
        let bounds: [(nb_format, rmse: Double, ggml: Double)] = [
            (NB_FMT_F32, 0, 0), (NB_FMT_F16, 0.0003, 0.00001), (NB_FMT_BF16, 0.0025, 0.00004),
            (NB_FMT_Q8, 0.0052, 0.002), (NB_FMT_Q4, 0.078, 0.002), (NB_FMT_NF4, 0.145, 0.0025), (NB_FMT_Q2, 0.30, 0.0075),
        ]
        for (f, rmseBound, ggmlBound) in bounds {
            let y = unpack(f, pack(f, x, rows: rows, k: k), rows: rows, k: k)
            let e = rmse(x, y)
            let ggmlMetric = e * Double(x.count).squareRoot() / Double(x.count)
            #expect(e <= rmseBound, "\(formatName(f)): rmse \(e)")
            #expect(ggmlMetric <= ggmlBound, "\(formatName(f)): ggml total error \(ggmlMetric)")
        }
    }

    /// Normal data: RMSE relative to σ. Measured q8 0.0053, q4 0.078, nf4 0.092, q2 0.324.
    @Test func roundTripOnNormalData() {
        let rows = 64, k = 1024
        let x = gaussianMatrix(rows: rows, k: k, seed: 3)
        for (f, bound) in [(NB_FMT_Q8, 0.006), (NB_FMT_Q4, 0.085), (NB_FMT_NF4, 0.098), (NB_FMT_Q2, 0.335)] {
            let e = rmse(x, unpack(f, pack(f, x, rows: rows, k: k), rows: rows, k: k))
            #expect(e <= bound, "\(formatName(f)): rmse/σ \(e)")
        }
    }

    @Test func q8AndQ4EqualTheGGMLReferenceOnRandomData() {
        let rows = 12, k = 576
        // Row scales from 1e-6 (f16-subnormal scales) to 1e4 (near the f16 range).
        let x = gaussianMatrix(rows: rows, k: k, seed: 5) { Float(pow(10.0, Double($0) * 10 / 11 - 6)) }
        #expect(pack(NB_FMT_Q8, x, rows: rows, k: k) == ggmlQ8_0(x))
        #expect(pack(NB_FMT_Q4, x, rows: rows, k: k) == ggmlQ4_1(x))
    }

    /// Bytes from gguf-py's quantize (Tools/reference_quants.py), the numpy twin of ggml's
    /// reference quantisers: synthetic data, normal data and edge blocks (zeros, constants,
    /// exact .5 ties, f16 limits and subnormals, an outlier).
    @Test func q8AndQ4EqualGGUFBytes() throws {
        let fixture = try quantFixture("reference-quants.json")
        let cases = try #require(fixture["ggml"] as? [[String: Any]])
        #expect(cases.count >= 4)
        for c in cases {
            let name = c["name"] as? String ?? "?"
            let rows = try #require(c["rows"] as? Int), k = try #require(c["k"] as? Int)
            let x = try base64Floats(c["input_f32"])
            #expect(x.count == rows * k)
            #expect(pack(NB_FMT_Q8, x, rows: rows, k: k) == (try base64Bytes(c["q8_0"])), "\(name) q8_0")
            #expect(pack(NB_FMT_Q4, x, rows: rows, k: k) == (try base64Bytes(c["q4_1"])), "\(name) q4_1")
            #expect(ggmlQ8_0(x) == (try base64Bytes(c["q8_0"])), "\(name): Swift transliteration of q8_0")
            #expect(ggmlQ4_1(x) == (try base64Bytes(c["q4_1"])), "\(name): Swift transliteration of q4_1")
        }
    }

    /// nf4 against bitsandbytes 0.50.2 (quantize_4bit, blocksize 64, compress_statistics):
    /// same 4-bit codes, same absmax codes, scales and offset, same dequantised values. The
    /// documented freedoms (offset to the last bit, an absmax code ±1 where bitsandbytes'
    /// approximate search misses the nearest entry) are allowed; the fixture has neither.
    @Test func nf4EqualsBitsandbytes() throws {
        let fixture = try #require(try quantFixture("reference-quants.json")["nf4"] as? [String: Any])
        let rows = try #require(fixture["rows"] as? Int), k = try #require(fixture["k"] as? Int)
        let x = try base64Floats(fixture["input_f32"])
        let packed = pack(NB_FMT_NF4, x, rows: rows, k: k)
        let blocks = rows * k / 64

        // Codes: ours are per 64-block [j | j+16 << 4] (j < 16), then [32+j | 48+j << 4];
        // bitsandbytes' are element 2i in the high nibble, 2i+1 in the low one.
        let bnbPacked = try base64Bytes(fixture["codes_bnb_packed"])
        var theirs = [UInt8](), ours = [UInt8]()
        for byte in bnbPacked { theirs += [byte >> 4, byte & 0x0F] }
        for b in 0..<blocks {
            var codes = [UInt8](repeating: 0, count: 64)
            for j in 0..<16 {
                let lo = packed[b * 32 + j], hi = packed[b * 32 + 16 + j]
                codes[j] = lo & 0x0F; codes[j + 16] = lo >> 4; codes[j + 32] = hi & 0x0F; codes[j + 48] = hi >> 4
            }
            ours += codes
        }
        #expect(ours == theirs)

        let absmaxCodes = Array(packed[rows * k / 2..<rows * k / 2 + blocks])
        let theirCodes = try base64Bytes(fixture["absmax_codes"])
        let differing = zip(absmaxCodes, theirCodes).filter { $0 != $1 }
        #expect(differing.allSatisfy { abs(Int($0) - Int($1)) == 1 } && differing.count * 100 <= blocks,
                "absmax codes differ in \(differing.count) of \(blocks) blocks")

        let scalesAt = (rows * k / 2 + blocks + 3) & ~3, scaleBlocks = (blocks + 255) / 256
        let floats: (Int, Int) -> [Float] = { offset, count in
            packed.withUnsafeBytes { raw in (0..<count).map { raw.loadUnaligned(fromByteOffset: offset + 4 * $0, as: Float.self) } }
        }
        let theirScales = try #require(fixture["absmax_scales"] as? [Double]).map(Float.init)
        let offset = floats(scalesAt + 4 * scaleBlocks, 1)[0], theirOffset = Float(try #require(fixture["offset"] as? Double))
        #expect(packed.count == scalesAt + 4 * scaleBlocks + 4)
        #expect(abs(offset - theirOffset) <= theirOffset.ulp, "offset \(offset) vs \(theirOffset)")
        for (a, b) in zip(floats(scalesAt, scaleBlocks), theirScales) { #expect(abs(a - b) <= 2 * b.ulp, "scale \(a) vs \(b)") }

        let dequantized = unpack(NB_FMT_NF4, packed, rows: rows, k: k)
        let theirs32 = try base64Floats(fixture["dequantized_f32"])
        var worst: Float = 0
        for b in 0..<blocks {
            let absmax = (b * 64..<(b + 1) * 64).map { abs(x[$0]) }.max()!
            let sameCode = absmaxCodes[b] == theirCodes[b]
            for i in b * 64..<(b + 1) * 64 {
                let diff = abs(dequantized[i] - theirs32[i])
                worst = max(worst, diff / max(absmax, .leastNormalMagnitude))
                #expect(diff <= (sameCode ? 4 * theirs32[i].ulp : 0.01 * absmax), "element \(i)")
            }
        }
        #expect(worst <= 0.01)
    }

    /// The q2 search never does worse than plain min/max in any group, and does clearly
    /// better on normal data.
    @Test func q2SearchBeatsMinMax() {
        let rows = 32, k = 576
        let x = gaussianMatrix(rows: rows, k: k, seed: 9) { Float($0 + 1) * 0.01 }
        let y = unpack(NB_FMT_Q2, pack(NB_FMT_Q2, x, rows: rows, k: k), rows: rows, k: k)
        let naive = naiveQ2GroupErrors(x)
        var ours = 0.0, baseline = 0.0
        for (g, naiveError) in naive.enumerated() {
            var err = 0.0
            for i in g * 64..<(g + 1) * 64 { let e = Double(y[i] - x[i]); err += e * e }
            #expect(err <= naiveError * (1 + 1e-5) + 1e-30, "group \(g)")
            ours += err
            baseline += naiveError
        }
        #expect(ours <= 0.6 * baseline, "squared error \(ours) vs min/max \(baseline)")
    }

    /// Degenerate rows: zeros, constants, a single non-zero value.
    @Test func degenerateBlocks() {
        let k = 128
        var x = [Float](repeating: 0, count: 3 * k)
        for i in k..<2 * k { x[i] = -0.75 }
        x[2 * k + 70] = 3
        for f in allFormats {
            let y = unpack(f, pack(f, x, rows: 3, k: k), rows: 3, k: k)
            #expect(y[0..<k].allSatisfy { $0 == 0 }, "\(formatName(f)): zeros")
            #expect(y[k..<2 * k].allSatisfy { abs($0 + 0.75) <= 0.003 }, "\(formatName(f)): constant")
            #expect(abs(y[2 * k + 70] - 3) <= 0.002 * 3 && y[2 * k..<3 * k].filter { abs($0) > 1e-3 }.count == 1,
                    "\(formatName(f)): single value")
        }
    }
}
