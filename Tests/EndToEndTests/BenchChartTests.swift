import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

/// `nibble bench --svg`: the chart is well-formed XML with a title naming the model, the
/// date, the CPU, the threads and the lengths, one bar per precision in every panel,
/// error bars from `--repeats`, and a quality panel from `--quality`; `--json` has the
/// medians and their spread.
@Suite struct BenchChartTests {
    /// What the chart holds: its text, and per panel the precisions of its bars in order.
    final class ChartReader: NSObject, XMLParserDelegate {
        var root: String?
        var text = ""
        var panels: [String: [String]] = [:]
        var panelOrder: [String] = []
        var errorBarLines: [String: Int] = [:]
        private var panel: String?
        private var inBar = false

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            if root == nil { root = name }
            if name == "g", attributes["class"] == "panel", let id = attributes["id"] {
                panel = id
                panelOrder.append(id)
                panels[id] = []
            } else if name == "g", attributes["class"] == "bar", let panel {
                panels[panel]?.append(attributes["data-precision"] ?? "?")
                inBar = true
            } else if name == "line", inBar, let panel {
                errorBarLines[panel, default: 0] += 1
            }
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "g" {
                if inBar { inBar = false } else { panel = nil }
            }
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) { text += string + "\n" }
    }

    @Test func benchDrawsAChartAndReportsSpreads() throws {
        let model = try requireModel()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = dir.appendingPathComponent("text.txt").path
        try String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 20).write(toFile: text, atomically: true, encoding: .utf8)
        let svg = dir.appendingPathComponent("bench.svg").path
        let run = try nibble(["bench", "--model", model, "--precision", "q8,q4", "--prompt-tokens", "8", "--gen-tokens", "4",
                              "--context", "64", "--repeats", "2", "--quality", text, "--quality-tokens", "64", "--svg", svg, "--json"])
        #expect(run.status == 0, "\(run.stderr)")

        // JSON: medians at the top level (as before --repeats), the runs and their range beside.
        let report = try jsonObject(run.stdout)
        #expect(report["model"] as? String == "SmolLM2-135M-Instruct")
        #expect(report["repeats"] as? Int == 2)
        let date = try #require(report["date"] as? String)
        #expect(date.wholeMatch(of: try Regex(#"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"#)) != nil, "\(date)")
        let threads = try #require(report["threads"] as? Int)
        #expect((report["stream_gb_s"] as? Double ?? 0) > 0.5, "the memory read test: \(report["stream_gb_s"] ?? "missing")")
        let results = try #require(report["results"] as? [[String: Any]])
        #expect(results.compactMap { $0["precision"] as? String } == ["q8", "q4"])
        for r in results {
            for key in ["weight_bytes", "kv_bytes", "scratch_bytes", "rss_bytes"] { #expect((r[key] as? Int ?? 0) > 0, "\(key)") }
            for (key, median) in [("prefill", "prefill_tok_s"), ("decode", "decode_tok_s"), ("load", "load_s")] {
                let spread = try #require(r[key] as? [String: Any], "\(key)")
                let runs = try #require(spread["runs"] as? [Double])
                #expect(runs.count == 2)
                let lo = try #require(spread["min"] as? Double), mid = try #require(spread["median"] as? Double), hi = try #require(spread["max"] as? Double)
                #expect(lo == runs.min() && hi == runs.max() && abs(mid - (lo + hi) / 2) < 1e-9 * max(1, hi), "\(key): \(spread)")
                #expect(r[median] as? Double == mid)
                if key != "load" { #expect(lo > 0, "\(key)") }
            }
            // The roofline: a decoded token reads every weight (the head is the tied embedding)
            // and the keys and values of positions 0...p, for p = 8, 9, 10: on average 10
            // positions × 30 layers × K and V × 192 × 2 bytes (f16).
            let weights = try #require(r["weight_bytes"] as? Int)
            #expect(r["decode_bytes_per_token"] as? Int == weights + 10 * 30 * 2 * 192 * 2)
            let rate = try #require(r["decode_gb_s"] as? Double), decode = try #require(r["decode_tok_s"] as? Double)
            #expect(abs(rate - Double(weights + 230_400) * decode / 1e9) < 1e-9 * rate)
            // Each run's decode against the read rate measured around that run.
            let share = try #require(r["decode_of_stream"] as? [String: Any])
            let shares = try #require(share["runs"] as? [Double])
            #expect(shares.count == 2 && shares.allSatisfy { $0 > 0 }, "\(share)")
            // Where decode's time went, run by run: the products' and attention's shares and the
            // rest add up to the whole, and the products' rate over their own share of the time
            // is the weights' rate over all of it.
            let budget = try #require(r["decode_budget"] as? [String: Any])
            func runs(_ key: String) throws -> [Double] {
                try #require((budget[key] as? [String: Any])?["runs"] as? [Double], "\(key): \(budget)")
            }
            let products = try runs("products"), attention = try runs("attention"), rest = try runs("rest")
            let productsRate = try runs("products_gb_s")
            let decodes = try #require((r["decode"] as? [String: Any])?["runs"] as? [Double])
            #expect(products.count == 2 && attention.count == 2 && rest.count == 2 && productsRate.count == 2)
            for i in 0..<min(products.count, attention.count, rest.count, productsRate.count, decodes.count) {
                #expect(products[i] > 0.3 && products[i] < 1 && attention[i] > 0 && attention[i] < products[i], "run \(i): \(budget)")
                #expect(abs(products[i] + attention[i] + rest[i] - 1) < 1e-9)
                #expect(abs(productsRate[i] * products[i] - Double(weights) * decodes[i] / 1e9) < 1e-6 * productsRate[i], "run \(i)")
            }
            #expect(((budget["products_of_stream"] as? [String: Any])?["runs"] as? [Double])?.count == 2, "\(budget)")
            let quality = try #require(r["quality"] as? [String: Any])
            #expect(quality["tokens"] as? Int == 31)  // one window of 64, its second half scored
            #expect((quality["kld_mean"] as? Double ?? 0) > 0)
            #expect((quality["perplexity"] as? Double ?? 0) > 1)
        }

        // The chart.
        let data = try Data(contentsOf: URL(fileURLWithPath: svg))
        let parser = XMLParser(data: data)
        let chart = ChartReader()
        parser.delegate = chart
        #expect(parser.parse(), "not well-formed: \(String(describing: parser.parserError))")
        #expect(chart.root == "svg")
        let day = String(date.prefix(10))
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let cpu = try #require(cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces))
        for part in ["SmolLM2-135M-Instruct", day, cpu, "\(threads) thread", "prompt 8 tokens, 4 generated", "Median of 2 runs"] {
            #expect(chart.text.contains(part), "the chart does not say '\(part)'")
        }
        #expect(!chart.text.contains("50 tokens"))
        #expect(chart.panelOrder == ["panel-prefill", "panel-decode", "panel-memory", "panel-kld", "panel-perplexity"])
        for (panel, bars) in chart.panels { #expect(bars == ["q8", "q4"], "\(panel)") }
        // Error bars (a range and two caps per bar) on the speed panels.
        #expect(chart.errorBarLines["panel-prefill"] == 6 && chart.errorBarLines["panel-decode"] == 6)
    }
}
