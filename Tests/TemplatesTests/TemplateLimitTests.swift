import Foundation
import Testing
@testable import Templates

// Hostile templates: each reproducer must end in a TemplateError naming the limit (or,
// for arithmetic, the overflow), never in a crash, a hang or a huge allocation.

/// The error a template gives when parsed, then rendered; nil if it rendered.
private func failure(_ source: String, limits: TemplateLimits = .default, context: [String: Value] = [:],
                     shouldStop: (@Sendable () -> Bool)? = nil) -> TemplateError? {
    do {
        let template = try ChatTemplate(source: source, name: "hostile.jinja", limits: limits)
        _ = try template.render(context: context, timeZone: TimeZone(identifier: "UTC")!, shouldStop: shouldStop)
        return nil
    } catch let error as TemplateError {
        return error
    } catch {
        Issue.record("not a TemplateError: \(error)")
        return nil
    }
}

/// Asserts the exact kind and message, and that the description names the template and line.
private func expectFailure(_ source: String, _ kind: TemplateError.Kind, _ message: String, line: Int = 1,
                           limits: TemplateLimits = .default, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
    guard let error = failure(source, limits: limits) else {
        Issue.record("rendered without error", sourceLocation: sourceLocation)
        return
    }
    #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
    #expect(error.message == message, sourceLocation: sourceLocation)
    #expect(error.line == line, sourceLocation: sourceLocation)
    #expect(error.column > 0, sourceLocation: sourceLocation)
    #expect(error.description == "hostile.jinja:\(error.line):\(error.column): \(message)", sourceLocation: sourceLocation)
}

private func render(_ source: String, limits: TemplateLimits = .default) throws -> String {
    try ChatTemplate(source: source, limits: limits).render(context: [:], timeZone: TimeZone(identifier: "UTC")!)
}

/// Runs `body` on a thread with a small stack (512 KiB unless given) and waits for it.
func onSmallStack(_ stackSize: Int = 512 << 10, _ body: @escaping @Sendable () -> Void) {
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        body()
        done.signal()
    }
    thread.stackSize = stackSize
    thread.start()
    done.wait()
}

private let nestingMessage = "blocks and expressions nested deeper than 100 (TemplateLimits.maxNesting)"
private let callMessage = "macro calls nested deeper than 200 (TemplateLimits.maxCallDepth; the template may recurse without end)"
private let tooLarge = "integer too large: the result does not fit in 64 bits"

private func stringMessage(_ bytes: Int) -> String {
    "the string would be \(bytes) bytes long, over the limit of 16777216 bytes (TemplateLimits.maxStringBytes)"
}

private func itemsMessage(_ count: Int) -> String {
    "the sequence would have \(count) items, over the limit of 4194304 (TemplateLimits.maxItems)"
}

private func repeated(_ s: String, _ n: Int) -> String { String(repeating: s, count: n) }

// MARK: - Depth

/// Templates that nest 100,000 deep, and what the parser says of each.
let deepTemplates: [(name: String, source: String)] = [
    ("parentheses", "{{ " + repeated("(", 100_000) + "1" + repeated(")", 100_000) + " }}"),
    ("lists", "{{ " + repeated("[", 100_000) + "1" + repeated("]", 100_000) + " }}"),
    ("dicts", "{{ " + repeated("{1: ", 100_000) + "1" + repeated("}", 100_000) + " }}"),
    ("unary minus", "{{ " + repeated("-", 100_000) + "1 }}"),
    ("not", "{{ " + repeated("not ", 100_000) + "1 }}"),
    ("calls", "{{ " + repeated("f(", 100_000) + "1" + repeated(")", 100_000) + " }}"),
    ("inline ifs", "{{ 1" + repeated(" if x else 1", 100_000) + " }}"),
    ("attribute chain", "{{ x" + repeated(".a", 100_000) + " }}"),
    ("subscript chain", "{{ x" + repeated("[0]", 100_000) + " }}"),
    ("call chain", "{{ x" + repeated("()", 100_000) + " }}"),
    ("filter chain", "{{ 1" + repeated("|abs", 100_000) + " }}"),
    ("binary chain", "{{ 1" + repeated(" + 1", 100_000) + " }}"),
    ("and chain", "{{ 1" + repeated(" and 1", 100_000) + " }}"),
    ("if blocks", repeated("{% if true %}", 100_000) + "x" + repeated("{% endif %}", 100_000)),
    ("for blocks", repeated("{% for x in y %}", 100_000) + repeated("{% endfor %}", 100_000)),
    ("filter blocks", repeated("{% filter upper %}", 100_000) + "x" + repeated("{% endfilter %}", 100_000)),
    ("set blocks", repeated("{% set x %}", 100_000) + repeated("{% endset %}", 100_000)),
    ("macros", repeated("{% macro m() %}", 100_000) + repeated("{% endmacro %}", 100_000)),
    ("assignment target", "{% set " + repeated("(", 100_000) + "a" + repeated(")", 100_000) + " = 1 %}"),
]

