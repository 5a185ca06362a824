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

extension KernelPaths {
    @Suite struct QuantizerTests {
        /// RMSE of pack → unpack on llama.cpp's synthetic data (test-quantize-fns.cpp), with
        /// llama.cpp's own metric (sqrt(Σ err²)/n, threshold 0.002 for ≥ 4 bits, 0.0075 for 2)
        /// and the plain RMSE. Measured: f16 0.00028, bf16 0.0023, q8 0.0048, q4 0.073,
        /// nf4 0.136, q2 0.288 (plain min/max would give 0.346).
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

        /// Normal data: RMSE relative to σ. Measured q8 0.0053, q4 0.078, nf4 0.086 (0.092 with
        /// bitsandbytes' absmax scaling), q2 0.325.
        @Test func roundTripOnNormalData() {
            let rows = 64, k = 1024
            let x = gaussianMatrix(rows: rows, k: k, seed: 3)
            for (f, bound) in [(NB_FMT_Q8, 0.006), (NB_FMT_Q4, 0.085), (NB_FMT_NF4, 0.09), (NB_FMT_Q2, 0.335)] {
                let e = rmse(x, unpack(f, pack(f, x, rows: rows, k: k), rows: rows, k: k))
                #expect(e <= bound, "\(formatName(f)): rmse/σ \(e)")
            }
        }

        @Test func q8AndQ4EqualTheGGMLReferenceOnRandomData() {
            let rows = 12, k = 576
            // Row scales from 1e-6 (f16-subnormal scales) to 1e4 (near the f16 range).
            let x = gaussianMatrix(rows: rows, k: k, seed: 5) { Float(pow(10.0, Double($0) * 10 / 11 - 6)) }
            for isa in allLevels {  // q8 packs with AVX2 where it can
                #expect(withISA(isa) { pack(NB_FMT_Q8, x, rows: rows, k: k) } == ggmlQ8_0(x), "isa \(isa)")
                #expect(withISA(isa) { pack(NB_FMT_Q4, x, rows: rows, k: k) } == ggmlQ4_1(x), "isa \(isa)")
            }
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
                for isa in allLevels {
                    #expect(withISA(isa) { pack(NB_FMT_Q8, x, rows: rows, k: k) } == (try base64Bytes(c["q8_0"])), "\(name) q8_0, isa \(isa)")
                    #expect(withISA(isa) { pack(NB_FMT_Q4, x, rows: rows, k: k) } == (try base64Bytes(c["q4_1"])), "\(name) q4_1, isa \(isa)")
                }
                #expect(ggmlQ8_0(x) == (try base64Bytes(c["q8_0"])), "\(name): Swift transliteration of q8_0")
                #expect(ggmlQ4_1(x) == (try base64Bytes(c["q4_1"])), "\(name): Swift transliteration of q4_1")
            }
        }

        /// nf4 with NB_NF4_ABSMAX against bitsandbytes 0.50.2 (quantize_4bit, blocksize 64,
        /// compress_statistics): same 4-bit codes, same absmax codes, scales and offset, same
        /// dequantised values. The documented freedoms (offset to the last bit, an absmax code ±1
        /// where bitsandbytes' approximate search misses the nearest entry) are allowed; the
        /// fixture has neither. (NB_NF4_SEARCH, the engine's, stores the same kinds of values in
        /// the same places with the same statistics, so the layout checks here cover it too.)
        @Test func nf4EqualsBitsandbytes() throws {
            let fixture = try #require(try quantFixture("reference-quants.json")["nf4"] as? [String: Any])
            let rows = try #require(fixture["rows"] as? Int), k = try #require(fixture["k"] as? Int)
            let x = try base64Floats(fixture["input_f32"])
            let packed = packNF4(x, rows: rows, k: k, scaling: NB_NF4_ABSMAX)
            let searched = packNF4(x, rows: rows, k: k, scaling: NB_NF4_SEARCH)
            #expect(searched[rows * k / 2 + rows * k / 64..<searched.count] == packed[rows * k / 2 + rows * k / 64..<packed.count],
                    "second-level scales and offset are bitsandbytes' in both scalings")
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

