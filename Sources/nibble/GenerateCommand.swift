import ArgumentParser
import Chat
import Foundation
import Inference
import Tokenizers

/// Flags that shape sampling, shared by `generate` and `chat`. Each is optional, so
/// that `chat` can tell a flag given from its own defaults (`ChatSettings`, the model's).
struct SamplingOptions: ParsableArguments {
    @Option(help: "Sampling temperature; 0 = greedy (default 0.8).") var temperature: Float?
    @Option(name: .customLong("top-k"), help: "Keep the k most likely tokens (0 = off; default 40).") var topK: Int?
    @Option(name: .customLong("top-p"), help: "Nucleus sampling threshold (1 = off; default 0.95).") var topP: Float?
    @Option(name: .customLong("min-p"), help: "Drop tokens below min-p × the top probability (0 = off; default 0.05).") var minP: Float?
    @Option(name: .customLong("repeat-penalty"), help: "Penalty for the last 64 tokens (1 = off; default: generate 1, chat 1.1).") var repeatPenalty: Float?
    @Option(help: "Random seed for reproducible sampling.") var seed: UInt64?

    /// The ranges `/set` and conversation files use (`ChatSettings.check`).
    func validate() throws {
        let given: [(String, Double?)] = [("temperature", temperature.map(Double.init)), ("top_k", topK.map(Double.init)),
                                          ("top_p", topP.map(Double.init)), ("min_p", minP.map(Double.init)),
                                          ("repeat_penalty", repeatPenalty.map(Double.init))]
        for case let (name, value?) in given {
            do {
                try ChatSettings.check(name, value, shown: Float(value).description)
            } catch let error as ChatError {
                throw ValidationError("--" + error.message.replacingOccurrences(of: "_", with: "-"))
            }
        }
    }

    /// The flags over llama.cpp's defaults (`generate`: a raw completion, as llama.cpp's).
    var parameters: SamplingParameters {
        var p = SamplingParameters()
        if let temperature { p.temperature = temperature }
        if let topK { p.topK = topK }
        if let topP { p.topP = topP }
        if let minP { p.minP = minP }
        if let repeatPenalty { p.repeatPenalty = repeatPenalty }
        p.seed = seed
        return p
    }

    /// The flags given, over `settings` (chat).
    func applied(to settings: ChatSettings) -> ChatSettings {
        var s = settings
        if let temperature { s.temperature = decimal(temperature) }
        if let topK { s.topK = topK }
        if let topP { s.topP = decimal(topP) }
        if let minP { s.minP = decimal(minP) }
        if let repeatPenalty { s.repeatPenalty = decimal(repeatPenalty) }
        if let seed { s.seed = seed }
        return s
    }

    /// The Double a Float option was typed as (0.05, not 0.05000000074505806).
    private func decimal(_ value: Float) -> Double { Double(value.description) ?? Double(value) }
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