@Suite struct NestingLimitTests {
    @Test(arguments: deepTemplates.map(\.name))
    func parserRefusesDeepNesting(_ name: String) {
        let source = deepTemplates.first { $0.name == name }!.source
        expectFailure(source, .limit, nestingMessage)
    }

    /// The same on a 512 KiB thread: the worker thread's stack is used, not the caller's.
    @Test func deepNestingOnASmallStack() {
        onSmallStack {
            for (name, source) in deepTemplates {
                let error = failure(source)
                #expect(error?.kind == .limit, "\(name): \(String(describing: error))")
                #expect(error?.message == nestingMessage, "\(name)")
            }
        }
    }

    /// Nesting up to the limit is fine (a real template nests less than 30).
    @Test func nestingUpToTheLimitRenders() throws {
        #expect(try render("{{ " + repeated("(", 99) + "1" + repeated(")", 99) + " }}") == "1")
        #expect(try render("{{ " + repeated("-", 99) + "1 }}") == "-1")
        // Each `if` is a level, and so is its condition.
        #expect(try render(repeated("{% if true %}", 99) + "x" + repeated("{% endif %}", 99)) == "x")
        var limits = TemplateLimits()
        limits.maxNesting = 10
        #expect(try render("{{ " + repeated("(", 9) + "1" + repeated(")", 9) + " }}", limits: limits) == "1")
        expectFailure("{{ " + repeated("(", 10) + "1" + repeated(")", 10) + " }}", .limit,
                      "blocks and expressions nested deeper than 10 (TemplateLimits.maxNesting)", limits: limits)
    }

    @Test func macroRecursionStops() {
        expectFailure("{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}", .limit, callMessage)
    }

    @Test func callerRecursionStops() {
        expectFailure("{% macro g() %}{{ caller() }}{% endmacro %}{% macro f() %}{% call g() %}{{ f() }}{% endcall %}{% endmacro %}{{ f() }}",
                      .limit, callMessage)
        expectFailure("{% macro f() %}{% call f() %}{{ caller() }}{% endcall %}{% endmacro %}{{ f() }}", .limit, callMessage)
        expectFailure("{% macro f() %}{% filter upper %}{{ f() }}{% endfilter %}{% endmacro %}{{ f() }}", .limit, callMessage)
        expectFailure("{% macro f() %}{% set x %}{{ f() }}{% endset %}{% endmacro %}{{ f() }}", .limit, callMessage)
        expectFailure("{% set ns = namespace() %}{% macro f() %}{{ ns.g() }}{% endmacro %}{% set ns.g = f %}{{ f() }}", .limit, callMessage)
    }

    /// Recursion that passes the render depth before the call depth.
    @Test func renderDepthStops() {
        var limits = TemplateLimits()
        limits.maxCallDepth = 1_000_000
        expectFailure("{% macro f(x) %}{% if true %}{% for i in [1] %}{{ (f(x) ~ 1) | string }}{% endfor %}{% endif %}{% endmacro %}{{ f(1) }}",
                      .limit,
                      "statements and expressions nested deeper than 1000 while rendering (TemplateLimits.maxRenderDepth; the template may recurse without end)",
                      limits: limits)
    }

