import ArgumentParser
import CKernels
import Foundation
import Inference
import ModelFiles
import Quantization

extension Nibble {
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure speed, memory and (with --quality) quality at several precisions.",
            discussion: """
                Each run loads the model at one precision in a fresh process (this binary's hidden \
                `bench-run`), so its memory is that precision's alone: weights, KV cache and scratch \
                as allocated, and the process's peak RSS (which also counts the pages of the mapped \
                model file). Runs go round the precisions --repeats times; the table, the JSON and \
                the chart give the median and the min–max of the runs. Prefill is --prompt-tokens \
                of fixed English text from an empty cache, after one warm-up pass; decode is the \
                --gen-tokens after it (greedy, past end-of-text).

                Then the roofline: the bytes one decoded token reads against what the memory \
                streams (a read test around each run), and where decode's time goes: the matrix \
                products' and attention's shares of its wall time (the rest is the caller's own \
                work between them: norms, RoPE, the KV cache, sampling), and the rate the products \
                read the weights at over their own time.

                --quality FILE scores the first --quality-tokens tokens of a text at each precision \
                as `nibble eval` does (windows of min(512, N) tokens, the second half of each \
                scored; KL divergence against f32 and perplexity).
                """)

        @OptionGroup var model: ModelFileOption
        @Option(help: "Precisions to measure, comma-separated (f32, f16, bf16, q8, q4, nf4, q2; aliases 32, 16, 8, 4, 2).")
        var precision = Self.defaultPrecisions
        /// The old name of `--precision` here.
        @Option(name: .customLong("precisions"), help: .hidden) var precisions: String?
        @OptionGroup var threads: ThreadsOption
        @OptionGroup var kvCache: KVCacheOption
        @Option(help: "KV cache length in tokens for the memory figures (default: min(model context, 4096)).") var context: Int?
        @Option(name: .customLong("prompt-tokens"), help: "Prompt length for the prefill measurement.") var promptTokens = 128
        @Option(name: .customLong("gen-tokens"), help: "Tokens generated for the decode measurement (the first comes from the prefill).") var genTokens = 64
        @Option(help: "Tokens of context already in the KV cache before the measured prompt (as llama-bench -d): prefill and decode at that depth.")
        var depth = 0
        @Option(help: "Runs per precision; medians and min–max are reported.") var repeats = 1
        @Option(help: "A text file to score at each precision (KL divergence from f32, perplexity).") var quality: String?
        @Option(name: .customLong("quality-tokens"), help: "How much of the --quality text to use, in tokens.") var qualityTokens = 1536
        @Option(help: "Also write the chart as one self-contained SVG file.") var svg: String?
        @Flag(help: "Print one JSON object.") var json = false

        static let defaultPrecisions = "f32,bf16,q8,q4,nf4,q2"

        var precisionList: String { precisions ?? precision }

        /// The precisions to measure: concrete ones, or `native` (the file's own blocks).
        func formats() throws -> [Precision] {
            try precisionList.split(separator: ",", omittingEmptySubsequences: false).map { name in
                let name = name.trimmingCharacters(in: .whitespaces)
                guard let precision = Precision(argument: name), precision != .auto else {
                    throw ValidationError("--precision: '\(name)' is not one of native, f32, f16, bf16, q8, q4, nf4, q2")
                }
                return precision
            }
        }

        func validate() throws {
            if precisions != nil, precision != Self.defaultPrecisions { throw ValidationError("give the precisions once, as --precision") }
            let formats = try formats()
            if Set(formats).count != formats.count { throw ValidationError("--precision: each precision once") }
            if promptTokens < 1 { throw ValidationError("--prompt-tokens must be at least 1") }
            if genTokens < 2 { throw ValidationError("--gen-tokens must be at least 2 (the first token comes from the prefill)") }
            if depth < 0 { throw ValidationError("--depth must be at least 0") }
            if let context, context < depth + promptTokens + genTokens {
                throw ValidationError("--context must be at least --depth + --prompt-tokens + --gen-tokens (\(depth + promptTokens + genTokens))")
            }
            if !(1...100).contains(repeats) { throw ValidationError("--repeats must be in 1...100") }
            if qualityTokens < 16 { throw ValidationError("--quality-tokens must be at least 16") }
        }

        func run() throws {
            let formats = try formats()
            let path = try model.modelPath()
            let interrupt = Interrupt.shared
            let started = Date()
            // The file is read here first: a bad model or text fails before any run.
            let file = try ModelSources.open(path)
            let config = try ModelConfig(gguf: file)
            let context = self.context ?? max(min(config.contextLength, 4096), depth + promptTokens + genTokens)
            let qualityText = try quality.map { String(decoding: try readUserFile($0), as: UTF8.self) }

            var samples: [Precision: [BenchSample]] = [:]
            // The read test runs here, between the runs: this VM's memory has streamed from 36 to
            // 80 GB/s within an hour, so each run is set against the rate measured around it.
            var stream: StreamBandwidth?
            for round in 0..<repeats {
                for format in formats {
                    if interrupt.isSet { throw ExitCode(130) }
                    let probe = try stream ?? StreamBandwidth(threads: threads.threads ?? ProcessInfo.processInfo.activeProcessorCount)
                    stream = probe
                    let before = probe.measure()
                    var sample = try BenchRunner.run(path: path, precision: format, threads: threads.threads, context: context,
                                                     promptTokens: promptTokens, genTokens: genTokens, depth: depth,
                                                     kvCache: kvCache.kvCache)
                    sample.streamGBPerSecond = (before + probe.measure()) / 2
                    samples[format, default: []].append(sample)
                    if !json {
                        Terminal.writeError(String(format: "%@ run %d/%d: load %.2f s, prefill %.1f tok/s, decode %.1f tok/s, peak RSS %.0f MiB\n",
                                                   format.rawValue, round + 1, repeats, sample.loadSeconds, sample.prefillTokensPerSecond,
                                                   sample.decodeTokensPerSecond, BenchCharts.mib(sample.peakRSSBytes)))
                    }
                }
            }

            var qualities: [Precision: EvaluationResult] = [:]
            var window: Int?
            if let quality, let qualityText {
                let w = min(Eval.defaultWindow, qualityTokens)
                window = w
                let interactive = isatty(STDERR_FILENO) != 0 && !json
                let results = try QualityRun.evaluate(
                    path: path, precisions: formats, text: qualityText, file: quality, window: w,
                    threads: threads.threads, memoryLimit: MemoryLimit.detect(), maxTokens: qualityTokens,
                    progress: { index, done, total in
                        if interactive { Terminal.writeError("\r\u{1B}[K[quality \(formats[index].rawValue): window \(done + 1)/\(total)]") }
                    })
                if interactive { Terminal.writeError("\r\u{1B}[K") }
                for (format, result) in zip(formats, results) { qualities[format] = result }
            }

            let first = samples[formats[0]]![0]
            let report = BenchReport(
                model: ModelName.display(forPath: path), modelFile: path, date: BenchReport.timestamp(started),
                cpu: BenchReport.cpuName, machine: Engine.machineDescription, kernels: KernelLevel.active,
                threads: first.threads, promptTokens: promptTokens, genTokens: genTokens, depth: depth, context: context,
                kvCache: kvCache.kvCache?.rawValue, repeats: repeats,
                qualityFile: quality, qualityWindow: window, qualityTokens: quality == nil ? nil : qualityTokens,
                command: BenchReport.commandLine(),
                streamGBPerSecond: Spread(formats.flatMap { samples[$0]!.compactMap(\.streamGBPerSecond) }).median,
                results: formats.map { BenchResult(samples: samples[$0]!, quality: qualities[$0]) })
            if let svg {
                do {
                    try BenchCharts.svg(report).write(toFile: svg, atomically: true, encoding: .utf8)
                } catch let error as CocoaError {
                    throw CLIError("\(svg): cannot write" + (Nibble.systemReason(of: error).map { " (\($0))" } ?? ""))
                }
            }
            if json {
                try Terminal.writeJSON(report)
            } else {
                Terminal.write(BenchCharts.table(report))
            }
        }
    }

    /// One precision, measured in this process: what `bench` runs for each precision and
    /// repeat (`/proc/self/exe bench-run …`), so that nothing another precision allocated
    /// is counted. Prints one JSON object (`BenchSample`).
    struct BenchRun: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bench-run", abstract: "Measure one precision in this process (used by bench; prints JSON).", shouldDisplay: false)

        @Option var model: String
        @Option var precision: Precision
        @Option var threads: Int?
        @Option var context: Int
        @Option(name: .customLong("prompt-tokens")) var promptTokens: Int
        @Option(name: .customLong("gen-tokens")) var genTokens: Int
        @Option var depth = 0
        @Option(name: .customLong("kv-cache")) var kvCache: KVCacheType?

        func run() throws {
            let interrupt = Interrupt.shared
            let clock = ContinuousClock()
            let started = clock.now
            let engine = try Engine(path: model, precision: precision, threads: threads, context: context, kvCache: kvCache)
            let loadSeconds = (clock.now - started).seconds
            // A fixed English text, repeated to the prompt length.
            let sentence = engine.tokenizer.encode("The history of computing is a story of people who wanted machines to do their arithmetic for them. ")
            let prompt = (0..<(depth + promptTokens)).map { sentence[$0 % sentence.count] }
            var greedy = SamplingParameters()
            greedy.temperature = 0
            // Warm-up: the first pass touches the KV cache and scratch pages.
            _ = try engine.generate(prompt: prompt, maxTokens: 2, sampling: greedy, ignoreEndOfGeneration: true,
                                    shouldStop: { interrupt.isSet }) { _ in }
            engine.resetCache()
            if depth > 0 {
                // The context before the measured prompt: in the cache, not timed (the next
                // generate reuses it as a prefix and prefills only the last promptTokens).
                _ = try engine.generate(prompt: Array(prompt[..<depth]), maxTokens: 1, sampling: greedy, ignoreEndOfGeneration: true,
                                        shouldStop: { interrupt.isSet }) { _ in }
                guard engine.cachedTokens.count == depth else { throw CLIError("bench: the --depth prefix did not stay in the cache") }
            }
            // Decode's time budget from the first token on (the prefill made it; decode's clock
            // starts there too).
            var budgetOn = false
            let run = try engine.generate(prompt: prompt, maxTokens: genTokens, sampling: greedy, ignoreEndOfGeneration: true,
                                          shouldStop: { interrupt.isSet }) { _ in
                if !budgetOn {
                    nb_time_budget_enable(1)
                    budgetOn = true
                }
            }
            let budget = nb_time_budget_read()
            nb_time_budget_enable(0)
            if interrupt.isSet { throw ExitCode(130) }
            let decodeSteps = max(run.tokens.count - 1, 0)
            // The decoded tokens sit at positions depth + promptTokens ..< depth + promptTokens +
            // genTokens − 1 (the first generated token comes from the prefill).
            let positions = (depth + promptTokens)..<(depth + promptTokens + genTokens - 1)
            let kvRead = positions.reduce(0) { $0 + engine.kvBytesRead(atPosition: $1) } / max(positions.count, 1)
            try Terminal.writeJSON(BenchSample(
                precision: engine.plan.name, kvCache: engine.plan.kvCache.rawValue, threads: engine.pool.threadCount, weightBytes: engine.weightBytes,
                kvBytes: engine.kvCacheBytes, scratchBytes: engine.scratchBytes, peakRSSBytes: BenchRunner.peakResidentBytes() ?? 0,
                loadSeconds: loadSeconds, prefillTokensPerSecond: run.stats.prefillTokensPerSecond,
                decodeTokensPerSecond: run.stats.decodeTokensPerSecond, decodeBytesPerToken: engine.weightBytesPerToken + kvRead,
                decodeWeightBytesPerToken: engine.weightBytesPerToken,
                decodeSeconds: decodeSteps > 0 ? Double(decodeSteps) / run.stats.decodeTokensPerSecond : nil,
                decodeProductsSeconds: Double(budget.products_ns) / 1e9, decodeAttentionSeconds: Double(budget.attention_ns) / 1e9))
        }
    }
}

