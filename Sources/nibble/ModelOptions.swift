import ArgumentParser
import Chat
import Foundation
import Inference
import ModelFiles

// `Precision.init?(argument:)` (names and aliases) is the conformance's initialiser.
extension Precision: ExpressibleByArgument {
    public static var allValueStrings: [String] { Precision.allCases.map(\.rawValue) }
}

/// The model file: `--model` (`-m`) or the first argument. Every sub-command that reads
/// a model takes it; the other model flags are separate groups, so that each
/// sub-command's `--help` lists only the options it reads.
struct ModelFileOption: ParsableArguments {
    @Option(name: [.customShort("m"), .long], help: "A GGUF model file or a Hugging Face model folder (default: the installed SmolLM2-135M-Instruct).")
    var model: String?

    @Argument(help: "The model file, as with --model (`nibble model.gguf` opens the chat on it).")
    var modelArgument: String?

    func validate() throws {
        if model != nil, modelArgument != nil { throw ValidationError("give the model once: as --model or as the first argument") }
    }

    /// The model to load: `--model`, else the default one if it is installed.
    func modelPath() throws -> String {
        if let model = model ?? modelArgument { return UserPaths.expandingTilde(model) }
        let path = ModelOptions.defaultModelPath
        guard FileManager.default.fileExists(atPath: path) else {
            throw CLIError("no --model given and the default model is not installed at \(path)",
                           hint: "run `make model` in the Nibble folder, or pass --model FILE.gguf")
        }
        return path
    }
}

/// `--precision`: one precision, or `native`/`auto`.
struct PrecisionOption: ParsableArguments {
    @Option(help: "Weight precision: f32, f16, bf16, q8, q4, nf4, q2 (aliases 32, 16, 8, 4, 2), native or auto.")
    var precision: Precision = .native
}

/// `--threads`.
struct ThreadsOption: ParsableArguments {
    @Option(help: "Threads for the matrix kernels (default: the number of cores).")
    var threads: Int?

    func validate() throws {
        if let threads, !(1...ModelOptions.maxThreads).contains(threads) {
            throw ValidationError("--threads must be in 1...\(ModelOptions.maxThreads) (4 × the \(ProcessInfo.processInfo.activeProcessorCount) cores)")
        }
    }
}

/// `--context`: positions the KV cache holds.
struct ContextOption: ParsableArguments {
    @Option(help: "Context length in tokens (default: min(model context, 4096)).")
    var context: Int?

    func validate() throws {
        if let context, context < 1 { throw ValidationError("--context must be at least 1") }
    }
}

/// `--adapter`.
struct AdapterOption: ParsableArguments {
    @Option(help: "A LoRA adapter to apply: a PEFT folder (adapter_config.json + adapter_model.safetensors) or a GGUF LoRA file.")
    var adapter: String?

    var path: String? { adapter.map(UserPaths.expandingTilde) }
}

/// `--kv-cache`.
struct KVCacheOption: ParsableArguments {
    @Option(name: .customLong("kv-cache"),
            help: "KV cache type: f32, f16 or q8 (8-bit blocks of 32, as llama.cpp's q8_0: 56 % of f16's memory) (default: f32 at precision f32, else f16).")
    var kvCache: KVCacheType?
}

/// `--memory-limit`.
struct MemoryLimitOption: ParsableArguments {
    @Option(name: .customLong("memory-limit"), help: "Memory Nibble may use, e.g. 512M or 2G (default: available memory less 10 %).")
    var memoryLimit: String?

    /// `--memory-limit` in bytes, or the detected limit.
    func bytes() throws -> Int {
        guard let memoryLimit else { return MemoryLimit.detect() }
        guard let bytes = MemoryLimit.parse(memoryLimit) else {
            throw ValidationError("--memory-limit: '\(memoryLimit)' is not a size like 512M or 2G")
        }
        return bytes
    }

    func validate() throws { _ = try bytes() }
}

