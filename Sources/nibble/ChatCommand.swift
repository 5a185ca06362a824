import ArgumentParser
import Foundation
import Inference
import Tokenizers

extension Nibble {
    /// Until the chat REPL (templates, history, slash commands) lands, `chat` continues
    /// each line typed as a raw completion, streaming the text.
    struct Chat: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Talk to the model (default). For now each line is continued as a raw completion.")

        @OptionGroup var model: ModelOptions
        @OptionGroup var sampling: SamplingOptions
        @Option(name: .customLong("max-tokens"), help: "Stop each reply after this many tokens.") var maxTokens: Int = 128

        func run() throws {
            let interrupt = Interrupt.shared
            let engine = try model.loadEngine()
            let interactive = isatty(STDIN_FILENO) != 0
            if interactive {
                Terminal.writeError("nibble: \(engine.file.string("general.name") ?? engine.file.path) at \(engine.format.rawValue); "
                    + "type a line to continue it, Ctrl-D to quit (Ctrl-C stops a reply).\n")
            }
            while true {
                if interactive { Terminal.write("> ") }
                guard let line = readLine() else { break }
                if line.isEmpty { continue }
                interrupt.reset()
                var decoder = StreamingDecoder(tokenizer: engine.tokenizer)
                Terminal.write(line)
                let result = try engine.generate(
                    prompt: engine.promptTokens(line), maxTokens: maxTokens, sampling: sampling.parameters,
                    shouldStop: { interrupt.isSet }, onToken: { Terminal.write(decoder.append($0)) })
                Terminal.write(decoder.finish() + "\n")
                if interactive {
                    Terminal.writeError(String(format: "[%d tokens, %.1f tok/s, %@]\n", result.stats.generatedTokens,
                                               result.stats.decodeTokensPerSecond, result.stopReason.rawValue))
                }
            }
        }
    }
}