    @Test func recursionOnASmallStack() {
        onSmallStack {
            let error = failure("{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}")
            #expect(error?.message == callMessage)
            var limits = TemplateLimits()
            limits.maxCallDepth = 1_000_000
            let deep = failure("{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}", limits: limits)
            #expect(deep?.kind == .limit)
            #expect(deep?.message.hasPrefix("statements and expressions nested deeper than 1000 while rendering") == true)
        }
    }

    /// The backstop: with the counted limits out of the way and no worker thread, the
    /// parser and the interpreter stop before the end of a 512 KiB stack.
    @Test func stackGuardStopsBeforeTheStackEnds() {
        var limits = TemplateLimits()
        limits.maxNesting = 10_000_000
        limits.maxCallDepth = 10_000_000
        limits.maxRenderDepth = 10_000_000
        let unlimited = limits
        /// `body` must stop at the stack guard, not at a limit and not by crashing.
        func expectStackGuard(_ what: String, _ body: () throws -> Void) {
            do {
                try body()
                Issue.record("\(what) went through")
            } catch let error as TemplateError {
                #expect(error.kind == .limit, "\(what)")
                #expect(error.message == "the template nests too deeply for the stack of this thread", "\(what)")
            } catch {
                Issue.record("\(what): \(error)")
            }
        }
        onSmallStack {
            for source in ["{{ " + repeated("(", 100_000) + "1" + repeated(")", 100_000) + " }}",
                           repeated("{% if true %}", 100_000) + repeated("{% endif %}", 100_000)] {
                expectStackGuard("parsing") { try ChatTemplate.parseInline(source: source, limits: unlimited) }
            }
            expectStackGuard("rendering") {
                let template = try ChatTemplate(source: "{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}", limits: unlimited)
                _ = try template.renderInline(context: [:])
            }
        }
    }

    @Test func selfContainingNamespacePrintsAsPython() throws {
        #expect(try render("{% set ns = namespace(a=1) %}{% set ns.me = ns %}{{ ns }}") == "<Namespace {'a': 1, 'me': <Namespace {...}>}>")
        #expect(try render("{% set ns = namespace() %}{% set ns.l = [ns] %}{{ ns.l }}") == "[<Namespace {'l': [<Namespace {...}>]}>]")
    }

    @Test func formatFieldsNestAtMostTwoDeep() throws {
        #expect(try render("{{ '{:{1}}'.format(1, 3) }}") == "  1")
        expectFailure("{{ '" + repeated("{:", 10_000) + repeated("}", 10_000) + "'.format(1) }}", .runtime, "Max string recursion exceeded")
    }
}

// MARK: - Integers

@Suite struct IntegerOverflowTests {
    @Test(arguments: [
        "{{ (-9223372036854775807 - 1) // -1 }}",
        "{{ (-9223372036854775807 - 1) | abs }}",
        "{{ -(-9223372036854775807 - 1) }}",
        "{{ 9223372036854775807 + 1 }}",
        "{{ (-9223372036854775807 - 1) - 1 }}",
        "{{ 9223372036854775807 * 2 }}",
        "{{ 2 ** 64 }}",
        "{{ 3 ** 10000000000 }}",
        "{{ [9223372036854775807, 1] | sum }}",
        "{{ 1e300 | int }}",
        "{{ '99999999999999999999' | int }}",
        "{{ '-9223372036854775809' | int }}",
        "{{ 9223372036854775807 | round(-1) }}",
        "{{ '%d' % 1e300 }}",
        "{{ '%i' % -1e19 }}",
    ])
    func overflowIsARuntimeError(_ source: String) {
        expectFailure(source, .runtime, tooLarge)
    }