/// Runs `bench-run` in a child process of this same binary.
enum BenchRunner {
    static func run(path: String, precision: Precision, threads: Int?, context: Int, promptTokens: Int, genTokens: Int,
                    depth: Int = 0, kvCache: KVCacheType? = nil) throws -> BenchSample {
        let process = Process()
        // This very binary, even if the file was replaced since it started.
        let exe = FileManager.default.fileExists(atPath: "/proc/self/exe") ? "/proc/self/exe" : Bundle.main.executablePath ?? CommandLine.arguments[0]
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = ["bench-run", "--model", path, "--precision", precision.rawValue, "--context", String(context),
                             "--prompt-tokens", String(promptTokens), "--gen-tokens", String(genTokens), "--depth", String(depth)]
            + (threads.map { ["--threads", String($0)] } ?? []) + (kvCache.map { ["--kv-cache", $0.rawValue] } ?? [])
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { errData = err.fileHandleForReading.readDataToEndOfFile() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        // Ctrl-C reaches the child too (the terminal signals the whole process group).
        if Interrupt.shared.isSet || (process.terminationReason == .exit && process.terminationStatus == 130) { throw ExitCode(130) }
        let errText = String(decoding: errData, as: UTF8.self)
        guard process.terminationReason == .exit, process.terminationStatus == 0,
              let sample = try? JSONDecoder().decode(BenchSample.self, from: outData) else {
            // The child's own error (already short, "Error: …"), or how it ended.
            let reason = errText.split(separator: "\n").first.map { String($0).replacingOccurrences(of: "Error: ", with: "") }
                ?? (process.terminationReason == .uncaughtSignal ? "killed by signal \(process.terminationStatus)" : "exit status \(process.terminationStatus)")
            throw CLIError("the \(precision.rawValue) run failed: \(reason)")
        }
        return sample
    }

    /// VmHWM: the most this process ever had resident.
    static func peakResidentBytes() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = Int(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kb * 1024
    }
}

/// What one `bench-run` measured.
struct BenchSample: Codable {
    var precision: String
    /// The KV cache's type (absent in reports from before it could be chosen).
    var kvCache: String?
    var threads: Int
    var weightBytes: Int
    var kvBytes: Int
    var scratchBytes: Int
    var peakRSSBytes: Int
    var loadSeconds: Double
    var prefillTokensPerSecond: Double
    var decodeTokensPerSecond: Double
    /// Weights and keys/values one decoded token reads (the mean over the decoded tokens).
    var decodeBytesPerToken: Int
    /// What the memory streamed just before and after the run (the mean), GB/s: set by
    /// `bench`, not by the run.
    var streamGBPerSecond: Double?
    /// Decode's time budget (`nb_time_budget`): the weights one token's products read, the
    /// decode's wall time, and what of it the products and attention took (the rest: the
    /// caller's own work between them). Absent in reports from before it was kept.
    var decodeWeightBytesPerToken: Int?
    var decodeSeconds: Double?
    var decodeProductsSeconds: Double?
    var decodeAttentionSeconds: Double?

