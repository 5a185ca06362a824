import ArgumentParser
import Foundation
import Inference
import Quantization

extension Nibble {
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure memory, quantisation time, prefill and decode speed at several precisions in one run.")

        @OptionGroup var model: ModelOptions
        @Option(help: "Comma-separated precisions to measure.") var precisions = "f32,bf16,q8,q4,nf4,q2"
        @Option(name: .customLong("prompt-tokens"), help: "Prompt length for the prefill measurement.") var promptTokens = 128
        @Option(name: .customLong("gen-tokens"), help: "Tokens generated for the decode measurement.") var genTokens = 64
        @Option(help: "Also write the charts as one self-contained SVG file.") var svg: String?
        @Flag(help: "Print one JSON object.") var json = false

        func validate() throws {
            for name in precisions.split(separator: ",") where Precision(argument: String(name))?.format == nil {
                throw ValidationError("--precisions: '\(name)' is not a concrete precision (f32, f16, bf16, q8, q4, nf4, q2)")
            }
            if promptTokens < 1 || genTokens < 1 { throw ValidationError("--prompt-tokens and --gen-tokens must be at least 1") }
        }

        func run() throws {
            let formats = precisions.split(separator: ",").map { Precision(argument: String($0))!.format! }
            let interrupt = Interrupt.shared
            let context = max(model.context ?? 0, promptTokens + genTokens + 60)
            let engine = try Engine(path: model.modelPath(), precision: Precision(formats[0]), threads: model.threads,
                                    context: context, memoryLimit: model.memoryLimitBytes())
            // A fixed English text, repeated to the prompt length.
            let sentence = engine.tokenizer.encode("The history of computing is a story of people who wanted machines to do their arithmetic for them. ")
            let prompt = Array((0..<promptTokens).map { sentence[$0 % sentence.count] })
            let story = engine.promptTokens("Once upon a time")
            var greedy = SamplingParameters()
            greedy.temperature = 0
            var results: [BenchResult] = []
            for format in formats {
                if interrupt.isSet { throw ExitCode(130) }
                let clock = ContinuousClock()
                let started = clock.now
                try engine.setPrecision(Precision(format))
                let quantizeSeconds = (clock.now - started).seconds
                // Prefill: the whole prompt from an empty cache; decode: the generated tokens after it.
                engine.resetCache()
                let run = try engine.generate(prompt: prompt, maxTokens: genTokens, sampling: greedy, ignoreEndOfGeneration: true,
                                              shouldStop: { interrupt.isSet }) { _ in }
                engine.resetCache()
                let storyStart = clock.now
                var firstTokenSeconds = 0.0
                _ = try engine.generate(prompt: story, maxTokens: 50, sampling: greedy, ignoreEndOfGeneration: true, shouldStop: { interrupt.isSet }) { _ in
                    if firstTokenSeconds == 0 { firstTokenSeconds = (clock.now - storyStart).seconds }
                }
                let fifty = (clock.now - storyStart).seconds
                results.append(BenchResult(precision: format.rawValue, weightBytes: engine.weightBytes,
                                           rssBytes: MemoryLimit.residentBytes() ?? 0, quantizeSeconds: quantizeSeconds,
                                           prefillTokensPerSecond: run.stats.prefillTokensPerSecond,
                                           decodeTokensPerSecond: run.stats.decodeTokensPerSecond, secondsFor50Tokens: fifty))
                if !json { Terminal.writeError("\(format.rawValue): done\n") }
            }
            let report = BenchReport(machine: Engine.machineDescription, threads: engine.pool.threadCount, results: results)
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
}

struct BenchResult: Codable {
    var precision: String
    var weightBytes: Int
    var rssBytes: Int
    var quantizeSeconds: Double
    var prefillTokensPerSecond: Double
    var decodeTokensPerSecond: Double
    var secondsFor50Tokens: Double

