import Foundation

/// `bench`'s table and its chart (`--svg`).
///
/// The chart is one row per precision across panels that share the rows: prefill and
/// decode speed, memory (weights + KV cache + scratch as the run allocated them, stacked;
/// the runs' peak RSS is in the table, the JSON and the bar's tooltip), and with
/// `--quality` the mean KL divergence from f32
/// (log scale) and the perplexity. Every panel has its own axis from zero (KLD: from the
/// decade below the smallest value), with units; values are written after the bars, in
/// room kept free for them; error bars are the runs' min–max.
enum BenchCharts {
    static func mib(_ b: Int) -> Double { Double(b) / 1_048_576 }
    static func mib(_ b: Double) -> Double { b / 1_048_576 }

    // MARK: - Table

    static func table(_ r: BenchReport) -> String {
        var out = "\(r.model) · \(displayDate(r.date)) · \(r.machine) · \(r.threads) threads\n"
        out += (r.depth > 0 ? "after \(r.depth) tokens of context, " : "") + "prompt \(r.promptTokens) tokens, \(r.genTokens) generated · memory with a KV cache of \(r.context) tokens\(r.kvCache.map { " (\($0))" } ?? "") · "
        out += r.repeats > 1 ? "median of \(r.repeats) runs (min–max)" : "one run"
        out += ", each in a fresh process\n\n"
        func spread(_ s: Spread) -> String {
            r.repeats > 1 ? "\(speed(s.median)) (\(speed(s.min))–\(speed(s.max)))" : speed(s.median)
        }
        var rows = [["precision", "weights MiB", "KV MiB", "scratch MiB", "total MiB", "peak RSS MiB", "load s", "prefill tok/s", "decode tok/s"]]
        for x in r.results {
            rows.append([x.precision, String(format: "%.1f", mib(x.weightBytes)), String(format: "%.1f", mib(x.kvBytes)),
                         String(format: "%.1f", mib(x.scratchBytes)), String(format: "%.1f", mib(x.totalBytes)),
                         String(format: "%.1f", mib(x.rssBytes)), String(format: "%.2f", x.loadSeconds), spread(x.prefill), spread(x.decode)])
        }
        out += columns(rows)
        if let stream = r.streamGBPerSecond, r.results.contains(where: { $0.decodeGBPerSecond != nil }) {
            // Decode reads every weight (and the cache so far) once per token: its ceiling is
            // the memory's streaming rate.
            // Each run against the rate measured around it (the memory's rate drifts).
            out += String(format: "\nroofline: memory streams %.1f GB/s with %d threads (read test, 256 MiB, around each run; the median); decode reads per token:\n\n", stream, r.threads)
            var q = [["precision", "read/token MiB", "decode GB/s", "of stream"]]
            func percent(_ x: Double) -> String { String(format: "%.0f %%", 100 * x) }
            for x in r.results {
                guard let bytes = x.decodeBytesPerToken, let rate = x.decodeGBPerSecond else { continue }
                let share = x.decodeOfStream.map { s in
                    r.repeats > 1 ? "\(percent(s.median)) (\(percent(s.min))–\(percent(s.max)))" : percent(s.median)
                } ?? (stream > 0 ? percent(rate / stream) : "?")
                q.append([x.precision, String(format: "%.1f", mib(bytes)), String(format: "%.1f", rate), share])
            }
            out += columns(q)
            if r.results.contains(where: { $0.decodeBudget != nil }) {
                // Where the roofline's gap comes from: the products alone against the memory,
                // and the time that reads little of it (attention at short contexts computes
                // more than it reads; between products the caller works alone).
                out += "\nwhere decode's time goes (shares of its wall time; products GB/s: the weights over the products' own time):\n\n"
                var b = [["precision", "products", "attention", "the rest", "products GB/s", "of stream"]]
                func cell(_ s: Spread, _ f: (Double) -> String) -> String {
                    r.repeats > 1 ? "\(f(s.median)) (\(f(s.min))–\(f(s.max)))" : f(s.median)
                }
                for x in r.results {
                    guard let d = x.decodeBudget else { continue }
                    b.append([x.precision, cell(d.products, percent), cell(d.attention, percent), cell(d.rest, percent),
                              cell(d.productsGBPerSecond) { String(format: "%.1f", $0) }, d.productsOfStream.map { cell($0, percent) } ?? "?"])
                }
                out += columns(b)
            }
        }
        if let file = r.qualityFile, let window = r.qualityWindow {
            let scored = r.results.compactMap { $0.quality?.tokens }.first ?? 0
            out += "\nquality: \(URL(fileURLWithPath: file).lastPathComponent), first \(r.qualityTokens ?? 0) tokens, windows of \(window), \(scored) tokens scored; KLD against f32\n\n"
            var q = [["precision", "mean KLD", "p99 KLD", "same top-1", "perplexity"]]
            for x in r.results {
                guard let e = x.quality else { continue }
                let reference = x.precision == "f32"
                q.append([x.precision, reference ? "(reference)" : String(format: "%.6f", e.kldMean),
                          reference ? "" : String(format: "%.6f", e.kldP99), reference ? "" : String(format: "%.2f %%", 100 * e.top1Agreement),
                          String(format: "%.4f", e.perplexity)])
            }
            out += columns(q)
        }
        return out
    }