    @Test func edgesThatFitStillWork() throws {
        #expect(try render("{{ (-9223372036854775807 - 1) % -1 }}") == "0")
        #expect(try render("{{ (-9223372036854775807 - 1) // 1 }}") == "-9223372036854775808")
        #expect(try render("{{ 9223372036854775807 // -1 }}") == "-9223372036854775807")
        #expect(try render("{{ '-9223372036854775808' | int }}") == "-9223372036854775808")
        #expect(try render("{{ 2 ** 62 }}") == "4611686018427387904")
        #expect(try render("{{ 'nan' | float | int }}") == "0")
        #expect(try render("{{ 15 | round(-1) }}") == "20")
        #expect(try render("{{ 15 | round(-400) }}") == "0")
        #expect(try render("{{ 1.5 | round(-400) }}") == "0.0")
        #expect(try render("{{ [1, 2, 3][1::9223372036854775807] }}") == "[2]")
        #expect(try render("{{ range(0, 9223372036854775807, 9223372036854775807) | list }}") == "[0]")
        #expect(try render("{{ 'abc' | truncate(9223372036854775807) }}") == "abc")
        #expect(try render("{{ '%*s|' % (-3, 'a') }}") == "a  |")
        #expect(try render("{{ '%.*s|' % (-1, 'abc') }}") == "abc|")
    }

    @Test func otherConversionsFail() {
        expectFailure("{{ 1e400 | int }}", .runtime, "cannot convert float infinity to integer")
        expectFailure("{{ '{:c}'.format(2 ** 40) }}", .runtime, "%c arg not in range(0x110000)")
        expectFailure("{{ '%c' % 1114112 }}", .runtime, "%c arg not in range(0x110000)")
        expectFailure("{{ '%c' % -1 }}", .runtime, "%c arg not in range(0x110000)")
        expectFailure("{{ '10' | int(base=99) }}", .runtime, "int() base must be >= 2 and <= 36, or 0")
        expectFailure("{{ range(-9223372036854775807 - 1, 9223372036854775807) }}", .runtime,
                      "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).")
        expectFailure("{{ range(10**10) }}", .runtime, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).")
    }
}

// MARK: - Sizes

@Suite struct SizeLimitTests {
    @Test func stringRepetition() {
        expectFailure("{{ 'a' * 10**10 }}", .limit, stringMessage(10_000_000_000))
        expectFailure("{{ 10**10 * 'ab' }}", .limit, stringMessage(20_000_000_000))
        expectFailure("{{ 'ab' * 9223372036854775807 }}", .limit,
                      "the string would be longer than the limit of 16777216 bytes (TemplateLimits.maxStringBytes)")
        expectFailure("{{ ('<' | safe) * 10**10 }}", .limit, stringMessage(10_000_000_000))
    }

    @Test func listRepetition() {
        expectFailure("{{ [1] * 10**9 }}", .limit, itemsMessage(1_000_000_000))
        expectFailure("{{ (1, 2) * 10**9 }}", .limit, itemsMessage(2_000_000_000))
        expectFailure("{{ [1, 2] * 9223372036854775807 }}", .limit,
                      "the sequence would have more items than the limit of 4194304 (TemplateLimits.maxItems)")
    }

    @Test func batchAndSlice() throws {
        // Without a filler the batches are no larger than the list: jinja2's output.
        #expect(try render("{{ [1, 2] | batch(10**10) | list }}") == "[[1, 2]]")
        expectFailure("{{ [1, 2] | batch(10**10, 0) | list }}", .limit, itemsMessage(10_000_000_000))
        expectFailure("{{ [1, 2] | slice(10**10) | list }}", .limit, itemsMessage(10_000_000_000))
    }

