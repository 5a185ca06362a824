import Chat
import Foundation
import Inference
import Quantization
import Templates
import Tokenizers

/// The chat loop: reads entries, runs slash commands, sends everything else to the model
/// and streams the reply. Every failure of a command prints one line and the loop goes on
/// with the model and history it had.
final class ChatREPL {
    let session: ChatSession
    /// The servers of `--server` and their models.
    let served: ServedModels
    let input: LineInput
    /// stdin is a terminal: prompts, colours, the edit line.
    let interactive: Bool
    private var textForNextPrompt: String?
    /// Ctrl-Cs in a row at an empty prompt (the second hints at how to leave).
    private var emptyInterrupts = 0
    private var done = false
    /// "reading 566 tokens of history at q8 …", "packing weights for nf4 …" (stderr).
    let progress = ProgressLine()

    init(session: ChatSession, served: ServedModels, input: LineInput, interactive: Bool) {
        self.session = session
        self.served = served
        Self.servedNames = served.completionNames
        self.input = input
        self.interactive = interactive
    }

    // MARK: - Output

    // Text from files and the model (names, messages, replies, templates, errors quoting
    // them) is shown through `Terminal.visible`: it cannot drive the terminal.

    /// A line of information (stdout).
    func say(_ text: String) { Terminal.write(Terminal.visible(text) + "\n") }
    /// A line already styled by us, whose parts from outside went through `visible`.
    func sayStyled(_ text: String) { Terminal.write(text + "\n") }
    /// A line of dim detail.
    func note(_ text: String) { Terminal.write(Style.dim(Terminal.visible(text)) + "\n") }
    /// One line saying what went wrong (stderr); the session goes on.
    func fail(_ text: String) { Terminal.writeError(Style.red("error: ") + Terminal.visible(text) + "\n") }

    func run() {
        while !done {
            guard let event = Interrupt.shared.waitingForInput({ input.read(prompt: Style.prompt, initialText: textForNextPrompt) }) else { break }
            textForNextPrompt = nil
            if case .interrupted(emptyLine: true) = event { emptyInterrupts += 1 } else { emptyInterrupts = 0 }
            switch event {
            case .endOfInput:
                done = true
                if interactive, let path = session.autosavePath { note("the conversation is saved in \(path)") }
            case .interrupted:
                // Ctrl-C at an empty prompt does nothing; someone pressing it again wants out.
                if emptyInterrupts >= 2 { note("(press Ctrl-D or type /quit to leave)") }
                continue
            case let .line(entry):
                // Ctrl-C counts from here: one pressed right after Enter stops what the
                // entry starts (a Ctrl-C before, at the prompt, was a key, not a signal).
                Interrupt.shared.reset()
                input.remember(entry)
                input.saveHistory()
                handle(entry)
                // SIGTERM/SIGHUP mid-command: what was in flight is kept and saved; end.
                if Interrupt.shared.terminationStatus != nil { done = true }
            }
        }
        input.saveHistory()
    }

