import ArgumentParser
import Foundation
import ModelFiles
import Quantization

@main
struct Nibble: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nibble",
        abstract: "Chat with local language models on the CPU, at the precision you choose.",
        version: "0.1.0",
        subcommands: [Chat.self, Generate.self, Tokenize.self, Template.self, Info.self, Eval.self, Bench.self, BenchRun.self, Quantize.self],
        defaultSubcommand: Chat.self
    )

    /// Runs the command; every failure exits with status 1 and at most three lines on
    /// stderr, the first naming the file or argument and what is wrong (DESIGN.md's CLI
    /// contract). Help and version still print in full; Ctrl-C exits with 130.
    static func main() {
        let environment = ProcessInfo.processInfo.environment
        if let problem = KernelLevel.environmentProblem(environment) ?? PrefetchProfile.environmentProblem(environment) {
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
            Terminal.writeError(Terminal.visible(shortMessage(message(for: error))))
            Foundation.exit(1)
        }
    }

    /// The text for an error: Nibble's own errors say what they are; Foundation's
    /// (whose descriptions carry type names, domains and codes) become sentences.
    static func message(for error: Error) -> String {
        switch error {
        case let error as CocoaError:
            let path = error.filePath ?? error.url?.path ?? "a file"
            return "\(path): \((512..<1024).contains(error.code.rawValue) ? "cannot write" : "cannot read")" + (systemReason(of: error).map { " (\($0))" } ?? "")
        case let error as POSIXError:
            return ModelFileError.systemReason(error.code.rawValue)
        case is EncodingError:
            return "cannot write the JSON output: a value is not a number JSON can hold (NaN or infinity)"
        case is DecodingError:
            return "cannot read the JSON input: it is not what was expected"
        default:
            return fullMessage(for: error)
        }
    }

    /// The system's reason inside a Foundation file error ("no such file or directory").
    static func systemReason(of error: CocoaError) -> String? {
        if let posix = error.underlying as? POSIXError { return ModelFileError.systemReason(posix.code.rawValue) }
        if let underlying = error.underlying as NSError?, underlying.domain == NSPOSIXErrorDomain {
            return ModelFileError.systemReason(Int32(underlying.code))
        }
        return nil
    }

    /// The longest line an error may print; longer ones (a hostile file's text that
    /// slipped through) are cut.
    static let maximumLineLength = 400

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
        // No control characters reach the terminal, and no line floods it.
        return lines.prefix(3).map { $0.printable(limit: maximumLineLength) }.joined(separator: "\n") + "\n"
    }
}