    enum CodingKeys: String, CodingKey {
        case precision, weightBytes = "weight_bytes", rssBytes = "rss_bytes", quantizeSeconds = "quantize_s"
        case prefillTokensPerSecond = "prefill_tok_s", decodeTokensPerSecond = "decode_tok_s", secondsFor50Tokens = "seconds_50_tokens"
    }
}

struct BenchReport: Codable {
    var machine: String
    var threads: Int
    var results: [BenchResult]
}

/// The table, a terminal bar chart, and the SVG version of the seed's two pictures.
enum BenchCharts {
    static func mib(_ b: Int) -> Double { Double(b) / 1_048_576 }

    static func table(_ r: BenchReport) -> String {
        var out = "\(r.machine), \(r.threads) threads\n\n"
        out += "precision  weights MiB  RSS MiB  quantize s  prefill tok/s  decode tok/s  50 tokens s\n"
        for x in r.results {
            out += String(format: "%@%11.1f%9.1f%12.2f%15.1f%14.1f%13.2f\n", x.precision.padding(toLength: 9, withPad: " ", startingAt: 0),
                          mib(x.weightBytes), mib(x.rssBytes), x.quantizeSeconds, x.prefillTokensPerSecond, x.decodeTokensPerSecond, x.secondsFor50Tokens)
        }
        let maxBytes = r.results.map(\.weightBytes).max() ?? 1, maxSpeed = r.results.map(\.decodeTokensPerSecond).max() ?? 1
        out += "\nmemory (weights)                            decode speed\n"
        for x in r.results {
            let m = Int((Double(x.weightBytes) / Double(maxBytes) * 30).rounded())
            let s = Int((x.decodeTokensPerSecond / max(maxSpeed, 1e-9) * 30).rounded())
            out += x.precision.padding(toLength: 6, withPad: " ", startingAt: 0) + String(repeating: "█", count: max(m, 1)).padding(toLength: 32, withPad: " ", startingAt: 0)
                + "      " + String(repeating: "█", count: max(s, 1)) + String(format: " %.1f tok/s\n", x.decodeTokensPerSecond)
        }
        return out
    }

    /// Bars of weight memory per precision, and a line of seconds per generated token.
    static func svg(_ r: BenchReport) -> String {
        let w = 860.0, h = 360.0, pad = 50.0, panel = (w - 3 * pad) / 2
        let n = Double(max(r.results.count, 1))
        let maxMiB = r.results.map { mib($0.weightBytes) }.max() ?? 1
        let secondsPerToken = r.results.map { 1 / max($0.decodeTokensPerSecond, 1e-9) }
        let maxSec = secondsPerToken.max() ?? 1
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(pad)\" y=\"24\" font-size=\"14\">Weight memory per precision (MiB)</text>\n"
        s += "<text x=\"\(2 * pad + panel)\" y=\"24\" font-size=\"14\">Seconds per generated token</text>\n"
        let base = h - pad
        for (i, x) in r.results.enumerated() {
            let bw = panel / n * 0.7
            let bx = pad + panel / n * Double(i) + panel / n * 0.15
            let bh = mib(x.weightBytes) / maxMiB * (h - 2 * pad - 20)
            s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4a7bd0\"/>\n", bx, base - bh, bw, bh)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", bx + bw / 2, base + 16, x.precision)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f</text>\n", bx + bw / 2, base - bh - 4, mib(x.weightBytes))
        }
        var points: [String] = []
        for (i, sec) in secondsPerToken.enumerated() {
            let px = 2 * pad + panel + panel / n * (Double(i) + 0.5)
            let py = base - sec / maxSec * (h - 2 * pad - 20)
            points.append(String(format: "%.1f,%.1f", px, py))
            s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#d0614a\"/>\n", px, py)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", px, base + 16, r.results[i].precision)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.3f</text>\n", px, py - 8, sec)
        }
        s += "<polyline fill=\"none\" stroke=\"#d0614a\" stroke-width=\"2\" points=\"\(points.joined(separator: " "))\"/>\n"
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", pad, base, pad + panel, base)
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", 2 * pad + panel, base, 2 * pad + 2 * panel, base)
        s += "<text x=\"\(pad)\" y=\"\(Int(h) - 8)\" fill=\"#555\">\(r.machine.replacingOccurrences(of: "&", with: "&amp;")), \(r.threads) threads</text>\n"
        return s + "</svg>\n"
    }
}