    @Test func widths() throws {
        expectFailure("{{ 'a' | indent(10**10) }}", .limit, stringMessage(10_000_000_000))
        expectFailure("{{ '{:>10000000000}'.format(1) }}", .limit, stringMessage(10_000_000_000))
        expectFailure("{{ '{:>10000000000}'.format('a') }}", .limit, stringMessage(10_000_000_000))
        expectFailure("{{ '{:010000000000}'.format(1) }}", .limit, stringMessage(10_000_000_000))
        expectFailure("{{ '%10000000000s' % 1 }}", .limit, stringMessage(10_000_000_000))
        expectFailure("{{ '%-10000000000d' % 1 }}", .limit, stringMessage(10_000_000_000))
        expectFailure("{{ '%99999999999999999999999s' % 1 }}", .limit, stringMessage(92_233_720_368_547_758))
        expectFailure("{{ '{:.10000000000f}'.format(1.0) }}", .limit, stringMessage(10_000_000_400))
        expectFailure("{{ '%.10000000000f' % 1.0 }}", .limit, stringMessage(10_000_000_400))
        expectFailure("{{ 'a' | center(10**10) }}", .limit, stringMessage(10_000_000_000))
        expectFailure("{{ 'a'.center(10**10) }}", .limit, stringMessage(10_000_000_000))
        expectFailure("{{ 'a'.ljust(10**10) }}", .limit, stringMessage(10_000_000_000))
        expectFailure("{{ 'a'.rjust(10**10, 'é') }}", .limit, stringMessage(20_000_000_000 - 1))
        expectFailure("{{ 'a'.zfill(10**10) }}", .limit, stringMessage(10_000_000_000))
        expectFailure("{{ [1] | tojson(indent=10**10) }}", .limit, stringMessage(10_000_000_000))
        // truncate never lengthens; wordwrap is not a filter chat templates may use.
        #expect(try render("{{ 'a' | truncate(10**10) }}") == "a")
        let wordwrap = failure("{{ 'a' | wordwrap(10**10) }}")
        #expect(wordwrap?.kind == .syntax)
        #expect(wordwrap?.message == "No filter named 'wordwrap'.")
    }

    @Test func joinAndConcatenation() {
        expectFailure("{{ ['a' * 10000000, 'b' * 10000000] | join }}", .limit, stringMessage(20_000_000))
        expectFailure("{{ ('x' * 1000000).join(['a'] * 100) }}", .limit, stringMessage(99_000_001))
        expectFailure("{{ 'a' * 10000000 ~ 'b' * 10000000 }}", .limit, stringMessage(20_000_000))
        expectFailure("{{ 'a' * 10000000 + 'b' * 10000000 }}", .limit, stringMessage(20_000_000))
        expectFailure("{{ [0] * 3000000 + [1] * 3000000 }}", .limit, itemsMessage(6_000_000))
        expectFailure("{{ ('a' * 1000) | replace('a', 'b' * 100000) }}", .limit, stringMessage(100_001_000))
        expectFailure("{{ ('a' * 1000).replace('', 'b' * 100000) }}", .limit, stringMessage(100_101_000))
        expectFailure("{{ ('a' * 10000000) | list | length }}", .limit, itemsMessage(10_000_000))
        // repr of a list stops soon after the limit.
        let repr = failure("{{ ['a' * 10000000, 'b' * 10000000] }}")
        #expect(repr?.kind == .limit)
        #expect(repr?.message.hasSuffix("over the limit of 16777216 bytes (TemplateLimits.maxStringBytes)") == true)
    }

    @Test func doublingAStringStopsAtTheLimit() {
        // 'a' doubled 24 times is exactly 16 MiB (allowed); the 25th doubling is refused.
        expectFailure("{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                      .limit, stringMessage(1 << 25))
        expectFailure("{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
                      .limit, stringMessage(1 << 25))
        expectFailure("{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
                      .limit, itemsMessage(1 << 23))
    }

    @Test func outputIsLimited() {
        expectFailure("{% for i in range(100) %}{{ 'a' * 1000000 }}{% endfor %}", .limit,
                      "the output would be 17000000 bytes long, over the limit of 16777216 bytes (TemplateLimits.maxOutputBytes)")
        var limits = TemplateLimits()
        limits.maxOutputBytes = 10
        expectFailure("0123456789{{ 'x' }}", .limit,
                      "the output would be 11 bytes long, over the limit of 10 bytes (TemplateLimits.maxOutputBytes)", limits: limits)
        expectFailure("{% set x %}0123456789{{ 'x' }}{% endset %}", .limit,
                      "the output would be 11 bytes long, over the limit of 10 bytes (TemplateLimits.maxOutputBytes)", limits: limits)
    }

    @Test func lowerLimitsApply() {
        var limits = TemplateLimits()
        limits.maxStringBytes = 100
        limits.maxItems = 10
        expectFailure("{{ 'a' * 101 }}", .limit,
                      "the string would be 101 bytes long, over the limit of 100 bytes (TemplateLimits.maxStringBytes)", limits: limits)
        expectFailure("{{ [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] }}", .limit,
                      "the sequence would have 11 items, over the limit of 10 (TemplateLimits.maxItems)", limits: limits)
        expectFailure("{{ range(11) | list }}", .limit,
                      "the sequence would have 11 items, over the limit of 10 (TemplateLimits.maxItems)", limits: limits)
        expectFailure("{{ 'abc' * 30 ~ 'abcdefghijk' }}", .limit,
                      "the string would be 101 bytes long, over the limit of 100 bytes (TemplateLimits.maxStringBytes)", limits: limits)
    }
}

// MARK: - Steps and cancellation

/// A flag another thread can set.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    private var asked = 0
    func stop() { lock.withLock { stopped = true } }
    func shouldStop() -> Bool { lock.withLock { asked += 1; return stopped } }
    var timesAsked: Int { lock.withLock { asked } }
}

