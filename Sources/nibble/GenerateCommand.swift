import ArgumentParser
import Chat
import Foundation
import Inference
import Tokenizers

/// Flags that shape sampling, shared by `generate` and (later) `chat`.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Sampling temperature; 0 = greedy.") var temperature: Float = 0.8
    @Option(name: .customLong("top-k"), help: "Keep the k most likely tokens (0 = off).") var topK: Int = 40
    @Option(name: .customLong("top-p"), help: "Nucleus sampling threshold (1 = off).") var topP: Float = 0.95
    @Option(name: .customLong("min-p"), help: "Drop tokens below min-p × the top probability (0 = off).") var minP: Float = 0.05
    @Option(name: .customLong("repeat-penalty"), help: "Penalty for recently seen tokens (1 = off).") var repeatPenalty: Float = 1.0
    @Option(help: "Random seed for reproducible sampling.") var seed: UInt64?

    /// The ranges `/set` and conversation files use (`ChatSettings.check`).
    func validate() throws {
        for (name, value) in [("temperature", Double(temperature)), ("top_k", Double(topK)), ("top_p", Double(topP)),
                              ("min_p", Double(minP)), ("repeat_penalty", Double(repeatPenalty))] {
            do {
                try ChatSettings.check(name, value, shown: Float(value).description)
            } catch let error as ChatError {
                throw ValidationError("--" + error.message.replacingOccurrences(of: "_", with: "-"))
            }
        }
    }

    var parameters: SamplingParameters {
        var p = SamplingParameters()
        p.temperature = temperature
        p.topK = topK
        p.topP = topP
        p.minP = minP
        p.repeatPenalty = repeatPenalty
        p.seed = seed
        return p
    }
}

extension Nibble {
    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Continue a prompt (raw completion, no chat template), streaming the text.")

        @OptionGroup var model: ModelOptions
        @OptionGroup var sampling: SamplingOptions
        @Option(help: "The text to continue (default: read from standard input).") var prompt: String?
        @Option(name: .customLong("max-tokens"), help: "Stop after this many generated tokens.") var maxTokens: Int = 256
        @Flag(help: "Print one JSON object {text, tokens, stop_reason, stats} instead of streaming.") var json = false

        func validate() throws {
            if maxTokens < 0 { throw ValidationError("--max-tokens must be >= 0") }
        }

        func run() throws {
            let text = try prompt ?? String(decoding: FileHandle.standardInput.readToEnd() ?? Data(), as: UTF8.self)
            let interrupt = Interrupt.shared
            let engine = try model.loadEngine()
            let promptTokens = engine.promptTokens(text)
            var decoder = StreamingDecoder(tokenizer: engine.tokenizer)
            let result = try engine.generate(
                prompt: promptTokens, maxTokens: maxTokens, sampling: sampling.parameters,
                shouldStop: { interrupt.isSet },
                onToken: { token in
                    let piece = decoder.append(token)
                    if !json { Terminal.write(Terminal.output(piece)) }
                })
            let rest = decoder.finish()
            if json {
                let output = GenerateOutput(text: engine.tokenizer.decode(result.tokens), tokens: result.tokens,
                                            stopReason: result.stopReason, stats: result.stats)
                try Terminal.writeJSON(output)
            } else {
                Terminal.write(Terminal.output(rest) + "\n")
                let s = result.stats
                Terminal.writeError(String(format: "[%d prompt tokens, %d generated, %@; ttft %.2f s, prefill %.1f tok/s, decode %.1f tok/s]\n",
                                           s.promptTokens, s.generatedTokens, result.stopReason.rawValue,
                                           s.ttftSeconds, s.prefillTokensPerSecond, s.decodeTokensPerSecond))
            }
            if result.stopReason == .cancelled { throw ExitCode(130) }
        }
    }
}

/// The contract's `generate --json` object.
struct GenerateOutput: Encodable {
    var text: String
    var tokens: [Int]
    var stopReason: StopReason
    var stats: GenerationStats

    enum CodingKeys: String, CodingKey {
        case text, tokens, stopReason = "stop_reason", stats
    }
}