    /// Left-aligned first column, right-aligned others, two spaces apart.
    static func columns(_ rows: [[String]]) -> String {
        let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { c, cell in
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                return c == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }

    /// "2026-12-05T21:30:00Z" → "2026-12-05 21:30 UTC".
    static func displayDate(_ iso: String) -> String {
        guard iso.count >= 16 else { return iso }
        return iso.prefix(10) + " " + iso.dropFirst(11).prefix(5) + " UTC"
    }

    // MARK: - Number formats

    static func speed(_ v: Double) -> String {
        v >= 100 ? String(format: "%.0f", v) : v >= 10 ? String(format: "%.1f", v) : String(format: "%.2f", v)
    }

    /// Three significant digits, no exponent above 1e-4.
    static func significant(_ v: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) < 1e-4 {
            // 6.1e-5, not 6.1e-05
            let exponent = Int(floor(log10(abs(v))))
            return String(format: "%.1fe%d", v / pow(10, Double(exponent)), exponent)
        }
        let digits = max(0, 2 - Int(floor(log10(abs(v)))))
        return String(format: "%.\(digits)f", v)
    }

    // MARK: - SVG

    static let font = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif"
    static let speedColour = "#3a6ea5"
    static let qualityColour = "#c0592b"
    /// Weights, KV cache, scratch: dark, middle, light (apart in grayscale too).
    static let memoryColours = ["#2d3e73", "#3aa0a0", "#d6e685"]

    struct Row {
        var precision: String
        /// Stacked from the axis start: value and colour.
        var segments: [(Double, String)] = []
        var low: Double?
        var high: Double?
        var label = ""
        /// Shown instead of a bar ("reference").
        var note: String?
        var tooltip = ""
        var extent: Double { max(segments.reduce(0) { $0 + $1.0 }, high ?? 0) }
    }

    struct Panel {
        var id: String
        var title: String
        var unit: String
        var log = false
        var rows: [Row]
    }

    struct Axis {
        var lo: Double
        var hi: Double
        var log: Bool
        var ticks: [Double]
        /// Every how many ticks a label is written (log axes with many decades).
        var labelEvery = 1

        func fraction(_ v: Double) -> Double {
            if log {
                guard v > 0 else { return 0 }
                return Swift.max(0, Swift.min(1, (log10(v) - log10(lo)) / (log10(hi) - log10(lo))))
            }
            return Swift.max(0, Swift.min(1, (v - lo) / (hi - lo)))
        }

        func tickLabel(_ v: Double) -> String {
            if log {
                let k = Int(log10(v).rounded())
                return (-3...3).contains(k) ? String(format: "%g", v) : "1e\(k)"
            }
            let step = ticks.count > 1 ? ticks[1] - ticks[0] : 1
            // As many decimals as the step needs (0.25 → 2, 0.5 → 1, 50 → 0).
            let decimals = (0...6).first { d in
                let scaled = step * pow(10, Double(d))
                return abs(scaled - scaled.rounded()) < 1e-6 * Swift.max(1, scaled)
            } ?? 6
            return String(format: "%.\(decimals)f", v)
        }

        /// From zero to a round number at or above `extent`, with as many ticks (up to 5)
        /// as `width` has room for their labels.
        static func linear(_ extent: Double, width: Double) -> Axis {
            for intervals in [4, 3, 2] {
                let axis = linear(extent, intervals: intervals)
                let widest = axis.ticks.map { BenchCharts.textWidth(axis.tickLabel($0), 11) }.max() ?? 0
                if widest + 10 <= width / Double(axis.ticks.count - 1) { return axis }
            }
            return linear(extent, intervals: 1)
        }