/// Every model flag: for the sub-commands that load a model and run it as the user
/// says (`chat`, `generate`).
struct ModelOptions: ParsableArguments {
    @OptionGroup var file: ModelFileOption
    @OptionGroup var precisionOption: PrecisionOption
    @OptionGroup var threadsOption: ThreadsOption
    @OptionGroup var contextOption: ContextOption
    @OptionGroup var memoryLimitOption: MemoryLimitOption
    @OptionGroup var adapterOption: AdapterOption
    @OptionGroup var kvCacheOption: KVCacheOption

    var precision: Precision { precisionOption.precision }
    var adapter: String? { adapterOption.path }
    var threads: Int? { threadsOption.threads }
    var context: Int? { contextOption.context }
    var kvCache: KVCacheType? { kvCacheOption.kvCache }
    func memoryLimitBytes() throws -> Int { try memoryLimitOption.bytes() }
    func modelPath() throws -> String { try file.modelPath() }

    /// More threads than this only add contention (and a thread each to start).
    static var maxThreads: Int { 4 * max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// Where `make model` installs the default model.
    static var defaultModelPath: String {
        let env = ProcessInfo.processInfo.environment
        let cache = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (UserPaths.home + "/.cache")
        return cache + "/nibble/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    }

    func loadEngine() throws -> Engine {
        let engine = try Engine(path: modelPath(), precision: precision, threads: threads, context: context, memoryLimit: memoryLimitBytes(),
                                kvCache: kvCache, adapter: adapter)
        Self.warnAboutPrecision(engine)
        return engine
    }

    /// One line on stderr when the precision cannot be what the user hopes for.
    static func warnAboutPrecision(_ engine: Engine) {
        if let warning = precisionWarning(engine) { Terminal.writeError(warning + "\n") }
    }

    static func precisionWarning(_ engine: Engine) -> String? { precisionWarning(LocalEngine(engine)) }

    /// nil for a served model (the server chose its precision).
    static func precisionWarning(_ model: (any TokenGenerator)?) -> String? {
        guard let model else { return nil }
        if model.format == .q2 {
            return "note: q2 is experimental: 2-bit weights lose much of a small model's quality"
        } else if model.format > model.nativeFormat, model.nativeFormat != .f16, model.nativeFormat != .bf16 {
            // A 16-bit checkpoint is usually what the model was trained and published in;
            // running it at f32 is transformers' default, not an attempt to undo quantisation.
            return "note: the file stores \(model.storedFormats); running at \(model.format.rawValue) cannot restore the accuracy lost when it was quantised"
        }
        return nil
    }
}

/// A user-facing failure: one line saying what is wrong, optionally one with what to do.
struct CLIError: Error, CustomStringConvertible {
    let message: String
    let hint: String?
    init(_ message: String, hint: String? = nil) {
        self.message = message
        self.hint = hint
    }
    var description: String { hint.map { "\(message)\n\($0)" } ?? message }
}

/// The contents of a text file the user named (`--file`), or an error naming it and
/// saying why it cannot be read. FIFOs are fine (`--file <(…)`), folders are not.
func readUserFile(_ path: String) throws -> Data {
    var info = stat()
    guard stat(path, &info) == 0 else { throw CLIError("\(path): cannot read (\(ModelFileError.systemReason(errno)))") }
    if info.st_mode & S_IFMT == S_IFDIR { throw CLIError("\(path): cannot read (\(ModelFileError.systemReason(EISDIR)))") }
    guard let handle = FileHandle(forReadingAtPath: path) else {
        throw CLIError("\(path): cannot read (\(ModelFileError.systemReason(access(path, R_OK) == 0 ? EIO : errno)))")
    }
    defer { try? handle.close() }
    do {
        return try handle.readToEnd() ?? Data()
    } catch {
        throw CLIError("\(path): cannot read (\(ModelFileError.systemReason(EIO)))")
    }
}

extension KVCacheType: ExpressibleByArgument {}
