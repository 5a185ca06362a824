import Foundation
import Testing
@testable import Inference

@Suite struct SamplerTests {
    func sample(_ logits: [Float], _ configure: (inout SamplingParameters) -> Void, draws: Int = 1) -> [Int] {
        var p = SamplingParameters()
        p.seed = 7
        configure(&p)
        var sampler = Sampler(p)
        var out: [Int] = []
        for _ in 0..<draws {
            var l = logits
            out.append(l.withUnsafeMutableBufferPointer { sampler.sample($0) })
        }
        return out
    }

    @Test func greedyIsArgmax() {
        #expect(sample([0.1, 3, -1, 2.9], { $0.temperature = 0 }) == [1])
        #expect(sample([0.1, 3, -1, 2.9], { $0.temperature = 1; $0.topK = 1 }, draws: 20) == Array(repeating: 1, count: 20))
    }

    /// The vectorised argmax is the first index of the largest value, as a plain loop finds
    /// it: ties within and across blocks of 16, the maximum in the tail after the last full
    /// block, −∞ everywhere, and NaNs, which are never chosen.
    @Test func argmaxIsTheFirstLargest() {
        func reference(_ x: [Float]) -> Int {
            var best = 0, value = -Float.infinity
            for (i, v) in x.enumerated() where v > value { (best, value) = (i, v) }
            return best
        }
        var rng = SystemRandomNumberGenerator()
        var cases: [[Float]] = [[], [-.infinity], [Float](repeating: -.infinity, count: 40), [.nan, 1, .nan, 2, 2],
                                [Float](repeating: 0, count: 33)]
        for n in [1, 15, 16, 17, 31, 32, 33, 100, 49152] {
            for _ in 0..<20 {
                // few distinct values: ties are common
                var x = (0..<n).map { _ in Float(Int.random(in: 0..<5, using: &rng)) - 10 }
                if Bool.random(using: &rng) { x[Int.random(in: 0..<n, using: &rng)] = .nan }
                if Bool.random(using: &rng) { x[n - 1] = 100 }  // in the tail when n % 16 != 0
                cases.append(x)
            }
        }
        for x in cases {
            let got = x.withUnsafeBufferPointer { Sampler.argmax($0) }
            #expect(got == reference(x), "\(x.count) values")
        }
    }

    @Test func frequenciesFollowTheSoftmax() {
        // Probabilities 0.5, 0.25, 0.25 at temperature 1 with every filter off.
        let logits: [Float] = [Float(log(2.0)), 0, 0]
        let draws = sample(logits, { $0.temperature = 1; $0.topK = 0; $0.topP = 1; $0.minP = 0 }, draws: 20000)
        let share = Double(draws.filter { $0 == 0 }.count) / 20000
        #expect(abs(share - 0.5) < 0.02, "\(share)")
        #expect(Set(draws) == [0, 1, 2])
    }

    @Test func filtersCutTheTail() {
        let logits: [Float] = [5, 4, 0, -3]  // p ≈ 0.727, 0.268, 0.005, 0.0002
        let minP = sample(logits, { $0.temperature = 1.5; $0.topK = 0; $0.topP = 1; $0.minP = 0.1 }, draws: 2000)
        #expect(Set(minP) == [0, 1])
        let topP = sample(logits, { $0.temperature = 1; $0.topK = 0; $0.topP = 0.7; $0.minP = 0 }, draws: 500)
        #expect(Set(topP) == [0])
        let topK = sample(logits, { $0.temperature = 5; $0.topK = 2; $0.topP = 1; $0.minP = 0 }, draws: 2000)
        #expect(Set(topK) == [0, 1])
    }

    @Test func repetitionPenaltyDemotesSeenTokens() {
        var p = SamplingParameters()
        p.temperature = 0
        p.repeatPenalty = 2
        var sampler = Sampler(p)
        sampler.accept(0)
        var logits: [Float] = [3, 2, -1]
        #expect(logits.withUnsafeMutableBufferPointer { sampler.sample($0) } == 1)  // 3/2 < 2
        #expect(logits == [1.5, 2, -1])
    }

    @Test func seedsReproduce() {
        let logits: [Float] = (0..<100).map { Float($0 % 7) * 0.3 }
        let a = sample(logits, { $0.temperature = 1; $0.seed = 42 }, draws: 50)
        let b = sample(logits, { $0.temperature = 1; $0.seed = 42 }, draws: 50)
        let c = sample(logits, { $0.temperature = 1; $0.seed = 43 }, draws: 50)
        #expect(a == b && a != c)
    }
}