    func handle(_ entry: String) {
        let trimmed = entry.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return }
        if trimmed.hasPrefix("/") && !trimmed.hasPrefix("//") {
            runCommand(trimmed)
        } else {
            // "//text" sends "/text".
            send(trimmed.hasPrefix("//") ? String(entry.drop { $0 != "/" }.dropFirst()) : entry)
        }
    }

    // MARK: - Turns

    private func send(_ text: String) {
        generate {
            let reply = try self.session.send(text, shouldStop: { Interrupt.shared.isSet }, events: self.show)
            if reply.isEmptyInterruption, self.interactive { self.textForNextPrompt = text }
            return reply
        }
    }

    /// Runs one generation (Ctrl-C is armed from the moment the entry was read), then
    /// ends the reply's line.
    private func generate(_ body: @escaping () throws -> Message?) {
        do {
            let reply = try body()
            progress.end()
            if let reply { finishReply(reply) }
        } catch {
            progress.end()
            endLine()
            fail("\(error)")
        }
        Interrupt.shared.reset()
    }

    private func show(_ event: ChatEvent) {
        switch event {
        case let .text(piece):
            progress.end()
            guard !piece.isEmpty else { return }
            Terminal.write(Terminal.visible(piece))
        case let .notice(line):
            progress.end()
            endLine()
            note(line)
        case let .progress(text):
            progress.start(text)
        }
    }

    private func endLine() {
        if !Terminal.atLineStart { Terminal.write("\n") }
    }

    private func finishReply(_ reply: Message) {
        endLine()
        if reply.isEmptyInterruption {
            note(interactive ? "[stopped before the reply began: the message is back on the edit line]"
                             : "[stopped before the reply began: nothing was kept]")
        } else if reply.stats?.interrupted == true {
            note("[interrupted: the partial reply is kept]")
        } else if reply.stats?.stopReason == "length" {
            note("[stopped at \(reply.stats?.generatedTokens ?? 0) tokens: /set max_tokens N allows longer replies]")
        }
    }

    // MARK: - Commands

    struct Command {
        enum Argument { case none, text, precision, setting, preset, path, model, replay, compare }
        let names: [String]
        let usage: String
        let summary: String
        let argument: Argument
        let run: (ChatREPL, String) throws -> Void
    }

    static let commands: [Command] = [
        Command(names: ["/help", "/?"], usage: "/help", summary: "list the commands", argument: .none) { repl, _ in repl.help() },
        Command(names: ["/model"], usage: "/model [PATH|NAME|NAME/MODEL]", summary: "load another model file or switch to a served model (the conversation stays); alone: every model there is", argument: .model) { repl, arg in try repl.loadModel(arg) },
        Command(names: ["/adapter"], usage: "/adapter [PATH|off]", summary: "put a LoRA adapter on (a PEFT folder or a GGUF LoRA file), take it off, or show the one in use", argument: .path) { repl, arg in try repl.adapter(arg) },
        Command(names: ["/reload"], usage: "/reload", summary: "read the model file again", argument: .none) { repl, _ in try repl.reload() },
        Command(names: ["/precision"], usage: "/precision [NAME]", summary: "switch precision (f32 f16 bf16 q8 q4 nf4 q2 native auto; 32 16 8 4 2, where 16 = bf16), or list them with their memory", argument: .precision) { repl, arg in try repl.precision(arg) },
        Command(names: ["/system"], usage: "/system [TEXT|none]", summary: "show or set the system prompt", argument: .text) { repl, arg in repl.system(arg) },
        Command(names: ["/prompt"], usage: "/prompt [NAME]", summary: "use a system-prompt preset from Prompts/, or list them", argument: .preset) { repl, arg in try repl.preset(arg) },
        Command(names: ["/set"], usage: "/set [PARAM VALUE]", summary: "show or change a setting (temperature, top_k, top_p, min_p, repeat_penalty, seed, max_tokens, context)", argument: .setting) { repl, arg in try repl.set(arg) },
        Command(names: ["/show"], usage: "/show", summary: "model, precision, memory, context use and settings", argument: .none) { repl, _ in repl.showState() },
        Command(names: ["/stats"], usage: "/stats", summary: "numbers of the last reply", argument: .none) { repl, _ in repl.stats() },
        Command(names: ["/retry"], usage: "/retry", summary: "generate the last reply again", argument: .none) { repl, _ in repl.retry() },
        Command(names: ["/undo"], usage: "/undo", summary: "drop the last exchange and put its message back on the edit line", argument: .none) { repl, _ in repl.undo() },
        Command(names: ["/clear"], usage: "/clear", summary: "forget the messages (the system prompt stays)", argument: .none) { repl, _ in try repl.clear() },
        Command(names: ["/save"], usage: "/save [FILE]", summary: "save the conversation as JSON (/save! FILE replaces a file that is not an earlier save of it)", argument: .path) { repl, arg in try repl.save(arg) },
        Command(names: ["/load"], usage: "/load FILE", summary: "load a saved conversation", argument: .path) { repl, arg in try repl.load(arg) },
        Command(names: ["/replay"], usage: "/replay [FILE] [--model M] [--precision P] [--adapter PATH|off] [--greedy]", summary: "re-run each user turn (on model M: a file or a served model; at P, with the adapter and seed its reply was written with, or the ones given) and show which replies change", argument: .replay) { repl, arg in try repl.replay(arg) },
        Command(names: ["/compare"], usage: "/compare A B [TEXT]", summary: "answer the same message on two of: local precisions and served models (NAME, NAME/MODEL), with memory and speed", argument: .compare) { repl, arg in try repl.compare(arg) },
        Command(names: ["/export"], usage: "/export [FILE.md]", summary: "write a Markdown transcript (default: in the sessions folder; /export! FILE.md replaces another file)", argument: .path) { repl, arg in try repl.export(arg) },
        Command(names: ["/template"], usage: "/template [TEXT]", summary: "print the exact prompt the model would get next", argument: .text) { repl, arg in try repl.showTemplate(arg) },
        Command(names: ["/tokens"], usage: "/tokens [TEXT]", summary: "TEXT's tokens as id 'piece'; alone: how many tokens the next prompt takes", argument: .text) { repl, arg in try repl.showTokens(arg) },
        Command(names: ["/quit", "/exit", "/bye"], usage: "/quit", summary: "save the history and leave; Ctrl-D does the same", argument: .none) { repl, _ in repl.done = true },
    ]

    static var commandNames: [String] { commands.flatMap(\.names) }

    /// Commands that replace files take `!` (`/save! FILE`) to replace one that is not theirs.
    static let forceable: Set<String> = ["/save", "/export"]

    private func runCommand(_ line: String) {
        var name = String(line.prefix { !$0.isWhitespace }).lowercased()
        var argument = line.dropFirst(name.count).trimmingCharacters(in: .whitespaces)
        if name.hasSuffix("!"), Self.forceable.contains(String(name.dropLast())) {
            name.removeLast()
            argument = "--force " + argument
        }
        guard let command = Self.commands.first(where: { $0.names.contains(name) }) else {
            let hint = closest(to: name, in: Self.commands.map { $0.names[0] }).map { "; did you mean \($0)?" } ?? ""
            fail("unknown command \(name)\(hint) (/help lists them)")
            return
        }
        if command.argument == .none, !argument.isEmpty {
            fail("\(command.names[0]) takes no argument (usage: \(command.usage))")
            return
        }
        do {
            try command.run(self, argument)
        } catch {
            fail("\(error)")
        }
    }

    private func help() {
        let width = Self.commands.map(\.usage.count).max() ?? 0
        for command in Self.commands {
            let aliases = command.names.count > 1 ? " (also \(command.names.dropFirst().joined(separator: ", ")))" : ""
            say(command.usage.padding(toLength: width + 2, withPad: " ", startingAt: 0) + command.summary + aliases)
        }
        say("Anything else is sent to the model. End a line with \\ to continue it; \"\"\" opens and closes a block.")
    }

    // MARK: Model and precision

    private func describeModel() -> String {
        let d = session.descriptor
        switch d.location {
        case let .local(_, precision): return "\(d.name) at \(precision)"
        case let .server(url, _): return "\(d.name) on \(url)"
        }
    }

    /// Where the model is: its file, or its server.
    private var modelLocation: String {
        switch session.descriptor.location {
        case let .local(path, _): path
        case let .server(url, _): url
        }
    }

    private func loadModel(_ path: String) throws {
        guard !path.isEmpty else {
            listModels()
            return
        }
        if let generator = try progress.run("asking the servers", { try served.resolve(path, shouldStop: { Interrupt.shared.isSet }, notice: note) }) {
            Self.servedNames = served.completionNames
            try session.use(generator)
            say("now on \(describeModel()) (template: \(session.templateOrigin))")
            return
        }
        Self.servedNames = served.completionNames
        let notice = try progress.run("loading \(path)") { try session.loadModel(path: UserPaths.expandingTilde(path)) }
        say("loaded \(describeModel()) (template: \(session.templateOrigin))")
        if let notice { note(notice) }
        if let warning = session.templateWarning { fail(warning) }
        if let warning = ModelOptions.precisionWarning(session.local) { note(warning) }
    }

    /// `/model` alone: the local file and every served model (each server asked now); a
    /// server that does not answer is one line saying so.
    private func listModels() {
        if served.isEmpty {
            say("model: \(describeModel()) — \(modelLocation) (/model PATH loads another; nibble chat --server [NAME=]URL adds served models)")
            return
        }
        let d = session.descriptor
        let marker = { (on: Bool) in on ? "*" : " " }
        say("models (* in use):")
        if let local = session.local, case let .local(path, precision) = d.location {
            say(" * \(d.name) at \(precision), \(local.contextLength)-token context — \(path)")
        } else {
            let path = session.engineSettings.path
            say("   local file \(path)" + (FileManager.default.fileExists(atPath: path) ? "" : " (not found)") + " — /model PATH loads it")
        }
        _ = progress.run("asking the servers") { served.refreshAll(shouldStop: { Interrupt.shared.isSet }) }
        Self.servedNames = served.completionNames
        for server in served.servers {
            if let failure = server.failure {
                say("   \(server.label): \(failure.description)")
                continue
            }
            if server.models.isEmpty { say("   \(server.label): \(server.endpoint.displayURL) lists no model") }
            for model in server.models {
                let on = d.server == server.endpoint.displayURL && d.name == model
                let name = server.models.count == 1 ? server.label : server.label + "/" + model
                say(" \(marker(on)) \(name) — \(model) on \(server.endpoint.displayURL)")
            }
            if d.server == server.endpoint.displayURL, !server.models.contains(d.name) {
                say(" * \(server.label)/\(d.name) — \(d.name) on \(server.endpoint.displayURL) (not in the server's list)")
            }
        }
        say("switch with /model NAME, /model NAME/MODEL or /model PATH")
    }

    private func adapter(_ argument: String) throws {
        let model = try session.localModel(for: "/adapter")
        if argument.isEmpty {
            if let a = model.adapter {
                say("adapter: \(Terminal.visible(a.path)) (\(a.format), \(a.weightCount) weights, rank ≤ \(a.maxRank), \(Self.megabytes(a.byteCount)), sha256 \(a.sha256.prefix(12))…)")
                say("/adapter off takes it off")
            } else {
                say("adapter: none (/adapter PATH puts a PEFT folder or GGUF LoRA file on)")
            }
            return
        }
        if argument.lowercased() == "off" || argument.lowercased() == "none" {
            guard let a = model.adapter else {
                say("adapter: already none")
                return
            }
            try session.setAdapter(nil)
            say("adapter off (was \(Terminal.visible(a.path)))")
            return
        }
        let path = UserPaths.expandingTilde(argument)
        try progress.run("reading \(argument)") { try session.setAdapter(path) }
        guard let a = model.adapter else { throw ChatError("\(argument): the adapter did not stay on") }
        say("adapter on: \(Terminal.visible(a.path)) (\(a.format), \(a.weightCount) weights, rank ≤ \(a.maxRank), \(Self.megabytes(a.byteCount)))")
    }

    private func reload() throws {
        try progress.run("reading the model again") { try session.reload() }
        say("reloaded \(describeModel())")
    }

    /// The precision names a local model takes.
    static var localPrecisionNames: String { Precision.allCases.map(\.rawValue).joined(separator: " ") }

    private func precision(_ argument: String) throws {
        if session.local == nil {
            let d = session.descriptor
            let local = "local precisions: \(Self.localPrecisionNames) (for \(session.engineSettings.path), /model PATH)"
            if argument.isEmpty {
                say("precision: chosen by the server \(d.server ?? "?") for \(d.name)")
                say(local)
                return
            }
            throw ChatError("\(d.name) is served by \(d.server ?? "a server"), which chose its precision; \(local)")
        }
        let model = try session.localModel(for: "/precision")
        let current = model.descriptor.precision ?? "?"
        if argument.isEmpty {
            say("precision: \(current) (the file stores \(model.storedFormats))")
            for f in model.precisionOptions {
                let marker = f.name == current ? "*" : " "
                let versus = f.versusFile.map { ", \($0.phrase)" } ?? ""
                say(" \(marker) \(f.name.padding(toLength: 6, withPad: " ", startingAt: 0)) \(Self.megabytes(f.totalBytes).leftPadded(9)) total, weights \(Self.megabytes(f.weightBytes))\(versus)\(f.fits ? "" : "  (does not fit)")")
            }
            say("switch with /precision NAME (aliases 32 16 8 4 2; native, auto)")
            return
        }
        guard let precision = Precision(argument: argument) else {
            throw ChatError("unknown precision '\(argument)' (one of: \(Precision.allCases.map(\.rawValue).joined(separator: ", ")); aliases 32, 16, 8, 4, 2)")
        }
        let clock = ContinuousClock()
        let started = clock.now
        let before = (name: current, weightBytes: model.memory.weightBytes)
        do {
            _ = try progress.run("packing weights for \(precision.rawValue)") {
                try session.setPrecision(precision, shouldStop: { Interrupt.shared.isSet })
            }
        } catch EngineError.cancelled {
            throw ChatError("precision switch stopped: still at \(before.name)")
        }
        let seconds = (clock.now - started).seconds
        let after = (name: model.descriptor.precision ?? "?", weightBytes: model.memory.weightBytes)
        if after == before {
            say("precision: already \(after.name)")
        } else {
            say("precision: \(before.name) → \(after.name), weights \(Self.megabytes(after.weightBytes)), \(String(format: "%.2f", seconds)) s")
        }
        if let warning = ModelOptions.precisionWarning(model) { note(warning) }
    }

    // MARK: Conversation

    private func system(_ text: String) {
        if text.isEmpty {
            if let prompt = session.conversation.systemPrompt {
                say("system prompt: \(prompt)")
            } else if let builtIn = session.templateDefaultSystemPrompt() {
                say("no system prompt of yours; the model's template adds its own: \(builtIn)")
                note("/system TEXT replaces it for this conversation")
            } else {
                say("no system prompt (set one with /system TEXT or /prompt NAME)")
            }
        } else if text == "none" {
            session.conversation.systemPrompt = nil
            say("system prompt removed")
        } else {
            session.conversation.systemPrompt = text
            say("system prompt set")
        }
    }

    private func preset(_ name: String) throws {
        if name.isEmpty {
            let names = PromptLibrary.presetNames()
            if names.isEmpty { say("no presets found (Prompts/*.md)") }
            let width = names.map(\.count).max() ?? 0
            for name in names {
                let first = (try? PromptLibrary.preset(name))?.split(separator: "\n").first.map(String.init) ?? ""
                say("  " + name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + Self.oneLine(first, limit: 70))
            }
            if !names.isEmpty { say("use one with /prompt NAME") }
            return
        }
        let text = try PromptLibrary.preset(name)
        session.conversation.systemPrompt = text.trimmingCharacters(in: .whitespacesAndNewlines)
        say("system prompt: preset '\(name)'")
    }

    private func set(_ argument: String) throws {
        let parts = argument.split(separator: " ", maxSplits: 1).map(String.init)
        if parts.isEmpty {
            for (name, value) in session.conversation.settings.described { say("\(name.padding(toLength: 15, withPad: " ", startingAt: 0)) \(value)") }
            return
        }
        guard parts.count == 2 else { throw ChatError("usage: /set PARAM VALUE (/set alone lists them)") }
        let name = parts[0].lowercased().replacingOccurrences(of: "-", with: "_")
        var settings = session.conversation.settings
        try settings.set(name, to: parts[1].trimmingCharacters(in: .whitespaces))
        if name == "context", settings.context != session.engineSettings.context {
            try session.setContext(settings.context)
        }
        session.conversation.settings = settings
        let window = session.local.map { " (\($0.contextLength) tokens)" } ?? ""
        say("\(name) = \(settings.described.first { $0.0 == name }!.1)" + (name == "context" ? window : ""))
        if name == "context", let context = settings.context, let trained = session.local?.trainedContext, context > trained {
            note("the model was trained on \(trained) tokens: beyond that its replies may degrade")
        }
    }

    private func retry() {
        guard session.conversation.turns.contains(where: { $0.role == .user }) else {
            fail("nothing to retry yet")
            return
        }
        generate { try self.session.retry(shouldStop: { Interrupt.shared.isSet }, events: self.show) }
    }

    private func undo() {
        guard let text = session.undo() else {
            fail("nothing to undo")
            return
        }
        if interactive {
            textForNextPrompt = text
            note("removed the last exchange; its message is back on the edit line")
        } else {
            say("removed the last exchange")
        }
    }

    private func clear() throws {
        let previous = try session.clear()
        say("conversation cleared" + (session.conversation.systemPrompt == nil ? "" : " (the system prompt stays)"))
        if let previous { note("the previous turns are in \(previous)") }
    }

    // MARK: Files

    /// `[--force] [PATH]` of `/save` and `/export`, with `~` expanded.
    static func fileArgument(_ argument: String) -> (path: String?, force: Bool) {
        var rest = Substring(argument)
        var force = false
        if rest == "--force" || rest.hasPrefix("--force ") {
            force = true
            rest = rest.dropFirst("--force".count).drop { $0 == " " }
        }
        return (rest.isEmpty ? nil : UserPaths.expandingTilde(String(rest)), force)
    }

    private func save(_ argument: String) throws {
        let path = try writeFile(argument, command: "/save", defaultExtension: "json") { path, force in
            try self.session.conversation.save(to: path, force: force)
        }
        say("saved \(session.conversation.messages.count) messages to \(path)")
    }

    /// `/save` and `/export`: `[--force] [PATH]` (default: a new name in the sessions
    /// folder); a refusal to replace another file says how to force it. Returns the path.
    private func writeFile(_ argument: String, command: String, defaultExtension: String,
                           _ write: (String, Bool) throws -> Void) throws -> String {
        let (given, force) = Self.fileArgument(argument)
        let path: String
        if let given {
            path = given
        } else {
            try UserPaths.makePrivateFolder(UserPaths.sessionsFolder)
            path = UserPaths.sessionsFolder + "/" + Self.defaultFileName(extension: defaultExtension)
        }
        do {
            try write(path, force)
        } catch let error as ChatError where !force && error.message.hasSuffix("not an earlier save of this conversation") {
            throw ChatError(error.message + "; \(command)! \(given ?? path) replaces it")
        }
        return path
    }

    static func defaultFileName(_ date: Date = Date(), extension ext: String = "json") -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyyMMdd-HHmmss"
        return "nibble-\(f.string(from: date)).\(ext)"
    }

    private func load(_ argument: String) throws {
        guard !argument.isEmpty else { throw ChatError("usage: /load FILE") }
        let loaded = try Conversation.load(from: UserPaths.expandingTilde(argument))
        let previous = try session.replaceConversation(loaded)
        say(Self.describeLoaded(loaded, path: argument))
        if let previous { note("the previous turns are in \(previous)") }
    }

    static func describeLoaded(_ c: Conversation, path: String) -> String {
        let turns = c.messages.filter { $0.role == .user }.count
        var line = "loaded \(path): \(turns) user turn\(turns == 1 ? "" : "s")"
        if let model = c.model { line += ", recorded with \(model.name)" + (c.precision.map { " at \($0)" } ?? "") }
        return line
    }

    private func export(_ argument: String) throws {
        let path = try writeFile(argument, command: "/export", defaultExtension: "md") { path, force in
            try self.session.conversation.export(to: path, force: force)
        }
        say("exported the transcript to \(path)")
    }

    // MARK: Replay and compare

    private func replay(_ argument: String) throws {
        var words = argument.split(separator: " ").map(String.init)
        var precision: Precision?
        let greedy = words.contains("--greedy")
        words.removeAll { $0 == "--greedy" }
        var adapter = ChatSession.ReplayAdapter.asRecorded
        if let flag = words.firstIndex(of: "--adapter") {
            guard words.indices.contains(flag + 1) else { throw ChatError("usage: /replay [FILE] [--precision P] [--adapter PATH|off] [--greedy]") }
            let value = words[flag + 1]
            adapter = .fixed(value.lowercased() == "off" || value.lowercased() == "none" ? nil : UserPaths.expandingTilde(value))
            words.removeSubrange(flag...(flag + 1))
        }
        if let flag = words.firstIndex(where: { $0 == "--precision" || $0.hasPrefix("--precision=") }) {
            let value: String
            if words[flag].hasPrefix("--precision=") {
                value = String(words[flag].dropFirst("--precision=".count))
            } else {
                guard words.indices.contains(flag + 1) else { throw ChatError("usage: /replay [FILE] [--precision P]") }
                value = words[flag + 1]
                words.remove(at: flag + 1)
            }
            words.remove(at: flag)
            guard let p = Precision(argument: value) else {
                throw ChatError("unknown precision '\(value)' (one of: \(Precision.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            precision = p
        }
        var target: (any Generator)?
        if let flag = words.firstIndex(of: "--model") {
            guard words.indices.contains(flag + 1) else { throw ChatError("usage: /replay [FILE] [--model M] [--precision P]") }
            let value = words[flag + 1]
            words.removeSubrange(flag...(flag + 1))
            target = try model(named: value, precision: precision)
        }
        guard words.count <= 1 else { throw ChatError("usage: /replay [FILE] [--model M] [--precision P] [--adapter PATH|off] [--greedy]") }
        let recorded = try words.first.map { try Conversation.load(from: UserPaths.expandingTilde($0)) } ?? session.conversation
        try runReplay(recorded, on: target, precision: precision, adapter: adapter, greedy: greedy)
    }

    /// A served model by name, else a model file loaded (at `precision`) beside the one in use.
    private func model(named name: String, precision: Precision?) throws -> any Generator {
        if let generator = try progress.run("asking the servers", { try served.resolve(name, shouldStop: { Interrupt.shared.isSet }, notice: note) }) {
            return generator
        }
        let path = UserPaths.expandingTilde(name)
        guard FileManager.default.fileExists(atPath: path) else {
            let names = served.completionNames
            throw ChatError("\(name): no such model file" + (names.isEmpty ? "" : " and no served model of that name (\(names.joined(separator: ", ")))"))
        }
        if case let .local(current, _) = session.descriptor.location, current == path, let local = session.local { return local }
        return try progress.run("loading \(name)") { try session.loadLocal(path: path, precision: precision) }
    }

    /// Replays `recorded`, printing each turn and a summary line; returns how many changed.
    @discardableResult
    func runReplay(_ recorded: Conversation, on target: (any Generator)? = nil, precision: Precision?,
                   adapter: ChatSession.ReplayAdapter = .asRecorded, greedy: Bool = false) throws -> (changed: Int, total: Int) {
        guard recorded.messages.contains(where: { $0.role == .user }) else { throw ChatError("nothing to replay: the conversation has no user turns") }
        defer { Interrupt.shared.reset() }
        // The model it runs on: the one given, else the one in use (the local file when a
        // precision is asked for while a served model is in use).
        var runsOn = target ?? session.generator
        if precision != nil, !(runsOn is any TokenGenerator) {
            runsOn = try progress.run("loading \(session.engineSettings.path)") { try session.localModelOrLoad() }
        }
        let label: String
        if let model = runsOn as? any TokenGenerator {
            label = "at " + ((precision.flatMap { try? model.resolve($0) } ?? model.format).rawValue)
        } else {
            label = "on \(runsOn.descriptor.name) (\(runsOn.descriptor.server ?? "served"))"
        }
        let backAt = precision != nil && runsOn === session.generator
        let turns = try session.replay(recorded, on: runsOn, precision: precision, adapter: adapter, greedy: greedy, shouldStop: { Interrupt.shared.isSet },
            onTurnStart: { number, user, old in
                self.endLine()
                self.sayStyled(Style.bold("turn \(number)") + ": " + Self.oneLine(user, limit: 70))
                if let old {
                    let with = old.adapter.map { ", adapter " + Terminal.visible(($0.path as NSString).lastPathComponent) } ?? ""
                    let by = old.server.map { "\(old.model ?? "?") on \($0)" } ?? old.precision ?? "?"
                    self.sayStyled(Style.dim("  recorded (\(Terminal.visible(by))\(with)): ") + Self.oneLine(old.content, limit: 400))
                }
                Terminal.write(Style.dim("  now (\(Terminal.visible(label))):") + " ")
            },
            events: { event in
                if case let .text(piece) = event {
                    self.progress.end()
                    Terminal.write(Terminal.visible(piece.replacingOccurrences(of: "\n", with: " ")))
                } else {
                    self.show(event)
                }
            },
            onTurn: { turn in
                self.endLine()
                if turn.recorded == nil {
                    self.note("  (no recorded reply)")
                } else if let at = turn.firstDivergence {
                    self.sayStyled("  " + Style.red("changed") + " at \(turn.divergenceInCharacters ? "character" : "token") \(at)")
                } else {
                    self.say("  same")
                }
            })
        let changed = turns.filter(\.changed).count
        say("replay \(Terminal.visible(label))\(greedy ? ", greedy" : ""): \(changed) of \(turns.count) repl\(turns.count == 1 ? "y" : "ies") changed"
            + (backAt ? "; back at \(session.descriptor.precision ?? "?")" : ""))
        let unseeded = turns.filter { $0.changed && $0.unseeded }.count
        if unseeded > 0 {
            note("\(unseeded) of the changed replies were sampled without a recorded seed: their differences may be sampling alone (/replay --greedy compares greedy replies)")
        }
        return (changed, turns.count)
    }

    private func compare(_ argument: String) throws {
        let words = argument.split(separator: " ", maxSplits: 2).map(String.init)
        guard words.count >= 2 else { throw ChatError("usage: /compare A B [TEXT] (A, B: precisions or served models)") }
        var sides: [CompareSide] = []
        for word in words.prefix(2) {
            if let p = Precision(argument: word) {
                sides.append(.precision(p))
            } else if let generator = try progress.run("asking the servers", { try served.resolve(word, shouldStop: { Interrupt.shared.isSet }, notice: note) }) {
                sides.append(.model(generator))
            } else {
                let names = served.completionNames
                throw ChatError("unknown precision or served model '\(word)' (precisions: \(Precision.allCases.map(\.rawValue).joined(separator: ", "))"
                    + (names.isEmpty ? "" : "; served: \(names.joined(separator: ", "))") + ")")
            }
        }
        defer { Interrupt.shared.reset() }
        let results = try session.compare(sides, text: words.count > 2 ? words[2] : nil, shouldStop: { Interrupt.shared.isSet },
            onStart: { name in
                self.endLine()
                self.sayStyled(Style.bold("── \(Terminal.visible(name))"))
            },
            events: show)
        endLine()
        for r in results {
            if let server = r.server {
                say(String(format: "%@ on %@: %d tokens, %.1f tok/s, first token %.2f s, %@", r.precision as NSString, server as NSString,
                           r.stats.generatedTokens, r.stats.decodeTokensPerSecond, r.stats.ttftSeconds, r.stats.stopReason as NSString))
            } else {
                say(String(format: "%-5@ weights %@, RSS %@, %d tokens, %.1f tok/s, first token %.2f s, %@", r.precision as NSString,
                           Self.megabytes(r.weightBytes) as NSString, (r.residentBytes.map { Self.megabytes($0) } ?? "?") as NSString,
                           r.stats.generatedTokens, r.stats.decodeTokensPerSecond, r.stats.ttftSeconds, r.stats.stopReason as NSString))
            }
        }
        if results.count == 2 {
            if results[0].reply == results[1].reply {
                say("the replies are identical")
            } else if results.allSatisfy({ $0.server == nil }), let tokenizer = session.local?.tokenizer {
                let (a, b) = (tokenizer.encode(results[0].reply), tokenizer.encode(results[1].reply))
                say("the replies differ from token \(zip(a, b).prefix { $0 == $1 }.count) on")
            } else {
                let (a, b) = (Array(results[0].reply), Array(results[1].reply))
                say("the replies differ from character \(zip(a, b).prefix { $0 == $1 }.count) on")
            }
        }
    }

    // MARK: Inspection

    private func showTemplate(_ text: String) throws {
        if session.local == nil {
            let d = session.descriptor
            say("\(d.name) is served by \(d.server ?? "a server"), which applies its own chat template to the messages: there is no prompt to show here")
            return
        }
        let prompt = try session.pendingPrompt(adding: text.isEmpty ? nil : text)
        Terminal.write(Terminal.visible(prompt.text))
        if !prompt.text.hasSuffix("\n") { Terminal.write("\n") }
        note("(template: \(session.templateOrigin); \(prompt.tokens.count) tokens)")
    }

    private func showTokens(_ text: String) throws {
        let model = try session.localModel(for: "/tokens")
        guard !text.isEmpty else {
            let prompt = try session.pendingPrompt()
            say("the next prompt takes \(prompt.tokens.count) of \(model.contextLength) tokens (/template shows it; /tokens TEXT lists TEXT's tokens)")
            return
        }
        let tokenizer = model.tokenizer
        let ids = tokenizer.encode(text)
        say("\(ids.count) token\(ids.count == 1 ? "" : "s"): " + Self.pieces(ids, tokenizer))
    }

    /// `id 'piece'` for each token (the piece's bytes as text, control characters shown).
    static func pieces(_ ids: [Int], _ tokenizer: Tokenizer) -> String {
        ids.map { "\($0) '\(Terminal.visible(String(decoding: tokenizer.tokenBytes($0), as: UTF8.self)))'" }.joined(separator: " ")
    }

    /// Tokens in use of the window: what the KV cache holds (after a reply), or what the
    /// conversation takes up as the next prompt (`/show`; the cache is empty after a switch).
    private func contextUse(_ model: any TokenGenerator, nextPrompt: Bool = false) -> String {
        let window = model.contextLength
        var used = model.cachedTokens.count
        var dropped = 0
        if nextPrompt, let prompt = try? session.pendingPrompt() {
            used = prompt.tokens.count
            dropped = prompt.droppedTurns
        }
        return "\(used) / \(window) tokens (\(Int((Double(used) / Double(window) * 100).rounded())) %)"
            + (nextPrompt ? " in the next prompt" : "")
            + (dropped == 1 ? "; the oldest exchange is left out" : dropped > 1 ? "; the \(dropped) oldest exchanges are left out" : "")
    }

    private func showState() {
        let descriptor = session.descriptor
        say("model      \(session.modelName) — \(modelLocation)")
        if let name = descriptor.generalName { say("           general.name: \(name)") }
        if let model = session.local {
            let memory = model.memory
            say("precision  \(descriptor.precision ?? "?") (the file stores \(model.storedFormats))")
            say("adapter    " + (model.adapter.map { "\(Terminal.visible($0.path)) (\($0.format), \(Self.megabytes($0.byteCount)))" } ?? "none"))
            say("template   \(session.templateOrigin)")
            say("context    \(contextUse(model, nextPrompt: true))")
            say("memory     weights \(Self.megabytes(memory.weightBytes)), KV cache \(Self.megabytes(memory.kvCacheBytes)) (\(memory.kvCacheType)), scratch \(Self.megabytes(memory.scratchBytes)), RSS \(MemoryLimit.residentBytes().map { Self.megabytes($0) } ?? "?")")
            say("threads    \(memory.threads)")
        } else {
            say("precision  chosen by the server")
            say("template   \(session.templateOrigin)")
        }
        say("messages   \(session.conversation.messages.count)" + (session.conversation.systemPrompt == nil ? "" : " (with a system prompt)"))
        say("settings   " + session.conversation.settings.described.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
        if let path = session.autosavePath { say("autosave   \(path)") }
    }

    private func stats() {
        guard let s = session.lastStats else {
            say("no reply yet")
            return
        }
        let prefill = session.local?.lastPrefill ?? (reused: 0, computed: s.promptTokens)
        /// A figure that was not measured (nothing generated, nothing computed) shows "–".
        func figure(_ value: Double, _ format: String, exists: Bool) -> String { exists ? String(format: format, value) : "–" }
        say("prompt tokens     \(s.promptTokens)" + (session.local == nil ? "" : " (\(prefill.reused) reused from the cache, \(prefill.computed) computed)"))
        say("generated tokens  \(s.generatedTokens)")
        say("first token       " + figure(s.ttftSeconds, "%.3f s", exists: s.generatedTokens > 0))
        say("prefill           " + figure(s.prefillTokensPerSecond, "%.1f tok/s", exists: prefill.computed > 0 && s.prefillTokensPerSecond > 0))
        say("decode            " + figure(s.decodeTokensPerSecond, "%.1f tok/s", exists: s.generatedTokens > 1))
        say("stop reason       \(s.stopReason)" + (s.interrupted ? " (interrupted)" : ""))
        if let model = session.local { say("context           \(contextUse(model))") }
    }

    // MARK: - Helpers

    /// One unit everywhere, as `info` and `bench`: MiB.
    static func megabytes(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }

    /// `text` on one line, cut at `limit` characters, shown visibly.
    static func oneLine(_ text: String, limit: Int) -> String {
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        return Terminal.visible(flat.count > limit ? String(flat.prefix(limit)) + "…" : flat)
    }

    // MARK: - Completion

    /// Candidates for the last word of `line` (the text before the cursor).
    /// Served models as `/model` takes them (`NAME`, `NAME/MODEL`), updated whenever the
    /// servers are asked for their models.
    nonisolated(unsafe) static var servedNames: [String] = []

    static func completions(_ line: String) -> [String] {
        let words = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        let current = words.last ?? ""
        guard let first = words.first, first.hasPrefix("/") else { return [] }
        if words.count == 1 { return commandNames.filter { $0.hasPrefix(current.lowercased()) && $0 != "/?" } }
        guard let command = commands.first(where: { $0.names.contains(first.lowercased()) }) else { return [] }
        let precisionNames = Precision.allCases.map(\.rawValue)
        let position = words.count - 1  // 1 = first argument
        func matching(_ options: [String]) -> [String] { options.filter { $0.hasPrefix(current) } }
        switch command.argument {
        case .precision: return position == 1 ? matching(precisionNames) : []
        case .compare: return position <= 2 ? matching(precisionNames + servedNames) : []
        case .model: return position == 1 ? matching(servedNames) + EditLineInput.pathCandidates(current) : []
        case .setting: return position == 1 ? matching(ChatSettings.parameterNames) : []
        case .preset: return position == 1 ? matching(PromptLibrary.presetNames()) : []
        case .path:
            guard position == 1 else { return [] }
            return (command.names.contains("/adapter") ? matching(["off"]) : []) + EditLineInput.pathCandidates(current)
        case .replay:
            if words[position - 1] == "--precision" { return matching(precisionNames) }
            if words[position - 1] == "--adapter" { return matching(["off"]) + EditLineInput.pathCandidates(current) }
            if words[position - 1] == "--model" { return matching(servedNames) + EditLineInput.pathCandidates(current) }
            if current.hasPrefix("-") { return matching(["--model", "--precision", "--adapter", "--greedy"]) }
            return EditLineInput.pathCandidates(current)
        case .none, .text: return []
        }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
