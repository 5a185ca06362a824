import Foundation
import Testing
@testable import Templates
import TestFixtures

private let utc = TimeZone(identifier: "UTC")!

private func render(_ source: String, _ context: [String: Value] = [:]) throws -> String {
    try ChatTemplate(source: source).render(context: context, timeZone: utc)
}

/// Behaviour the jinja2 fixtures cannot show: positions of errors, the public API,
/// JSON input, and where the fallback templates are found.
@Suite struct TemplateErrorTests {
    @Test func syntaxErrorHasLineAndColumn() {
        let source = "line one\n  {{ 1 + }}\n"
        #expect {
            _ = try ChatTemplate(source: source, name: "t.jinja")
        } throws: { error in
            guard let e = error as? TemplateError else { return false }
            return e.kind == .syntax && e.line == 2 && e.column == 10 && e.description == "t.jinja:2:10: unexpected '}}'"
        }
    }

    @Test func unclosedBlockNamesTheBlock() throws {
        do {
            _ = try ChatTemplate(source: "{% for m in messages %}\n{{ m }}\n")
            Issue.record("parsed")
        } catch let e as TemplateError {
            #expect(e.line == 2)
            #expect(e.message.contains("'endfor'"))
            #expect(e.description.hasPrefix("template:2:"))
        }
    }

    @Test func unknownFilterIsASyntaxErrorAtItsPosition() throws {
        do {
            _ = try ChatTemplate(source: "a\nb {{ x | nosuch }}")
            Issue.record("parsed")
        } catch let e as TemplateError {
            #expect(e.kind == .syntax)
            #expect((e.line, e.column) == (2, 10))
            #expect(e.message == "No filter named 'nosuch'.")
        }
    }

    @Test func raiseExceptionGivesExactlyTheMessage() throws {
        let template = try ChatTemplate(source: "{% if messages[0].role == 'system' %}\n  {{- raise_exception('System role not supported') }}\n{% endif %}")
        do {
            _ = try template.render(messages: [("system", "x")], addGenerationPrompt: true, bosToken: "", eosToken: "")
            Issue.record("rendered")
        } catch let e as TemplateError {
            #expect(e.kind == .raised)
            #expect(e.message == "System role not supported")
            #expect(e.description == "System role not supported")
            #expect(e.line == 2)
        }
        // The template stays usable after an error.
        #expect(try template.render(messages: [("user", "x")], addGenerationPrompt: true, bosToken: "", eosToken: "") == "")
    }

    @Test func runtimeErrorPointsAtTheExpression() throws {
        do {
            _ = try render("ok\n{% set d = {} %}{{ d.missing.x }}")
            Issue.record("rendered")
        } catch let e as TemplateError {
            #expect(e.kind == .runtime)
            #expect(e.message == "'dict object' has no attribute 'missing'")
            #expect(e.line == 2)
            #expect(e.column == 21)  // the `.missing` that gave undefined
        }
    }
}

@Suite struct ChatTemplateAPITests {
    @Test func messagesAreRoleThenContent() throws {
        let template = try ChatTemplate(source: "{{ messages|tojson }}|{{ add_generation_prompt }}|{{ bos_token }}{{ eos_token }}|{{ tools is defined }}{{ documents is defined }}")
        let out = try template.render(messages: [("user", "hi \"x\""), ("assistant", "é")], addGenerationPrompt: true,
                                      bosToken: "<s>", eosToken: "</s>")
        #expect(out == #"[{"role": "user", "content": "hi \"x\""}, {"role": "assistant", "content": "é"}]|True|<s></s>|FalseFalse"#)
    }

    @Test func strftimeNowUsesTheGivenTimeAndZone() throws {
        let template = try ChatTemplate(source: "{{ strftime_now('%Y-%m-%d %H:%M %A %-d %b') }}")
        let date = ISO8601DateFormatter().date(from: "2026-11-25T23:30:00Z")!
        #expect(try template.render(context: [:], now: date, timeZone: utc) == "2026-11-25 23:30 Wednesday 25 Nov")
        let tokyo = TimeZone(identifier: "Asia/Tokyo")!
        #expect(try template.render(context: [:], now: date, timeZone: tokyo) == "2026-11-26 08:30 Thursday 26 Nov")
    }