@Suite struct StepLimitTests {
    private let nestedLoops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"

    @Test func nestedLoopsStop() {
        var limits = TemplateLimits()
        limits.maxSteps = 1_000_000
        expectFailure(nestedLoops, .limit,
                      "the template ran for more than 1000000 steps (TemplateLimits.maxSteps; it may loop without end)", limits: limits)
    }

    @Test func workOnLargeValuesCounts() {
        // Few statements, but each scans a 1 MB string: counted by size (~1000 steps each).
        var limits = TemplateLimits()
        limits.maxSteps = 20_000
        expectFailure("{% set s = 'a' * 1000000 %}{% for i in range(100000) %}{% if 'b' in s %}{% endif %}{% endfor %}", .limit,
                      "the template ran for more than 20000 steps (TemplateLimits.maxSteps; it may loop without end)", limits: limits)
    }

    @Test func shouldStopCancels() {
        let flag = StopFlag()
        flag.stop()
        guard let error = failure(nestedLoops, shouldStop: { flag.shouldStop() }) else {
            Issue.record("rendered")
            return
        }
        #expect(error.kind == .cancelled)
        #expect(error.message == "rendering cancelled")
        #expect(error.description.hasPrefix("hostile.jinja:1:"))
        #expect(flag.timesAsked == 1)
    }

    /// Cancelled from another thread while the render runs (Ctrl-C in the REPL).
    @Test func cancelFromAnotherThread() {
        let flag = StopFlag()
        let start = Date()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) { flag.stop() }
        let error = failure(nestedLoops, shouldStop: { flag.shouldStop() })
        #expect(error?.kind == .cancelled)
        #expect(Date().timeIntervalSince(start) < 30)
        #expect(flag.timesAsked > 1)
    }

    @Test func shouldStopIsPolledEveryNSteps() throws {
        let flag = StopFlag()
        var limits = TemplateLimits()
        limits.stepsBetweenCancellationChecks = 100
        let template = try ChatTemplate(source: "{% for i in range(1000) %}{{ i }}{% endfor %}")
        _ = try template.render(context: [:], limits: limits, shouldStop: { flag.shouldStop() })
        #expect(flag.timesAsked >= 30)
        #expect(flag.timesAsked <= 100)
    }
}

// MARK: - Work the step count cannot see

@Suite struct LinearSearchTests {
    /// A naive search of a 4 MB needle in an 8 MB text compares ~10^13 characters.
    @Test func longNeedlesAreSearchedInLinearTime() throws {
        let start = Date()
        let source = "{% set t = 'a' * 8000000 %}{% set n = 'a' * 4000000 ~ 'b' %}"
            + "{{ t.find(n) }} {{ t.rfind(n) }} {{ n in t }} {{ t.count(n) }} {{ t.split(n) | length }} {{ t.rsplit(n, 1) | length }} {{ (t | replace(n, 'x')) | length }}"
        #expect(try render(source) == "-1 -1 False 0 1 1 8000000")
        #expect(Date().timeIntervalSince(start) < 60)
    }

    /// jinja2 keeps the keys in a set; a list scan made this quadratic.
    @Test func uniqueIsLinear() throws {
        let start = Date()
        #expect(try render("{{ range(100000) | list | unique | list | length }} {{ ((range(50000) | list) * 2) | unique | list | length }}") == "100000 50000")
        #expect(Date().timeIntervalSince(start) < 60)
        #expect(try render("{{ [1, 1.0, true, 'a', 'A', 2] | unique | list }}") == "[1, 'a', 2]")
        expectFailure("{{ [[1], [1]] | unique | list }}", .runtime, "unhashable type: 'list'")
    }

