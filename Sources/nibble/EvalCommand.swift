import ArgumentParser
import Foundation
import Inference

extension Nibble {
    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Perplexity of a text and divergence from f32 (mean/p99 KL divergence, top-1 agreement), as llama-perplexity scores it; with --adapter, of the adapted model against the adapted f32.")

        @OptionGroup var model: ModelFileOption
        @OptionGroup var precision: PrecisionOption
        @OptionGroup var threads: ThreadsOption
        @OptionGroup var memoryLimit: MemoryLimitOption
        @OptionGroup var adapter: AdapterOption
        @Option(help: "The text to score.") var file: String
        @Option(help: "Window length in tokens; the second half of each window is scored (default: 512).") var context: Int?
        /// The old name of `--context` (Tools and notes from before 0.2 use it).
        @Option(name: .customLong("ctx"), help: .hidden) var ctx: Int?
        @Option(name: .customLong("kv-cache"),
                help: "KV cache type, f32, f16 or q8, of the precision and of the f32 reference it is compared with (default: the precision's: f32 at f32, else f16).")
        var kvCache: KVCacheType?
        @Option(name: .customLong("reference-kv-cache"),
                help: "KV cache type of the f32 reference (default: --kv-cache's), e.g. f32 to measure what a q8 cache loses too.")
        var referenceKVCache: KVCacheType?
        @Flag(help: "Print one JSON object.") var json = false

        /// llama-perplexity's default window.
        static let defaultWindow = 512

        var window: Int { context ?? ctx ?? Self.defaultWindow }

        func validate() throws {
            if context != nil, ctx != nil { throw ValidationError("give the window once, as --context") }
            if window < 8 { throw ValidationError("--context must be at least 8") }
        }

        func run() throws {
            let data = try readUserFile(file)
            let text = String(decoding: data, as: UTF8.self)
            let interactive = isatty(STDERR_FILENO) != 0
            defer { if interactive { Terminal.writeError("\r\u{1B}[K") } }
            let result = try QualityRun.evaluate(path: model.modelPath(), precisions: [precision.precision], text: text, file: file,
                                                 window: window, threads: threads.threads, memoryLimit: memoryLimit.bytes(), kvCache: kvCache,
                                                 referenceKVCache: referenceKVCache, adapter: adapter.path, progress: { _, done, total in
                                                     if interactive { Terminal.writeError("\r[window \(done + 1)/\(total)]") }
                                                 })[0]
            if json {
                try Terminal.writeJSON(result)
            } else {
                Terminal.write(String(format: "precision %@ (KV cache %@): %d tokens scored, perplexity %.4f, KLD vs f32 mean %.6f p99 %.6f, top-1 agreement %.2f %%\n",
                                      result.precision, result.kvCache ?? "?", result.tokens, result.perplexity, result.kldMean, result.kldP99,
                                      100 * result.top1Agreement))
            }
        }
    }
}

/// How `eval` (and `bench --quality`) score a text: windows of `window` tokens, the
/// second half of each scored (`Evaluation`, as llama-perplexity), each precision
/// against one f32 engine of the same model whose KV cache has the target's type (so
/// the KLD measures the weights, as llama-perplexity's F32 base and quantized runs share
/// f16 KV), or `referenceKVCache` (so it measures the KV cache's type too). One target engine is loaded at a time beside the reference, so memory stays
/// at f32 + one precision.
enum QualityRun {
    /// - Parameters:
    ///   - file: the text's name, for errors.
    ///   - maxTokens: score only whole windows within the text's first `maxTokens` tokens.
    ///   - progress: (precision index, window, windows).
    /// Throws `ExitCode(130)` when Ctrl-C stopped it.
    static func evaluate(path: String, precisions: [Precision], text: String, file: String, window: Int,
                         threads: Int?, memoryLimit: Int, kvCache: KVCacheType? = nil, referenceKVCache: KVCacheType? = nil,
                         adapter: String? = nil, maxTokens: Int? = nil,
                         progress: (Int, Int, Int) -> Void = { _, _, _ in }) throws -> [EvaluationResult] {
        let interrupt = Interrupt.shared
        var reference: Engine?
        var text = text
        var results: [EvaluationResult] = []
        for (index, precision) in precisions.enumerated() {
            if interrupt.isSet { throw ExitCode(130) }
            let target = try Engine(path: path, precision: precision, threads: threads, context: window, memoryLimit: memoryLimit,
                                    kvCache: kvCache, adapter: adapter)
            if index == 0, let maxTokens { text = prefix(of: text, windows: maxTokens / window, window: window, tokenizer: target) }
            // f32 weights with the reference's KV cache are the reference itself.
            let referenceKV = referenceKVCache ?? target.plan.kvCache
            let needsReference = target.format != .f32 || target.plan.kvCache != referenceKV
            if needsReference, reference?.plan.kvCache != referenceKV {
                reference = nil  // before the next one is loaded
                reference = try Engine(path: path, precision: .f32, threads: threads, context: window, memoryLimit: memoryLimit,
                                       kvCache: referenceKV, adapter: adapter)
            }
            do {
                results.append(try Evaluation.run(target: target, reference: needsReference ? reference : nil, text: text, context: window,
                                                  progress: { progress(index, $0, $1) }, shouldStop: { interrupt.isSet }))
            } catch let error as EvaluationError {
                switch error {
                case .textTooShort: throw CLIError("\(file): \(error) (--context)")  // name the file
                case let .badContext(_, engineContext): throw CLIError("--context \(window) must be between 8 and the context length \(engineContext)")
                }
            }
            if interrupt.isSet { throw ExitCode(130) }
        }
        return results
    }

    /// The start of `text` that holds `windows` whole windows and a little more (so that
    /// re-tokenizing at the cut still gives as many), or all of it.
    static func prefix(of text: String, windows: Int, window: Int, tokenizer engine: Engine) -> String {
        let tokens = engine.tokenizer.encode(text)
        let keep = max(1, windows) * window + window / 2
        guard tokens.count > keep else { return text }
        return engine.tokenizer.decode(Array(tokens[..<keep]))
    }
}