    enum CodingKeys: String, CodingKey {
        case precision, kvCache = "kv_cache", threads, weightBytes = "weight_bytes", kvBytes = "kv_bytes", scratchBytes = "scratch_bytes"
        case peakRSSBytes = "peak_rss_bytes", loadSeconds = "load_s"
        case prefillTokensPerSecond = "prefill_tok_s", decodeTokensPerSecond = "decode_tok_s", decodeBytesPerToken = "decode_bytes_per_token"
        case streamGBPerSecond = "stream_gb_s", decodeWeightBytesPerToken = "decode_weight_bytes_per_token", decodeSeconds = "decode_s"
        case decodeProductsSeconds = "decode_products_s", decodeAttentionSeconds = "decode_attention_s"
    }

    /// The products' and attention's shares of the decode's time, and the rate the products
    /// read the weights at over their own time (GB/s).
    var decodeBudget: (products: Double, attention: Double, productsGBPerSecond: Double)? {
        guard let total = decodeSeconds, total > 0, let products = decodeProductsSeconds, products > 0,
              let attention = decodeAttentionSeconds, let weights = decodeWeightBytesPerToken else { return nil }
        let tokens = total * decodeTokensPerSecond
        return (products / total, attention / total, Double(weights) * tokens / products / 1e9)
    }
}

/// Where decode's time went, over the runs of one precision (`BenchSample.decodeBudget`).
struct DecodeBudget: Codable {
    var products: Spread
    var attention: Spread
    /// The caller's own work: 1 − products − attention.
    var rest: Spread
    var productsGBPerSecond: Spread
    /// Each run's products GB/s over what the memory streamed around that run.
    var productsOfStream: Spread?

