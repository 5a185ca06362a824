import Foundation
import Testing
@testable import Templates

/// `Resources/jinja-semantics.json` (Tools/reference_templates.py): small templates that
/// each pin one corner of jinja2's behaviour (whitespace control, scoping, loops,
/// literals, operators, filters, tests, undefined, errors), rendered by jinja2 in
/// transformers' environment.
struct SemanticsFixture: Decodable {
    struct Snippet: Decodable {
        var name: String
        var template: String
        var output: String?
        var phase: String?
        var error: String?
        var error_type: String?
        var line: Int?
    }

    var jinja2_version: String
    var now: String
    var snippets: [Snippet]
    /// Each snippet's context, read with `Value(json:)` (key order kept).
    var contexts: [String: [String: Value]] = [:]

    private enum CodingKeys: String, CodingKey { case jinja2_version, now, snippets }

    static let shared: SemanticsFixture? = {
        guard let url = Bundle.module.url(forResource: "jinja-semantics", withExtension: "json", subdirectory: "Resources"),
              let data = try? Data(contentsOf: url),
              var fixture = try? JSONDecoder().decode(SemanticsFixture.self, from: data),
              case .object(let raw) = try? Value(json: data),
              case .array(let snippets) = raw["snippets"] else { return nil }
        for case .object(let snippet) in snippets {
            guard let name = snippet["name"]?.stringValue, case .object(let context) = snippet["context"] else { continue }
            fixture.contexts[name] = Dictionary(uniqueKeysWithValues: context.pairs.map { ($0.key.stringValue!, $0.value) })
        }
        return fixture
    }()

    static var names: [String] { shared?.snippets.map(\.name) ?? [] }
}

@Suite struct JinjaSemanticsTests {
    @Test func fixtureLoads() throws {
        let fixture = try #require(SemanticsFixture.shared, "Resources/jinja-semantics.json missing or unreadable")
        #expect(fixture.snippets.count > 150)
        #expect(fixture.contexts.count == fixture.snippets.count)
    }

    /// Output byte for byte; a render error with jinja2's message; a template jinja2
    /// rejects fails to parse here too, on the same line.
    @Test(arguments: SemanticsFixture.names)
    func matchesJinja2(_ name: String) throws {
        let fixture = try #require(SemanticsFixture.shared)
        let snippet = try #require(fixture.snippets.first { $0.name == name })
        let now = ISO8601DateFormatter().date(from: fixture.now)!
        let template: ChatTemplate
        do {
            template = try ChatTemplate(source: snippet.template, name: name)
        } catch let error as TemplateError {
            #expect(snippet.phase == "parse", "\(name): parse error \(error), jinja2 gave \(snippet.output.map { "output \($0.debugDescription)" } ?? snippet.error ?? "")")
            #expect(error.kind == .syntax)
            if let line = snippet.line { #expect(error.line == line, "\(name): error on line \(error.line), jinja2 says \(line): \(error)") }
            return
        }
        #expect(snippet.phase != "parse", "\(name): parsed, but jinja2 rejects it: \(snippet.error ?? "")")
        do {
            let output = try template.render(context: fixture.contexts[name] ?? [:], now: now, timeZone: TimeZone(identifier: "UTC")!)
            if let expected = snippet.output {
                #expect(output == expected, "\(name): \(firstDifference(expected, output))")
            } else {
                Issue.record("\(name): rendered \(output.debugDescription), jinja2 raised \(snippet.error_type ?? ""): \(snippet.error ?? "")")
            }
        } catch let error as TemplateError {
            if let expected = snippet.error {
                #expect(error.message == expected, "\(name): error '\(error.message)', jinja2: '\(expected)'")
                #expect(error.kind == (snippet.error_type == "TemplateError" ? .raised : .runtime))
            } else {
                Issue.record("\(name): unexpected error \(error)")
            }
        }
    }
}
