import ArgumentParser
import Foundation
import Quantization

@main
struct Nibble: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nibble",
        abstract: "Chat with local language models on the CPU, at the precision you choose.",
        version: "0.1.0",
        subcommands: [Chat.self, Generate.self, Tokenize.self, Template.self, Info.self, Eval.self, Bench.self, Quantize.self],
        defaultSubcommand: Chat.self
    )

    /// Runs the command; every failure exits with status 1 and at most three lines on
    /// stderr, the first naming the file or argument and what is wrong (DESIGN.md's CLI
    /// contract). Help and version still print in full; Ctrl-C exits with 130.
    static func main() {
        if let problem = KernelLevel.environmentProblem(ProcessInfo.processInfo.environment) {
            Terminal.writeError("Error: \(problem)\n")
            Foundation.exit(1)
        }
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }  // --help, --version
            Terminal.writeError(Terminal.visible(shortMessage(fullMessage(for: error))))
            Foundation.exit(1)
        }
    }

    /// "Error: …" plus up to two lines of hint; a list of allowed values is folded into
    /// the first line.
    static func shortMessage(_ message: String) -> String {
        var lines: [String] = []
        var choices: [String] = []
        for line in message.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) {
            if line.hasPrefix("  - ") { choices.append(String(line.dropFirst(4))) }
            else if !line.hasPrefix("Help:") && !line.hasPrefix("  See '") { lines.append(line) }
        }
        if !choices.isEmpty, !lines.isEmpty {
            lines[0] = lines[0].replacingOccurrences(of: " Please provide one of the following:", with: "") + " (one of: " + choices.joined(separator: ", ") + ")"
        }
        if let first = lines.first, !first.hasPrefix("Error:") { lines[0] = "Error: " + first }
        return lines.prefix(3).joined(separator: "\n") + "\n"
    }
}