    @Test func contextValuesKeepTheirOrder() throws {
        let json = #"{"z": 1, "a": {"y": [1.0, 2, true, null], "b": "\u00e9\ud83d\ude00"}, "m": -0.5e1}"#
        let value = try Value(jsonString: json)
        #expect(try render("{{ v|tojson }}", ["v": value]) == #"{"z": 1, "a": {"y": [1.0, 2, true, null], "b": "é😀"}, "m": -5.0}"#)
        #expect(try render("{% for k, v in v.items() %}{{ k }}{% endfor %}", ["v": value]) == "zam")
    }

    @Test func jsonParserRejectsBadInput() throws {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"abc", "1 2", "{\"a\": 01x}"] {
            #expect(throws: JSONError.self, "\(bad)") { try Value(jsonString: bad) }
        }
        #expect(try Value(jsonString: " [ ] ") == .array([]))
        #expect(try Value(jsonString: "{\"a\": 1, \"a\": 2}") == ["a": 2])
        #expect(try Value(jsonString: "12345678901234") == .int(12_345_678_901_234))
    }

    @Test func valuesPrintAsPythonWould() {
        let v: Value = ["a": [1, 2.5, "x'y", nil, true], "b": .tuple(["t"])]
        #expect(v.description == #"{'a': [1, 2.5, "x'y", None, True], 'b': ('t',)}"#)
        #expect(Value.double(1).description == "1.0")
        #expect(Value.undefined.description == "")
        #expect(!Value.array([]).isTruthy && Value.string(" ").isTruthy)
        #expect(Value.int(1) == .double(1.0) && Value.bool(true) == .int(1))
        #expect(Value.string("e\u{301}") != .string("\u{e9}"))  // Python compares code points
    }

    @Test func templateIsReusableAcrossThreads() async throws {
        let template = try ChatTemplate(source: "{% for m in messages %}{{ m.content }}{% endfor %}")
        try await withThrowingTaskGroup(of: String.self) { group in
            for i in 0..<8 {
                group.addTask { try template.render(messages: [("user", "\(i)")], addGenerationPrompt: false, bosToken: "", eosToken: "") }
            }
            var results: [String] = []
            for try await r in group { results.append(r) }
            #expect(results.sorted() == (0..<8).map(String.init))
        }
    }
}

@Suite struct PromptLibraryTests {
    @Test func findsTheRepositoryPromptsFolder() throws {
        let dir = try #require(PromptLibrary.directory())
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("templates/chatml.jinja").path))
        #expect(Set(PromptLibrary.templateNames()).isSuperset(of: ["chatml", "llama2", "llama3", "gemma", "mistral"]))
    }

    @Test func loadsFallbackTemplatesByName() throws {
        let chatml = try PromptLibrary.template("chatml")
        let out = try chatml.render(messages: [("system", "S"), ("user", "U")], addGenerationPrompt: true, bosToken: "", eosToken: "")
        #expect(out == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n")
        let llama3 = try PromptLibrary.template("llama3")
        #expect(try llama3.render(messages: [("user", " hi ")], addGenerationPrompt: true, bosToken: "<|begin_of_text|>", eosToken: "")
            == "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    }

    @Test func missingTemplateNamesTheAlternatives() {
        do {
            _ = try PromptLibrary.template("no-such-template")
            Issue.record("found")
        } catch {
            let text = "\(error)"
            #expect(text.contains("no-such-template") && text.contains("chatml") && text.contains("mistral"))
        }
        #expect(throws: PromptLibrary.NotFound.self) { try PromptLibrary.template("/nonexistent/x.jinja") }
    }

    @Test func loadsATemplateFile() throws {
        let url = Scratch.root.appendingPathComponent("nibble-template-\(UUID().uuidString).jinja")
        try Data("{{ bos_token }}{{ messages|length }}".utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let template = try PromptLibrary.template(url.path)
        #expect(try template.render(messages: [("user", "a")], addGenerationPrompt: false, bosToken: "B", eosToken: "") == "B1")
    }

    @Test func readsPresets() throws {
        for name in PromptLibrary.presetNames() {
            #expect(try !PromptLibrary.preset(name).isEmpty)
        }
        #expect(throws: PromptLibrary.NotFound.self) { try PromptLibrary.preset("no-such-preset") }
    }
}