    init?(_ samples: [BenchSample]) {
        let budgets = samples.compactMap(\.decodeBudget)
        guard !budgets.isEmpty, budgets.count == samples.count else { return nil }
        products = Spread(budgets.map(\.products))
        attention = Spread(budgets.map(\.attention))
        rest = Spread(budgets.map { 1 - $0.products - $0.attention })
        productsGBPerSecond = Spread(budgets.map(\.productsGBPerSecond))
        let ratios = zip(samples, budgets).compactMap { s, b in s.streamGBPerSecond.map { b.productsGBPerSecond / $0 } }
        productsOfStream = ratios.count == samples.count ? Spread(ratios) : nil
    }

    enum CodingKeys: String, CodingKey {
        case products, attention, rest, productsGBPerSecond = "products_gb_s", productsOfStream = "products_of_stream"
    }
}

/// The median of several runs and their range.
struct Spread: Codable {
    var median: Double
    var min: Double
    var max: Double
    var runs: [Double]

    init(_ runs: [Double]) {
        let sorted = runs.sorted()
        let n = sorted.count
        median = n == 0 ? 0 : n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        min = sorted.first ?? 0
        max = sorted.last ?? 0
        self.runs = runs
    }
}

/// One precision's results: medians at the top level (as before `--repeats`), the runs
/// and their spread beside them.
struct BenchResult: Codable {
    var precision: String
    var weightBytes: Int
    var kvBytes: Int
    var scratchBytes: Int
    /// Median peak RSS of the runs.
    var rssBytes: Int
    var loadSeconds: Double
    var prefillTokensPerSecond: Double
    var decodeTokensPerSecond: Double
    var prefill: Spread
    var decode: Spread
    var load: Spread
    var rss: Spread
    var quality: EvaluationResult?
    /// Bytes one decoded token reads, and the rate the median decode reads them at.
    var decodeBytesPerToken: Int?
    var decodeGBPerSecond: Double?
    /// Each run's decode GB/s over what the memory streamed around that run.
    var decodeOfStream: Spread?
    /// Where decode's time went (absent in reports from before it was kept).
    var decodeBudget: DecodeBudget?

