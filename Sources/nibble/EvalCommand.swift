import ArgumentParser
import Foundation
import Inference

extension Nibble {
    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Perplexity of a text and divergence from f32 (mean/p99 KL divergence, top-1 agreement), as llama-perplexity scores it.")

        @OptionGroup var model: ModelOptions
        @Option(help: "The text to score.") var file: String
        @Option(help: "Window length in tokens; the second half of each window is scored.") var ctx: Int = 512
        @Flag(help: "Print one JSON object.") var json = false

        func run() throws {
            let data = try readUserFile(file)
            let text = String(decoding: data, as: UTF8.self)
            let interrupt = Interrupt.shared
            let context = max(model.context ?? ctx, ctx)
            let limit = try model.memoryLimitBytes()
            let path = try model.modelPath()
            let target = try Engine(path: path, precision: model.precision, threads: model.threads, context: context, memoryLimit: limit)
            let reference = target.format == .f32 ? nil
                : try Engine(path: path, precision: .f32, threads: model.threads, context: context, memoryLimit: limit)
            let interactive = isatty(STDERR_FILENO) != 0
            let result: EvaluationResult
            do {
                result = try Evaluation.run(target: target, reference: reference, text: text, context: ctx,
                                            progress: { done, total in if interactive { Terminal.writeError("\r[window \(done + 1)/\(total)]") } },
                                            shouldStop: { interrupt.isSet })
            } catch let error as EvaluationError {
                if case .textTooShort = error { throw CLIError("\(file): \(error) (--ctx)") }  // name the file
                throw error
            }
            if interactive { Terminal.writeError("\r\u{1B}[K") }
            if interrupt.isSet { throw ExitCode(130) }
            if json {
                try Terminal.writeJSON(result)
            } else {
                Terminal.write(String(format: "precision %@: %d tokens scored, perplexity %.4f, KLD vs f32 mean %.6f p99 %.6f, top-1 agreement %.2f %%\n",
                                      result.precision, result.tokens, result.perplexity, result.kldMean, result.kldP99, 100 * result.top1Agreement))
            }
        }
    }
}
