import ArgumentParser
import Chat
import Foundation
import ModelFiles
import Templates

extension Nibble {
    struct Template: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a conversation rendered with a chat template, exactly as the model would see it.",
            discussion: """
                The template is the model's tokenizer.chat_template unless --template names one of \
                Prompts/templates (chatml, llama2, llama3, gemma, mistral, …) or a .jinja file. \
                It is rendered as transformers' apply_chat_template does (tools undefined); the text is \
                printed with no newline added.
                """)

        @Option(help: "A JSON array of {\"role\", \"content\"} objects (extra keys reach the template too).")
        var messages: String

        @Flag(help: "End with the header of the assistant's turn (add_generation_prompt).")
        var addGenerationPrompt = false

        @Option(help: "A fallback template name or a .jinja file (default: the model's own template).")
        var template: String?

        @Option(help: "The bos_token string (default: the model's BOS token, or empty).")
        var bosToken: String?

        @Option(help: "The eos_token string (default: the model's EOS token, or empty).")
        var eosToken: String?

        @Option(help: "The time strftime_now formats, ISO 8601 such as 2026-11-25T16:00:00Z (default: $NIBBLE_NOW, else now).")
        var now: String?

        @Option(help: "A GGUF model: its chat template and special tokens (default: the installed SmolLM2-135M-Instruct; optional with --template).")
        var model: String?

        func validate() throws {
            if let now, Template.parseDate(now) == nil {
                throw ValidationError("--now: '\(now)' is not an ISO 8601 time such as 2026-11-25T16:00:00Z")
            }
        }

        func run() throws {
            let conversation = try readMessages()
            var chatTemplate: ChatTemplate?
            if let template {
                do {
                    chatTemplate = try PromptLibrary.template(template)
                } catch let error as PromptLibrary.NotFound {
                    throw CLIError("--template: \(error.description)")
                } catch let error as TemplateError {
                    throw CLIError(describe(error, in: template))
                }
            }
            var bos = bosToken, eos = eosToken
            // The model: for its template (no --template) and its special tokens.
            if model != nil || chatTemplate == nil {
                let path = try modelPath()
                let file = try ModelSources.open(path)  // its errors name the file
                if chatTemplate == nil {
                    guard let source = file.string("tokenizer.chat_template") else {
                        throw CLIError("\(path): the model has no tokenizer.chat_template",
                                       hint: "pass --template NAME or FILE (\(PromptLibrary.templateNames().joined(separator: ", ")))")
                    }
                    do {
                        chatTemplate = try ChatTemplate(source: source, name: "\(path)#chat_template")
                    } catch let error as TemplateError {
                        throw CLIError(describe(error, in: "\(path)#chat_template"))
                    }
                }
                let tokens = file.stringArray("tokenizer.ggml.tokens") ?? []
                func token(_ key: String) -> String {
                    guard let id = file.int(key), tokens.indices.contains(id) else { return "" }
                    return tokens[id]
                }
                bos = bos ?? token("tokenizer.ggml.bos_token_id")
                eos = eos ?? token("tokenizer.ggml.eos_token_id")
            }
            guard let chatTemplate else { return }
            let (date, zone) = try renderTime()
            let context = ChatTemplate.context(messages: conversation, addGenerationPrompt: addGenerationPrompt,
                                               bosToken: bos ?? "", eosToken: eos ?? "")
            do {
                Terminal.write(Terminal.output(try chatTemplate.render(context: context, now: date, timeZone: zone)))
            } catch let error as TemplateError {
                throw CLIError(describe(error, in: chatTemplate.name))
            }
        }

        /// The first line names the template: "chatml.jinja:3:7: …", or for
        /// raise_exception "chatml.jinja: <the template's message>".
        private func describe(_ error: TemplateError, in name: String) -> String {
            error.kind == .raised ? "\(name): \(error.message)" : error.description
        }

        private func modelPath() throws -> String {
            if let model { return model }
            let path = ModelOptions.defaultModelPath
            guard FileManager.default.fileExists(atPath: path) else {
                throw CLIError("no --model or --template given and the default model is not installed at \(path)",
                               hint: "run `make model`, or pass --model FILE.gguf or --template NAME")
            }
            return path
        }

        private func readMessages() throws -> Value {
            guard let data = FileManager.default.contents(atPath: messages) else {
                throw CLIError("\(messages): cannot read the messages file")
            }
            var value: Value
            do { value = try Value(json: data) } catch { throw CLIError("\(messages): invalid JSON: \(error)") }
            // A Nibble conversation file: its messages, as the chat sends them.
            if case .object(let object) = value, case .string(Conversation.formatName)? = object["format"] {
                let conversation = try Conversation.decode(data, path: messages)
                value = .array(conversation.messages.map { .object(["role": .string($0.role.rawValue), "content": .string($0.content)]) })
            }
            guard case .array(let items) = value else {
                throw CLIError("\(messages): expected a JSON array of {\"role\", \"content\"} objects, or a Nibble conversation file")
            }
            for (index, item) in items.enumerated() {
                guard case .object(let object) = item, case .string = object["role"] ?? .none else {
                    throw CLIError("\(messages): message \(index + 1) is not an object with a string \"role\"")
                }
            }
            return value
        }

        /// `--now`, else $NIBBLE_NOW, else the current time; rendered in the time zone the
        /// ISO 8601 text gives (so "…T16:00:00Z" prints 16:00 anywhere), or the local one.
        private func renderTime() throws -> (Date, TimeZone) {
            if let now, let parsed = Template.parseDate(now) { return parsed }
            if let env = ProcessInfo.processInfo.environment["NIBBLE_NOW"], !env.isEmpty {
                guard let parsed = Template.parseDate(env) else {
                    throw CLIError("NIBBLE_NOW: '\(env)' is not an ISO 8601 time such as 2026-11-25T16:00:00Z")
                }
                return parsed
            }
            return (Date(), .current)
        }

        /// An ISO 8601 time (`2026-11-25T16:00:00Z`, `…+01:00`, fractions) or a date alone
        /// (midnight UTC), read by Chat's parser (ICU's crashed on malformed input).
        static func parseDate(_ text: String) -> (Date, TimeZone)? {
            if let date = ISO8601.date(from: text) { return (date, zone(of: text)) }
            if text.utf8.count == 10, let date = ISO8601.date(from: text + "T00:00:00Z") { return (date, zone(of: "Z")) }
            return nil
        }

        /// The offset written at the end of an ISO 8601 time ("Z", "+01:00"); UTC if none.
        private static func zone(of text: String) -> TimeZone {
            let utc = TimeZone(identifier: "UTC")!
            guard text.count > 10, !text.hasSuffix("Z"), !text.hasSuffix("z") else { return utc }
            let tail = text.suffix(6)
            guard let sign = tail.first, sign == "+" || sign == "-" else { return utc }
            let parts = tail.dropFirst().split(separator: ":")
            guard parts.count == 2, let h = Int(parts[0]), let m = Int(parts[1]) else { return utc }
            return TimeZone(secondsFromGMT: (sign == "-" ? -1 : 1) * (h * 3600 + m * 60)) ?? utc
        }
    }
}