        /// Blocks as the engine meets them: normal rows with varied scales and outliers, and
        /// the same re-quantised through q4 (as SmolLM2's Q4_1 weights, 16 levels per 32).
        static func nf4Problems() -> [(name: String, rows: Int, k: Int, x: [Float])] {
            let rows = 48, k = 576
            var normal = gaussianMatrix(rows: rows, k: k, seed: 21) { 0.01 * Float(1 + $0 % 7) }
            for i in stride(from: 5, to: rows * k, by: 997) { normal[i] *= 8 }
            let viaQ4 = unpack(NB_FMT_Q4, pack(NB_FMT_Q4, normal, rows: rows, k: k), rows: rows, k: k)
            return [("normal", rows, k, normal), ("via q4", rows, k, viaQ4)]
        }

        /// Σ x²·(x − y)² per 64-block: the error NB_NF4_SEARCH minimises.
        static func weightedBlockErrors(_ x: [Float], _ y: [Float]) -> [Double] {
            stride(from: 0, to: x.count, by: 64).map { b in
                (b..<b + 64).reduce(0.0) { sum, i in
                    let e = Double(x[i]) - Double(y[i])
                    return sum + Double(x[i]) * Double(x[i]) * e * e
                }
            }
        }

        /// NB_NF4_SEARCH keeps bitsandbytes' pair as a candidate, so no block's weighted error
        /// exceeds NB_NF4_ABSMAX's (up to float rounding in the comparison); in total it is
        /// lower (0.86 of absmax's on both), and so is the plain squared error (0.92 normal,
        /// 0.91 via q4).
        @Test func nf4SearchNeverWorseThanAbsmax() {
            for (name, rows, k, x) in Self.nf4Problems() {
                let absmax = unpack(NB_FMT_NF4, packNF4(x, rows: rows, k: k, scaling: NB_NF4_ABSMAX), rows: rows, k: k)
                let searched = unpack(NB_FMT_NF4, packNF4(x, rows: rows, k: k, scaling: NB_NF4_SEARCH), rows: rows, k: k)
                let before = Self.weightedBlockErrors(x, absmax), after = Self.weightedBlockErrors(x, searched)
                var worse = 0
                for (a, s) in zip(before, after) where s > a * (1 + 1e-5) + 1e-30 { worse += 1 }
                #expect(worse == 0, "\(name): \(worse) blocks worse than absmax")
                let weighted = after.reduce(0, +) / before.reduce(0, +)
                let plain = pow(rmse(x, searched) / rmse(x, absmax), 2)
                print("nf4 search/absmax \(name): weighted \(weighted), plain \(plain)")
                #expect(weighted <= 0.9 && plain <= 0.95, "\(name): weighted \(weighted), plain \(plain)")
            }
        }

        /// The packed bytes depend neither on the CPU path (the AVX2 code search keeps the
        /// portable one's roundings) nor on how many threads pack.
        @Test func nf4PackingIsTheSameOnEveryPathAndThreadCount() {
            for (name, rows, k, x) in Self.nf4Problems() {
                for scaling in [NB_NF4_ABSMAX, NB_NF4_SEARCH] {
                    let reference = withISA(NB_ISA_SCALAR) { packNF4(x, rows: rows, k: k, scaling: scaling) }
                    for level in simdLevels {
                        for threads in [1, 2, 3] {
                            let bytes = withISA(level) { packNF4(x, rows: rows, k: k, scaling: scaling, threads: threads) }
                            #expect(bytes == reference, "\(name), scaling \(scaling.rawValue), \(threads) threads, \(isaName(level))")
                        }
                    }
                }
                #expect(pack(NB_FMT_NF4, x, rows: rows, k: k) == packNF4(x, rows: rows, k: k, scaling: NB_NF4_SEARCH),
                        "nb_pack(NB_FMT_NF4) is the search")
            }
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
}
