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
        @Flag(name: .customLong("no-history"), help: "Do not write typed lines to the history file (also NIBBLE_NO_HISTORY=1).")
        var noHistory = false

        func run() throws {
            let interrupt = Interrupt.shared
            let engine = try model.loadEngine()
            let input = makeLineInput(historyFile: LineInputHistory.defaultPath(disabled: noHistory),
                                      completer: slashCompletions)
            let interactive = input is EditLineInput
            defer { input.saveHistory() }
            if interactive {
                Terminal.writeError("nibble: \(engine.file.string("general.name") ?? engine.file.path) at \(engine.format.rawValue); "
                    + "type a line to continue it, Ctrl-D to quit (Ctrl-C stops a reply).\n")
            }
            var lastLine: String?
            var putBack: String?
            while true {
                let line: String
                let initialText = putBack
                putBack = nil
                switch input.read(prompt: Style.prompt, initialText: initialText) {
                case .endOfInput: return
                case .interrupted: continue
                case .line(let text): line = text
                }
                if line.allSatisfy(\.isWhitespace) { continue }
                input.remember(line)
                input.saveHistory()
                let command = line.trimmingCharacters(in: .whitespaces)
                if ["/quit", "/exit", "/bye"].contains(command) { return }
                if command == "/undo" {  // puts the previous line back to edit
                    putBack = lastLine
                    continue
                }
                lastLine = line
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

/// The slash commands the REPL will have.
let placeholderSlashCommands = [
    "/help", "/model", "/reload", "/precision", "/system", "/prompt", "/set", "/show", "/stats", "/retry", "/undo",
    "/clear", "/save", "/load", "/replay", "/compare", "/export", "/template", "/tokens", "/quit", "/exit", "/bye",
]

/// Tab completion for the placeholder REPL: command names, precision names after
/// `/precision `, paths after the commands that take a file. Returns candidates for
/// the last word of `lineBeforeCursor`.
func slashCompletions(_ lineBeforeCursor: String) -> [String] {
    guard lineBeforeCursor.hasPrefix("/") else { return [] }
    guard let space = lineBeforeCursor.firstIndex(where: \.isWhitespace) else {
        return placeholderSlashCommands.filter { $0.hasPrefix(lineBeforeCursor) }
    }
    let command = String(lineBeforeCursor[..<space])
    let arguments = lineBeforeCursor[space...].drop { $0.isWhitespace }
    guard !arguments.contains(where: \.isWhitespace) else { return [] }  // first argument only
    let word = String(arguments)
    switch command {
    case "/precision":
        return ["f32", "f16", "bf16", "q8", "q4", "nf4", "q2", "native", "auto"].filter { $0.hasPrefix(word) }
    case "/load", "/save", "/model", "/export":
        return EditLineInput.pathCandidates(word)
    default:
        return []
    }
}
