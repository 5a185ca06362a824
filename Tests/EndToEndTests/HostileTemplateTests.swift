import Foundation
import Testing

/// A chat template is code inside the model file: one that recurses, nests without end
/// or runs away must not take the chat down (issue 9, item 7). The chat says the model's
/// template failed, falls back as for a model without one, and goes on.
@Suite(.serialized) struct HostileTemplateTests {
    static let templates: [(String, String)] = [
        ("recursion", "{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}"),
        ("nesting", "{{ " + String(repeating: "(", count: 100_000) + "1" + String(repeating: ")", count: 100_000) + " }}"),
        ("overflow", "{{ (-9223372036854775807 - 1) // -1 }}"),
        ("allocation", "{{ 'a' * 10**10 }}"),
        ("steps", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"),
    ]

    @Test(arguments: templates.map(\.0))
    func theChatFallsBackAndGoesOn(kind: String) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = try #require(Self.templates.first { $0.0 == kind }).1
        let model = try modelCopy("evil-\(kind).gguf", in: dir, changing: ["tokenizer.chat_template": .string(source)])
        let started = Date()
        let run = try nibble(["chat", "--model", model.path, "--threads", "2", "--temperature", "0", "--max-tokens", "4"],
                             input: "Hello!\n/template\n",
                             environment: ["XDG_DATA_HOME": dir.path + "/data", "XDG_STATE_HOME": dir.path + "/state", "NO_COLOR": "1"],
                             currentDirectory: dir, timeout: 120)
        #expect(run.status == 0, "\(kind): status \(run.status), \(run.stderr.prefix(500))")
        let errors = run.stderr.split(separator: "\n")
        #expect(errors.count == 1, "\(kind): \(run.stderr.prefix(800))")
        #expect(errors.first?.contains("the model's chat template failed (evil-\(kind).gguf: tokenizer.chat_template:") == true, "\(errors)")
        #expect(run.stdout.contains("(template: chatml (fallback: the model's failed)"), "\(run.stdout)")
        #expect(Date().timeIntervalSince(started) < 60, "\(kind) took \(Date().timeIntervalSince(started)) s")
    }
}