    @Test func searchesFindWhatPythonFinds() throws {
        #expect(try render("{{ 'aaaa'.count('aa') }} {{ 'aaa'.replace('aa', 'b') }} {{ 'aaaa'.rsplit('aa', 1) }} {{ 'abcabc'.rfind('abc') }}")
                == "2 ba ['aa', ''] 3")
        #expect(try render("{{ 'ababab'.split('aba') }} {{ 'ababab'.rsplit('aba', 1) }} {{ 'ababab'.find('bab') }} {{ 'ababab'.rfind('bab') }}")
                == "['', 'bab'] ['ab', 'b'] 1 3")
        #expect(try render("{{ 'aabaabaaab'.find('aaab') }} {{ 'abcab'.rfind('ab', 0, 4) }} {{ 'abc'.find('', 2) }} {{ 'abc'.rfind('') }}")
                == "6 0 2 3")
        #expect(try render("{{ 'a,b,,c'.split(',', 2) }} {{ 'a,b,,c'.rsplit(',', 2) }} {{ 'xyxyx'.replace('xyx', '-', 1) }} {{ 'héllo wörld'.find('wö') }}")
                == "['a', 'b', ',c'] ['a,b', '', 'c'] -yx 6")
    }
}

// MARK: - Real templates against the limits

@Suite struct RealTemplateBudgetTests {
    /// Every fixture template on a 1000-message conversation (and on the fixture's own
    /// conversations with tools) stays far below every limit.
    @Test func fixtureTemplatesStayFarBelowTheLimits() throws {
        let fixture = try #require(TemplateFixture.shared)
        let messages = Value.array((0..<1000).map { i in
            .object(["role": .string(i % 2 == 0 ? "user" : "assistant"),
                     "content": .string(String(repeating: "word \(i) ", count: 30))])
        })
        let limits = TemplateLimits.default
        var worst = (steps: 0, depth: 0, calls: 0, nesting: 0)
        var names = (steps: "", depth: "", calls: "", nesting: "")
        for entry in fixture.templates {
            let template = try ChatTemplate(source: try TemplateSources.text(entry), name: entry.file)
            var contexts = [ChatTemplate.context(messages: messages, addGenerationPrompt: true,
                                                 bosToken: entry.bos_token, eosToken: entry.eos_token)]
            for conversation in fixture.conversations.values {
                var context = ChatTemplate.context(messages: conversation, addGenerationPrompt: true,
                                                   bosToken: entry.bos_token, eosToken: entry.eos_token)
                context["tools"] = fixture.tools
                contexts.append(context)
            }
            for context in contexts {
                // Some templates reject some conversations (raise_exception): not a limit.
                let usage: RenderUsage
                do {
                    usage = try template.measure(context: context, now: fixture.nowDate).usage
                } catch let error as TemplateError {
                    #expect(error.kind != .limit, "\(entry.name): \(error)")
                    continue
                }
                if usage.steps > worst.steps { (worst.steps, names.steps) = (usage.steps, entry.name) }
                if usage.depth > worst.depth { (worst.depth, names.depth) = (usage.depth, entry.name) }
                if usage.callDepth > worst.calls { (worst.calls, names.calls) = (usage.callDepth, entry.name) }
                if usage.nesting > worst.nesting { (worst.nesting, names.nesting) = (usage.nesting, entry.name) }
            }
        }
        print("Most used by a fixture template (1000 messages): steps \(worst.steps) (\(names.steps)), render depth \(worst.depth) (\(names.depth)), macro calls \(worst.calls) (\(names.calls)), nesting \(worst.nesting) (\(names.nesting))")
        #expect(worst.steps * 10 < limits.maxSteps)
        #expect(worst.depth * 10 < limits.maxRenderDepth)
        #expect(worst.calls * 10 < limits.maxCallDepth)
        #expect(worst.nesting * 3 < limits.maxNesting)
    }
}

// MARK: - Nesting of values

