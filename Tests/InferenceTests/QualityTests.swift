import Foundation
import Testing
@testable import Inference

/// Issue 3's quality bounds on SmolLM2 over the GPL-3 text (Debian's base-files ships
/// it), 512-token windows, second halves scored as llama-perplexity does. llama.cpp's
/// figures on the same text, for context: f32 perplexity 18.30; mean KLD vs f32:
/// F16 0.000006, BF16 0.00016, Q8_0 0.0045, Q4_1 0.0031, Q4_0 0.29, IQ4_NL 0.18.
@Suite(.serialized) struct QualityTests {
    static let gpl3 = "/usr/share/common-licenses/GPL-3"

    @Test func everyPrecisionAgainstF32() throws {
        let text = try String(contentsOfFile: Self.gpl3, encoding: .utf8)
        let reference = try Engine(path: modelPath, precision: .f32, threads: 2, context: 512)
        let formats: [Precision] = [.f16, .bf16, .q8, .q4, .nf4, .q2]
        let targets = try formats.map { try Engine(path: modelPath, precision: $0, threads: 2, context: 512) }
        var results = try Evaluation.run(targets: [reference] + targets, reference: reference, text: text, context: 512)
        let f32 = results.removeFirst()
        #expect(f32.kldMean == 0 && f32.top1Agreement == 1)
        print("f32: perplexity \(f32.perplexity) over \(f32.tokens) tokens")
        for r in results {
            print("\(r.precision): perplexity \(r.perplexity), KLD mean \(r.kldMean) p99 \(r.kldP99), top-1 \(r.top1Agreement)")
        }
        #expect(abs(f32.perplexity / 18.30 - 1) < 0.005, "f32 perplexity \(f32.perplexity) vs llama.cpp's 18.30")
        #expect(f32.tokens == 14 * 255)   // 14 windows of 512, 255 scored in each (as llama-perplexity)
        let bounds: [String: Double] = ["f16": 0.00002, "bf16": 0.0003, "q8": 0.005, "q4": 0.0035, "nf4": 0.30]
        // nf4 re-quantises the Q4_1 source: measured 0.284 with searched block scales and
        // the int16-codebook kernels (bitsandbytes' absmax scales with an int8 codebook gave
        // 0.355; see CKernels/formats.c).
        for r in results {
            if let bound = bounds[r.precision] {
                #expect(r.kldMean <= bound, "\(r.precision) mean KLD \(r.kldMean) > \(bound)")
            }
            if r.precision == "q8" || r.precision == "q4" { #expect(r.top1Agreement >= 0.95, "\(r.precision) top-1 \(r.top1Agreement)") }
            #expect(r.kldMean >= 0 && r.kldP99 >= r.kldMean * 0.5)
        }
    }
}
