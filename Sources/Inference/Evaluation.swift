import Foundation

/// Quality of one precision on a text: perplexity, and how far its next-token
/// distributions are from f32's (KL divergence, top-1 agreement).
///
/// Windows follow llama-perplexity (tools/perplexity/perplexity.cpp): the text is cut
/// into non-overlapping windows of `context` tokens (BOS in front of each when the
/// model adds one), and only the second half of each window is scored, so every
/// scored token has at least `context / 2` tokens of history.
public struct EvaluationResult: Sendable, Codable {
    public var precision: String
    /// Scored tokens.
    public var tokens: Int
    public var perplexity: Double
    public var kldMean: Double
    public var kldP99: Double
    /// Fraction (0–1) of scored positions whose most likely token equals f32's.
    public var top1Agreement: Double
    /// The KV cache type of the target and of the f32 reference it was compared with
    /// (nil in results saved before it was recorded).
    public var kvCache: String?

    enum CodingKeys: String, CodingKey {
        case precision, tokens, perplexity, kldMean = "kld_mean", kldP99 = "kld_p99", top1Agreement = "top1_agreement", kvCache = "kv_cache"
    }
}

public enum Evaluation {
    /// Evaluates `target` on `text`, comparing with `reference` (an f32 engine on the
    /// same model; nil when `target` is itself f32, giving KLD 0 and agreement 1).
    /// For a KLD that measures the weights alone, give the reference the target's KV
    /// cache type (`Engine(kvCache:)`), as llama-perplexity's runs share one.
    public static func run(target: Engine, reference: Engine?, text: String, context: Int,
                           progress: (Int, Int) -> Void = { _, _ in }, shouldStop: () -> Bool = { false }) throws -> EvaluationResult {
        try run(targets: [target], reference: reference, text: text, context: context, progress: progress, shouldStop: shouldStop)[0]
    }

    /// Evaluates several engines (precisions) of one model in one pass over the text,
    /// running the f32 reference once per window.
    public static func run(targets: [Engine], reference: Engine?, text: String, context: Int,
                           progress: (Int, Int) -> Void = { _, _ in }, shouldStop: () -> Bool = { false }) throws -> [EvaluationResult] {
        guard let first = targets.first else { return [] }
        let tokens = first.tokenizer.encode(text)
        let bos = first.tokenizer.addBOS ? first.tokenizer.bosTokenID : nil
        for engine in targets + (reference.map { [$0] } ?? []) where context < 8 || context > engine.contextLength {
            throw EvaluationError.badContext(context, engineContext: engine.contextLength)
        }
        let windows = tokens.count / context
        guard windows > 0 else { throw EvaluationError.textTooShort(tokens: tokens.count, context: context) }
        let vocab = first.config.vocabSize
        let scoredFrom = context / 2
        var nll = [Double](repeating: 0, count: targets.count)
        var agree = [Int](repeating: 0, count: targets.count)
        var klds = [[Double]](repeating: [], count: targets.count)
        var scored = 0
        var targetLogProbs = [Double](repeating: 0, count: vocab)
        var referenceLogProbs = [Double](repeating: 0, count: vocab)
        for w in 0..<windows {
            if shouldStop() { break }
            progress(w, windows)
            var window = Array(tokens[(w * context)..<((w + 1) * context)])
            if let bos { window[0] = bos }
            let referenceLogits = try reference?.logitsAtEveryPosition(for: window, from: scoredFrom)
            for (e, engine) in targets.enumerated() {
                let logits = try engine === reference ? referenceLogits! : engine.logitsAtEveryPosition(for: window, from: scoredFrom)
                for j in scoredFrom..<(context - 1) {
                    logits.withUnsafeBufferPointer { logSoftmax($0.baseAddress! + (j - scoredFrom) * vocab, vocab, into: &targetLogProbs) }
                    nll[e] -= targetLogProbs[window[j + 1]]
                    guard let referenceLogits else { agree[e] += 1; klds[e].append(0); continue }
                    referenceLogits.withUnsafeBufferPointer { logSoftmax($0.baseAddress! + (j - scoredFrom) * vocab, vocab, into: &referenceLogProbs) }
                    var kld = 0.0
                    var bestTarget = 0, bestReference = 0
                    for i in 0..<vocab {
                        kld += exp(referenceLogProbs[i]) * (referenceLogProbs[i] - targetLogProbs[i])
                        if targetLogProbs[i] > targetLogProbs[bestTarget] { bestTarget = i }
                        if referenceLogProbs[i] > referenceLogProbs[bestReference] { bestReference = i }
                    }
                    klds[e].append(max(0, kld))
                    if bestTarget == bestReference { agree[e] += 1 }
                }
            }
            scored += context - 1 - scoredFrom
        }
        return targets.indices.map { e in
            let sorted = klds[e].sorted()
            let p99 = sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.99).rounded(.up)) - 1)]
            let n = Double(max(scored, 1))
            return EvaluationResult(precision: targets[e].plan.name, tokens: scored, perplexity: exp(nll[e] / n),
                                    kldMean: sorted.reduce(0, +) / n, kldP99: p99, top1Agreement: Double(agree[e]) / n,
                                    kvCache: targets[e].plan.kvCache.rawValue)
        }
    }

    /// log softmax in double precision (the sums of 49k exponentials need it).
    static func logSoftmax(_ logits: UnsafePointer<Float>, _ n: Int, into out: inout [Double]) {
        var maxLogit = -Double.infinity
        for i in 0..<n { maxLogit = max(maxLogit, Double(logits[i])) }
        var sum = 0.0
        for i in 0..<n { sum += exp(Double(logits[i]) - maxLogit) }
        let logSum = log(sum) + maxLogit
        for i in 0..<n { out[i] = Double(logits[i]) - logSum }
    }
}

public enum EvaluationError: Error, CustomStringConvertible {
    case textTooShort(tokens: Int, context: Int)
    case badContext(Int, engineContext: Int)

    public var description: String {
        switch self {
        case let .textTooShort(tokens, context): "the text has \(tokens) tokens, fewer than one window of \(context)"
        case let .badContext(ctx, engineContext): "--ctx \(ctx) must be between 8 and the context length \(engineContext)"
        }
    }
}