@Suite struct ValueNestingTests {
    private let valueMessage = "values nested deeper than 1000 (TemplateLimits.maxValueDepth)"

    /// Each grows a value one level per iteration; freeing or comparing one 200,000 deep
    /// crashed the process.
    @Test(arguments: [
        "{% set ns = namespace(x=[]) %}{% for i in range(3000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x == ns.x }}",
        "{% set ns = namespace(x=[]) %}{% for i in range(3000) %}{% set ns.x = (ns.x,) %}{% endfor %}",
        "{% set ns = namespace(x={}) %}{% for i in range(3000) %}{% set ns.x = {'a': ns.x} %}{% endfor %}",
        "{% set ns = namespace(x={}) %}{% for i in range(3000) %}{% set ns.x = dict(a=ns.x) %}{% endfor %}",
        "{% set ns = namespace(x=[1]) %}{% for i in range(3000) %}{% set ns.x = ns.x | batch(1) | list %}{% endfor %}",
        "{% set ns = namespace(x=[]) %}{% for i in range(3000) %}{% set ns.x = ns.x | slice(1) | list %}{% endfor %}",
        "{% set ns = namespace(x={}) %}{% for i in range(3000) %}{% set ns.x = {'a': 1, 'b': ns.x}.items() | list %}{% endfor %}",
        "{% set ns = namespace(x={}) %}{% for i in range(3000) %}{% set ns.x = {'a': ns.x} | dictsort %}{% endfor %}",
        // through a bound method, `loop`, `loop.changed` and `varargs`
        "{% set ns = namespace(f=none) %}{% for i in range(3000) %}{% set ns.f = {'p': ns.f}.get %}{% endfor %}",
        "{% set ns = namespace(l=none) %}{% for i in range(3000) %}{% for x in [ns.l] %}{% set ns.l = loop %}{% endfor %}{% endfor %}",
        "{% set ns = namespace(c=none) %}{% for i in range(3000) %}{% for x in [1] %}{% if loop.changed(ns.c) %}{% endif %}{% set ns.c = loop.changed %}{% endfor %}{% endfor %}{{ [ns.c] }}",
        "{% set ns = namespace(v=none) %}{% macro f() %}{% set ns.v = varargs %}{% endmacro %}{% for i in range(3000) %}{{ f(ns.v) }}{% endfor %}",
    ])
    func deepValuesAreRefused(_ source: String) {
        guard let error = failure(source) else {
            Issue.record("rendered")
            return
        }
        #expect(error.kind == .limit)
        #expect(error.message == valueMessage)
    }

    /// Namespaces can change after they are made, so they may chain without bound: the
    /// render keeps them and frees them one by one.
    @Test func longChainsOfNamespacesAreFreedSafely() throws {
        let chain = "{% set root = namespace(next=none) %}{% set st = namespace(leaf=root) %}"
            + "{% for j in range(2) %}{% for i in range(100000) %}{% set leaf = st.leaf %}{% set n = namespace(next=none) %}"
            + "{% set leaf.next = n %}{% set st.leaf = n %}{% endfor %}{% endfor %}"
        // Dropped in the middle of the render, printed (depth-capped), and at the end.
        #expect(try render(chain + "{% set root.next = none %}done") == "done")
        let printed = try render(chain + "{{ root }}")
        #expect(printed.hasPrefix("<Namespace {'next': <Namespace {'next': "))
        #expect(printed.contains("..."))
        #expect(try render("{% set ns = namespace(n=none) %}{% for i in range(100000) %}{% set ns.n = namespace(p=ns.n) %}{% endfor %}ok") == "ok")
    }

    @Test func nestingUpToTheLimitWorks() throws {
        var limits = TemplateLimits()
        limits.maxValueDepth = 10
        let source = "{% set ns = namespace(x=1) %}{% for i in range(N) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}"
        #expect(try render(source.replacingOccurrences(of: "N", with: "10"), limits: limits) == "[[[[[[[[[[1]]]]]]]]]]")
        expectFailure(source.replacingOccurrences(of: "N", with: "11"), .limit,
                      "values nested deeper than 10 (TemplateLimits.maxValueDepth)", limits: limits)
    }
}