    var totalBytes: Int { weightBytes + kvBytes + scratchBytes }

    init(samples: [BenchSample], quality: EvaluationResult?) {
        let s = samples[0]
        precision = s.precision
        weightBytes = s.weightBytes
        kvBytes = s.kvBytes
        scratchBytes = s.scratchBytes
        prefill = Spread(samples.map(\.prefillTokensPerSecond))
        decode = Spread(samples.map(\.decodeTokensPerSecond))
        load = Spread(samples.map(\.loadSeconds))
        rss = Spread(samples.map { Double($0.peakRSSBytes) })
        rssBytes = Int(rss.median)
        loadSeconds = load.median
        prefillTokensPerSecond = prefill.median
        decodeTokensPerSecond = decode.median
        self.quality = quality
        decodeBytesPerToken = s.decodeBytesPerToken
        decodeGBPerSecond = Double(s.decodeBytesPerToken) * decode.median / 1e9
        let ratios = samples.compactMap { s in
            s.streamGBPerSecond.map { Double(s.decodeBytesPerToken) * s.decodeTokensPerSecond / 1e9 / $0 }
        }
        decodeOfStream = ratios.count == samples.count ? Spread(ratios) : nil
        decodeBudget = DecodeBudget(samples)
    }

    enum CodingKeys: String, CodingKey {
        case precision, weightBytes = "weight_bytes", kvBytes = "kv_bytes", scratchBytes = "scratch_bytes", rssBytes = "rss_bytes"
        case loadSeconds = "load_s", prefillTokensPerSecond = "prefill_tok_s", decodeTokensPerSecond = "decode_tok_s"
        case prefill, decode, load, rss, quality, decodeBytesPerToken = "decode_bytes_per_token", decodeGBPerSecond = "decode_gb_s"
        case decodeOfStream = "decode_of_stream", decodeBudget = "decode_budget"
    }
}

struct BenchReport: Codable {
    /// The model's display name (`ModelName`).
    var model: String
    var modelFile: String
    /// When the bench started, ISO 8601 UTC.
    var date: String
    /// The CPU's model name.
    var cpu: String
    var machine: String
    var kernels: String
    var threads: Int
    var promptTokens: Int
    var genTokens: Int
    /// Tokens of context in the cache before the prompt (`--depth`).
    var depth: Int
    /// The KV cache length the memory figures are for.
    var context: Int
    /// The KV cache type `--kv-cache` chose (nil: each precision's default).
    var kvCache: String?
    var repeats: Int
    var qualityFile: String?
    var qualityWindow: Int?
    var qualityTokens: Int?
    /// The command line that made the report.
    var command: String
    /// What `threads` threads read from memory, GB/s (`StreamBandwidth`): the roofline.
    var streamGBPerSecond: Double?
    var results: [BenchResult]

