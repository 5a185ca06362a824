import Foundation

/// Sampling settings, with llama.cpp's defaults (common/common.h `common_params_sampling`).
public struct SamplingParameters: Sendable, Equatable, Codable {
    /// 0 = greedy (argmax).
    public var temperature: Float = 0.8
    /// Keep only the k most likely tokens (0 = off).
    public var topK: Int = 40
    /// Keep the smallest set whose probability reaches p (1 = off).
    public var topP: Float = 0.95
    /// Drop tokens less likely than minP × the top token's probability (0 = off).
    public var minP: Float = 0.05
    /// Divide positive / multiply negative logits of recently seen tokens (1 = off).
    public var repeatPenalty: Float = 1.0
    /// How many recent tokens the penalty looks at.
    public var repeatLastN: Int = 64
    /// RNG seed; nil draws one from the system.
    public var seed: UInt64?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case temperature, topK = "top_k", topP = "top_p", minP = "min_p", repeatPenalty = "repeat_penalty", repeatLastN = "repeat_last_n", seed
    }
}

/// xoshiro256** seeded through SplitMix64: small, fast and the same on every platform,
/// so a seed reproduces the same text anywhere.
public struct Xoshiro256: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// A uniform float in [0, 1) with 24 random bits.
    public mutating func nextUnitFloat() -> Float {
        Float(next() >> 40) * (1.0 / Float(1 << 24))
    }
}

/// Picks the next token from logits. Order of the chain as llama.cpp's default:
/// penalties → top-k → top-p → min-p → temperature → draw.
/// Keeps its candidate buffers between calls, so sampling allocates nothing per token.
public struct Sampler {
    public let parameters: SamplingParameters
    private var rng: Xoshiro256
    private var candidates: [(id: Int32, logit: Float)] = []
    private var weights: [Float] = []
    private var recent: [Int32] = []

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        rng = Xoshiro256(seed: parameters.seed ?? UInt64.random(in: 0...UInt64.max))
    }

    /// Remembers a token for the repetition penalty (prompt and generated tokens).
    public mutating func accept(_ token: Int) {
        guard parameters.repeatPenalty != 1, parameters.repeatLastN > 0 else { return }
        if recent.count == parameters.repeatLastN { recent.removeFirst() }
        recent.append(Int32(token))
    }

    public mutating func sample(_ logits: UnsafeMutableBufferPointer<Float>) -> Int {
        let p = parameters
        if p.repeatPenalty != 1 {
            // llama.cpp's llama_sampler_penalties: each distinct recent token once.
            // (a linear scan of the short window; no set allocated per token).
            for (n, token) in recent.enumerated() where !recent[..<n].contains(token) {
                let i = Int(token)
                logits[i] = logits[i] > 0 ? logits[i] / p.repeatPenalty : logits[i] * p.repeatPenalty
            }
        }
        if p.temperature <= 0 { return argmax(logits) }

        candidates.removeAll(keepingCapacity: true)
        let order: ((id: Int32, logit: Float), (id: Int32, logit: Float)) -> Bool = {
            $0.logit > $1.logit || ($0.logit == $1.logit && $0.id < $1.id)
        }
        if p.topK > 0 && p.topK < logits.count {
            // Keep a sorted buffer of the k best; most logits fall below its last entry,
            // so this is one pass over the vocabulary instead of a full sort.
            for (i, l) in logits.enumerated() where l > -Float.infinity {
                if candidates.count == p.topK {
                    guard l > candidates[p.topK - 1].logit else { continue }
                    candidates.removeLast()
                }
                let item = (id: Int32(i), logit: l)
                var j = candidates.count
                while j > 0 && order(item, candidates[j - 1]) { j -= 1 }
                candidates.insert(item, at: j)
            }
        } else {
            for (i, l) in logits.enumerated() where l > -Float.infinity { candidates.append((Int32(i), l)) }
            candidates.sort(by: order)
        }
        if candidates.isEmpty { return argmax(logits) }
        // Probabilities at temperature 1 (unnormalised) for the top-p and min-p filters.
        let maxLogit = candidates[0].logit
        weights.removeAll(keepingCapacity: true)
        for c in candidates { weights.append(expf(c.logit - maxLogit)) }
        var keep = candidates.count
        if p.topP < 1 {
            let total = weights.reduce(0, +)
            var cumulative: Float = 0
            for i in 0..<keep {
                cumulative += weights[i] / total
                if cumulative >= p.topP { keep = i + 1; break }
            }
        }
        if p.minP > 0 {
            // Relative to the top token: exp(l - max) >= minP.
            keep = max(1, min(keep, weights.firstIndex { $0 < p.minP } ?? keep))
        }
        // Temperature, softmax over the survivors, draw.
        var sum: Float = 0
        for i in 0..<keep {
            weights[i] = expf((candidates[i].logit - maxLogit) / p.temperature)
            sum += weights[i]
        }
        var r = rng.nextUnitFloat() * sum
        for i in 0..<keep {
            r -= weights[i]
            if r < 0 { return Int(candidates[i].id) }
        }
        return Int(candidates[keep - 1].id)
    }

    /// The first index of the largest logit (0 when all are −∞; NaNs are never chosen):
    /// the maximum 16 lanes at a time, then the first block that holds it. Greedy decode
    /// runs it on every token over the whole vocabulary (49,152 logits on SmolLM2), on the
    /// main thread while the worker waits: the scalar loop was 1 % of a q4 decode's time.
    static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
        let n = logits.count
        guard let base = logits.baseAddress else { return 0 }
        let raw = UnsafeRawPointer(base)
        var top = SIMD16<Float>(repeating: -.infinity)
        var i = 0
        while i + 16 <= n {
            let v = raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
            // NaN lanes compare false and keep the old maximum, as the scalar loop does.
            top.replace(with: v, where: v .> top)
            i += 16
        }
        var best = top.max()
        for j in i..<n where base[j] > best { best = base[j] }
        guard best > -.infinity else { return 0 }
        let target = SIMD16<Float>(repeating: best)
        i = 0
        while i + 16 <= n {
            if any(raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self) .== target) { break }
            i += 16
        }
        while base[i] != best { i += 1 }
        return i
    }

    private func argmax(_ logits: UnsafeMutableBufferPointer<Float>) -> Int { Self.argmax(UnsafeBufferPointer(logits)) }
}
