import ArgumentParser
import Chat
import Foundation
import Inference
import Remote

extension Nibble {
    /// The chat REPL (the default command): history, chat template, streamed replies,
    /// slash commands. Script mode when stdin is not a terminal.
    struct Chat: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Talk to the model (the default command). /help inside lists the commands.")

        @OptionGroup var model: ModelOptions
        @OptionGroup var sampling: SamplingOptions
        @Option(name: .customLong("max-tokens"), help: "Longest reply, in tokens.") var maxTokens: Int = 512
        @Option(help: "Resume a saved conversation.") var load: String?
        @Option(help: "Replay a saved conversation non-interactively (at --precision) and report which replies change.") var replay: String?
        @Option(help: "The system prompt.") var system: String?
        @Option(help: "A chat template: a name from Prompts/templates (chatml, llama2, llama3, gemma, mistral) or a .jinja file.") var template: String?
        @Option(name: .customLong("server"), help: ArgumentHelp("An OpenAI-compatible server (llama-server, vLLM, Ollama): URL or NAME=URL; repeatable. The chat starts on its first model unless --model is given.", valueName: "[NAME=]URL"))
        var servers: [String] = []
        @Option(name: .customLong("api-key-env"), help: ArgumentHelp("The environment variable holding the servers' API key (sent as a bearer token, written nowhere).", valueName: "VAR"))
        var apiKeyEnv: String?
        @Flag(name: .customLong("no-history"), help: "Do not read or write the history of typed lines (also NIBBLE_NO_HISTORY=1).") var noHistory = false

        func validate() throws {
            do {
                try ChatSettings.check("max_tokens", Double(maxTokens))
            } catch let error as ChatError {
                throw ValidationError("--" + error.message.replacingOccurrences(of: "_", with: "-"))
            }
            if load != nil && replay != nil { throw ValidationError("--load and --replay cannot be used together") }
        }

        func run() throws {
            // Files first, so a typo fails before the model loads.
            let loaded = try load.map { try Conversation.load(from: UserPaths.expandingTilde($0)) }
            let replayed = try replay.map { try Conversation.load(from: UserPaths.expandingTilde($0)) }
            var conversation = loaded ?? Conversation()
            if let system { conversation.systemPrompt = system }

            let served: ServedModels
            do {
                served = try ServedModels(arguments: servers, apiKeyVariable: apiKeyEnv)
            } catch let error as RemoteError {
                throw CLIError(error.description)
            }
            // With servers, the chat starts on the first served model that answers; the local
            // file (--model, else the default one) is what /model PATH, /compare and /replay
            // at a precision use, and the chat starts on it only when no server answers.
            let path = served.isEmpty ? try model.modelPath() : ((try? model.modelPath()) ?? ModelOptions.defaultModelPath)
            let settings = EngineSettings(path: path, precision: model.precision, threads: model.threads,
                                          context: model.context ?? loaded?.settings.context, memoryLimit: try model.memoryLimitBytes(),
                                          adapter: model.adapter, kvCache: model.kvCache)
            // Every server is asked for its models; one that does not answer is one line, not the end.
            let failures = served.refreshAll(shouldStop: { Interrupt.shared.isSet })
            for failure in failures { Terminal.writeError(Style.red("error: ") + Terminal.visible(failure.description) + "\n") }
            let start: any Generator
            if let first = served.firstAvailable {
                start = first
            } else {
                if !served.isEmpty {
                    Terminal.writeError(Style.dim("no server answered: starting on the local model \(path)") + "\n")
                }
                start = try LocalEngine(settings: settings)
            }
            let session = try ChatSession(generator: start, settings: settings, templateOverride: template, conversation: conversation)
            if loaded == nil {
                // Nibble's defaults, then the model's own generation settings, then the flags.
                var chatSettings = ChatSettings(modelDefaults: session.local?.samplingDefaults ?? [:])
                chatSettings.maxTokens = maxTokens
                chatSettings.context = model.context
                session.conversation.settings = sampling.applied(to: chatSettings)
            }
            session.renderShouldStop = { Interrupt.shared.isSet }
            let interactive = isatty(STDIN_FILENO) != 0
            let repl = ChatREPL(session: session, served: served, input: makeLineInput(historyFile: LineInputHistory.defaultPath(disabled: noHistory), completer: ChatREPL.completions),
                                interactive: interactive)
            if let warning = ModelOptions.precisionWarning(session.local) { repl.note(warning) }
            if let warning = session.templateWarning { repl.fail(warning) }

            if let replayed {
                _ = try repl.runReplay(replayed, precision: nil)
                return
            }
            session.autosave = Autosave(folder: UserPaths.sessionsFolder)
            if interactive {
                let d = session.descriptor
                let model = if let local = session.local { "\(d.name) at \(d.precision ?? "?"), \(local.contextLength)-token context" }
                    else { "\(d.name) on \(d.server ?? "a server")" }
                repl.note("\(model) · /help for commands · Ctrl-D to quit")
            }
            if let loaded, let load { repl.say(ChatREPL.describeLoaded(loaded, path: load)) }
            let input = repl.input
            Interrupt.shared.watchTermination { _ in
                // At the prompt: every turn is autosaved already; keep the typed history
                // and give the terminal back (the exit handlers restore its mode).
                input.saveHistory()
                Terminal.write("\n")
            }
            // stdout gone (closed pipe, terminal, full disk): stop the reply, save, end.
            Terminal.outputClosed = { status in Interrupt.shared.end(status: status) }
            repl.run()
            if let status = Interrupt.shared.terminationStatus { throw ExitCode(status) }
        }
    }
}