    enum CodingKeys: String, CodingKey {
        case model, modelFile = "model_file", date, cpu, machine, kernels, threads, promptTokens = "prompt_tokens"
        case genTokens = "gen_tokens", depth, context, kvCache = "kv_cache", repeats, qualityFile = "quality_file", qualityWindow = "quality_window"
        case qualityTokens = "quality_tokens", command, streamGBPerSecond = "stream_gb_s", results
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss'Z'"
        return formatter.string(from: date)
    }

    /// /proc/cpuinfo's model name ("AMD EPYC 9B14"), else the architecture.
    static var cpuName: String {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        for key in ["model name", "Model", "Hardware"] {
            if let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix(key) && $0.dropFirst(key.count).trimmingCharacters(in: .whitespaces).hasPrefix(":") }),
               let value = line.split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces), !value.isEmpty {
                return value
            }
        }
        var name = utsname()
        uname(&name)
        return withUnsafeBytes(of: &name.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// `nibble` and the arguments, quoted for a POSIX shell where needed.
    static func commandLine() -> String {
        (["nibble"] + CommandLine.arguments.dropFirst()).map { arg in
            arg.allSatisfy({ $0.isLetter || $0.isNumber || "-_./,=:+@%".contains($0) }) && !arg.isEmpty
                ? arg : "'" + arg.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }
}

/// The machine's streaming read bandwidth: the ceiling decode runs against, since each
/// decoded token reads every weight once.
final class StreamBandwidth {
    let threads: Int
    private let chunk: Int
    private let memory: AlignedBuffer
    private var buffer: UnsafeMutableRawPointer { memory.pointer }
    private let pool: WorkerPool
    private let sums: UnsafeMutablePointer<UInt64>

    /// A buffer of `bytes` (256 MiB: well past any last-level cache we meet), its pages
    /// faulted in, for `threads` threads to read. It is in huge pages where the system
    /// grants them, as the weights are (in 4 KiB pages it streamed 68–73 GB/s against 76–82,
    /// and bf16 decode "read" 104–110 % of it: BENCHMARKS.md 2026-12-05 21:30).
    init(threads: Int, bytes: Int = 256 << 20) throws {
        self.threads = max(threads, 1)
        chunk = bytes / self.threads / 128 * 128
        guard let memory = AlignedBuffer(byteCount: chunk * self.threads, hugePages: true) else {
            throw CLIError("bench: no memory for the read test")
        }
        self.memory = memory
        memset(memory.pointer, 1, chunk * self.threads)
        pool = WorkerPool(threads: self.threads)
        sums = .allocate(capacity: self.threads)
    }

    deinit { sums.deallocate() }

    /// GB/s: the best of 5 passes over the buffer.
    func measure() -> Double {
        var best = 0.0
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            pool.parallelFor(threads) { i in sums[i] = nb_stream_read(buffer + i * chunk, Int64(chunk)) }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            best = max(best, Double(chunk * threads) / seconds / 1e9)
        }
        // Every byte is 1: the sums prove the reads happened.
        precondition((0..<threads).allSatisfy { sums[$0] == UInt64(chunk / 8) &* 0x0101_0101_0101_0101 })
        return best
    }
}
