import ArgumentParser
import Foundation

@main
struct Nibble: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nibble",
        abstract: "Chat with local language models on the CPU, at the precision you choose.",
        version: "0.1.0",
        subcommands: [Chat.self, Generate.self, Tokenize.self, Info.self, Eval.self, Bench.self, Quantize.self],
        defaultSubcommand: Chat.self
    )
}