        static func linear(_ extent: Double, intervals: Int) -> Axis {
            guard extent > 0 else { return Axis(lo: 0, hi: 1, log: false, ticks: [0, 1]) }
            let raw = extent / Double(intervals)
            let magnitude = pow(10, floor(log10(raw)))
            let step = [1, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw * 0.999 }!
            let hi = step * ceil(extent / step - 1e-9)
            return Axis(lo: 0, hi: hi, log: false, ticks: stride(from: 0, through: hi + step / 2, by: step).map { $0 })
        }

        /// Whole decades around `values`; labels on as many as `width` has room for.
        static func logarithmic(_ values: [Double], width: Double) -> Axis {
            let positive = values.filter { $0 > 0 && $0.isFinite }
            let lo = floor(log10(positive.min() ?? 1e-3)), hi = Swift.max(lo + 1, ceil(log10(positive.max() ?? 1)))
            var axis = Axis(lo: pow(10, lo), hi: pow(10, hi), log: true, ticks: stride(from: lo, through: hi, by: 1).map { pow(10, $0) })
            let widest = axis.ticks.map { BenchCharts.textWidth(axis.tickLabel($0), 11) }.max() ?? 0
            while widest + 10 > width / Double(axis.ticks.count - 1) * Double(axis.labelEvery) { axis.labelEvery += 1 }
            return axis
        }
    }

    static func panels(_ r: BenchReport) -> [Panel] {
        let runs = r.repeats > 1 ? " (median of \(r.repeats), min–max)" : ""
        func speedRows(_ key: KeyPath<BenchResult, Spread>, _ what: String) -> [Row] {
            r.results.map { x in
                let s = x[keyPath: key]
                return Row(precision: x.precision, segments: [(s.median, speedColour)], low: r.repeats > 1 ? s.min : nil,
                           high: r.repeats > 1 ? s.max : nil, label: speed(s.median),
                           tooltip: "\(x.precision) \(what): \(speed(s.median)) tok/s" + runs.replacingOccurrences(of: "min–max", with: "\(speed(s.min))–\(speed(s.max))"))
            }
        }
        var panels = [
            Panel(id: "prefill", title: "Prefill (\(r.promptTokens)-token prompt)", unit: "tokens per second", rows: speedRows(\.prefill, "prefill")),
            Panel(id: "decode", title: "Decode (\(r.genTokens) tokens)", unit: "tokens per second", rows: speedRows(\.decode, "decode")),
            Panel(id: "memory", title: "Memory allocated", unit: "MiB", rows: r.results.map { x in
                Row(precision: x.precision,
                    segments: zip([x.weightBytes, x.kvBytes, x.scratchBytes], memoryColours).map { (mib($0), $1) },
                    label: String(format: "%.0f", mib(x.totalBytes)),
                    tooltip: String(format: "%@: weights %.1f + KV cache %.1f + scratch %.1f = %.1f MiB; peak RSS %.1f MiB",
                                    x.precision, mib(x.weightBytes), mib(x.kvBytes), mib(x.scratchBytes), mib(x.totalBytes), mib(x.rss.median)))
            }),
        ]
        if r.qualityFile != nil, r.results.contains(where: { $0.quality != nil }) {
            panels.append(Panel(id: "kld", title: "Divergence from f32", unit: "mean KLD, nats (log scale)", log: true, rows: r.results.map { x in
                guard let q = x.quality else { return Row(precision: x.precision, note: "–") }
                if x.precision == "f32" { return Row(precision: x.precision, note: "reference", tooltip: "f32 is the reference") }
                return Row(precision: x.precision, segments: [(q.kldMean, qualityColour)], label: significant(q.kldMean),
                           tooltip: String(format: "%@: mean KLD %.6f, p99 %.6f, same top-1 token %.2f %%", x.precision, q.kldMean, q.kldP99, 100 * q.top1Agreement))
            }))
            let scored = r.results.compactMap { $0.quality?.tokens }.first ?? 0
            panels.append(Panel(id: "perplexity", title: "Perplexity", unit: "\(scored) tokens scored (log scale)", log: true, rows: r.results.map { x in
                guard let q = x.quality else { return Row(precision: x.precision, note: "–") }
                return Row(precision: x.precision, segments: [(q.perplexity, qualityColour)],
                           label: String(format: q.perplexity >= 1000 ? "%.0f" : q.perplexity >= 100 ? "%.1f" : "%.2f", q.perplexity),
                           tooltip: String(format: "%@: perplexity %.4f", x.precision, q.perplexity))
            }))
        }
        return panels
    }

