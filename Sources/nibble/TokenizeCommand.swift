import ArgumentParser
import Foundation
import ModelFiles
import Tokenizers

extension Nibble {
    struct Tokenize: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the token ids of a text as a JSON array (works on vocab-only GGUFs).")

        @OptionGroup var model: ModelFileOption
        @Option(help: "The text to tokenize.") var text: String?
        @Option(help: "Read the text from this file.") var file: String?
        @Flag(help: "Recognise special-token text such as <|im_start|> as the special token.") var special = false
        @Flag(help: "Add the BOS token if the vocabulary has one.") var bos = false
        @Flag(help: "Print each token as id 'piece', one line, instead of the JSON array.") var pieces = false

        func validate() throws {
            if (text == nil) == (file == nil) { throw ValidationError("give exactly one of --text or --file") }
        }

        func run() throws {
            let input: String
            if let file {
                let data = try readUserFile(file)
                input = String(decoding: data, as: UTF8.self)
            } else {
                input = text!
            }
            let source = try ModelSources.open(model.modelPath())
            let tokenizer = try Tokenizer(metadata: source.metadata, source: source.path)
            let ids = tokenizer.encode(input, parseSpecial: special, addBOS: bos)
            if pieces {
                Terminal.write(ChatREPL.pieces(ids, tokenizer) + "\n")
            } else {
                Terminal.write("[" + ids.map(String.init).joined(separator: ", ") + "]\n")
            }
        }
    }
}