    /// Approximate width of `text` in DejaVu Sans at `size` px (digits are 0.64 em).
    static func textWidth(_ text: String, _ size: Double) -> Double { Double(text.count) * size * 0.62 }

    static func svg(_ r: BenchReport) -> String {
        let panels = panels(r)
        let n = r.results.count
        let margin = 24.0
        let labelColumn = max(44, Double(r.results.map(\.precision.count).max() ?? 3) * 9) + 14
        let gap = 30.0
        let minimumWidth = 900.0
        var panelWidth = 200.0
        var width = 2 * margin + labelColumn + Double(panels.count) * panelWidth + Double(panels.count - 1) * gap
        if width < minimumWidth {
            panelWidth += (minimumWidth - width) / Double(panels.count)
            width = minimumWidth
        }
        let rowHeight = 30.0, barHeight = 18.0
        let groupY = 112.0, titleY = 138.0, top = 150.0
        let bottom = top + Double(n) * rowHeight
        let legendY = bottom + 62
        let height = legendY + 46

        var s = ""
        func text(_ x: Double, _ y: Double, _ content: String, size: Double = 12, anchor: String = "start", fill: String = "#222",
                  weight: String? = nil, style: String? = nil) {
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%g\"", x, y, size)
            if anchor != "start" { s += " text-anchor=\"\(anchor)\"" }
            if fill != "#222" { s += " fill=\"\(fill)\"" }
            if let weight { s += " font-weight=\"\(weight)\"" }
            if let style { s += " font-style=\"\(style)\"" }
            s += ">\(escape(content))</text>\n"
        }
        func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, _ stroke: String, _ w: Double = 1) {
            s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%@\" stroke-width=\"%g\"/>\n", x1, y1, x2, y2, stroke, w)
        }

        let quality = panels.count > 3
        let title = "\(r.model): " + (quality ? "speed, memory and quality" : "speed and memory") + " by precision"
        let subtitle = "\(displayDate(r.date)) · \(r.cpu) · \(r.threads) thread\(r.threads == 1 ? "" : "s") · " + (r.depth > 0 ? "after \(r.depth) tokens of context, " : "")
            + "prompt \(r.promptTokens) tokens, \(r.genTokens) generated"
        var detail = r.repeats > 1 ? "Median of \(r.repeats) runs, error bars min–max" : "One run per precision"
        detail += "; each run loads one precision in a fresh process. Kernels \(r.kernels)."
        if quality, let file = r.qualityFile {
            detail += " Quality: first \(r.qualityTokens ?? 0) tokens of \(URL(fileURLWithPath: file).lastPathComponent), windows of \(r.qualityWindow ?? 0)."
        }

        s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" "
        s += "font-family=\"\(font)\" role=\"img\">\n"
        s += "<title>\(escape(title + " — " + subtitle))</title>\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        text(margin, 36, title, size: 20, weight: "bold")
        text(margin, 60, subtitle, size: 13.5, fill: "#333")
        text(margin, 80, detail, size: 12, fill: "#555")

        // Row bands across every panel, and the precision names.
        let plotLeft = margin + labelColumn
        for i in 0..<n {
            let y = top + Double(i) * rowHeight
            if i % 2 == 1 {
                s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#f3f4f6\"/>\n", margin, y, width - 2 * margin, rowHeight)
            }
            text(plotLeft - 12, y + rowHeight / 2 + 4.5, r.results[i].precision, size: 13, anchor: "end", weight: "bold")
        }

        // Group headings over their panels.
        var groups: [(String, Int, Int)] = [("Speed · higher is better", 0, 1), ("Memory · lower is better", 2, 2)]
        if quality { groups.append(("Quality · lower is better", 3, panels.count - 1)) }
        for (name, first, last) in groups {
            let x1 = plotLeft + Double(first) * (panelWidth + gap), x2 = plotLeft + Double(last) * (panelWidth + gap) + panelWidth
            text(x1, groupY, name, size: 13, fill: "#111", weight: "bold")
            line(x1, groupY + 7, x2, groupY + 7, "#888")
        }

        for (p, panel) in panels.enumerated() {
            let x0 = plotLeft + Double(p) * (panelWidth + gap)
            // Room after the longest bar for its value.
            let labelRoom = (panel.rows.map { textWidth($0.label, 11) }.max() ?? 0) + 12
            let plotWidth = panelWidth - labelRoom
            let axis = panel.log ? Axis.logarithmic(panel.rows.flatMap { [$0.extent, $0.segments.first?.0 ?? 0] }, width: plotWidth)
                : Axis.linear(panel.rows.map(\.extent).max() ?? 0, width: plotWidth)
            func x(_ v: Double) -> Double { x0 + axis.fraction(v) * plotWidth }

            s += "<g id=\"panel-\(panel.id)\" class=\"panel\">\n"
            text(x0, titleY, panel.title, size: 12.5, fill: "#111")
            for (t, tick) in axis.ticks.enumerated() {
                line(x(tick), top - 2, x(tick), bottom, t == 0 ? "#444" : "#d4d4d4", t == 0 ? 1.2 : 1)
                if t % axis.labelEvery == 0 { text(x(tick), bottom + 16, axis.tickLabel(tick), size: 11, anchor: "middle", fill: "#444") }
            }
            text(x0 + plotWidth / 2, bottom + 34, panel.unit, size: 11.5, anchor: "middle", fill: "#444")
            for (i, row) in panel.rows.enumerated() {
                let cy = top + Double(i) * rowHeight + rowHeight / 2
                s += "<g class=\"bar\" data-precision=\"\(escape(row.precision))\">"
                if !row.tooltip.isEmpty { s += "<title>\(escape(row.tooltip))</title>" }
                s += "\n"
                if let note = row.note {
                    text(x0 + 6, cy + 4, note, size: 11, fill: "#666", style: "italic")
                    s += "</g>\n"
                    continue
                }
                var start = axis.lo
                for (value, colour) in row.segments where value > 0 {
                    // A log axis has no zero: its one bar runs from the axis start to the value.
                    let x1 = x(start), x2 = axis.log ? x(value) : x(start + value)
                    s += String(format: "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"%@\"/>\n",
                                x1, cy - barHeight / 2, max(x2 - x1, 0.5), barHeight, colour)
                    start += value
                }
                var end = axis.log ? x(row.segments.first?.0 ?? axis.lo) : x(start)
                if let low = row.low, let high = row.high {
                    line(x(low), cy, x(high), cy, "#111", 1.3)
                    line(x(low), cy - 5, x(low), cy + 5, "#111", 1.3)
                    line(x(high), cy - 5, x(high), cy + 5, "#111", 1.3)
                    end = max(end, x(high))
                }
                text(end + 5, cy + 4, row.label, size: 11)
                s += "</g>\n"
            }
            s += "</g>\n"
        }

        // Legend: the memory stack, the error bars.
        var lx = plotLeft
        let ly = legendY
        for (name, colour) in zip(["weights", "KV cache (\(r.context) tokens)", "scratch"], memoryColours) {
            s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%@\" stroke=\"#555\" stroke-width=\"0.5\"/>\n", lx, ly - 10, colour)
            text(lx + 17, ly, name, size: 11.5, fill: "#333")
            lx += 17 + textWidth(name, 11.5) + 18
        }
        if r.repeats > 1 {
            line(lx, ly - 4, lx + 18, ly - 4, "#111", 1.3)
            line(lx, ly - 9, lx, ly + 1, "#111", 1.3)
            line(lx + 18, ly - 9, lx + 18, ly + 1, "#111", 1.3)
            text(lx + 24, ly, "min–max of \(r.repeats) runs", size: 11.5, fill: "#333")
        }

        // How it was made.
        let command = r.command
        let room = Int((width - 2 * margin) / (10.5 * 0.62)) - 2
        let shown = command.count <= room ? command : String(command.prefix(room - 1)) + "…"
        text(margin, height - 14, shown, size: 10.5, fill: "#666")
        return s + "</svg>\n"
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for c in text.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            // Characters XML 1.0 does not allow.
            case _ where c.value < 0x20 && c != "\t" && c != "\n": out += "?"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}
