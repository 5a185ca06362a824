import Foundation
import Testing
@testable import Templates
import ModelFiles

/// `Resources/chat-templates.json` (Tools/reference_templates.py): every template rendered
/// by jinja2 exactly as transformers does, for 8 conversations × add_generation_prompt.
struct TemplateFixture: Decodable {
    struct Case: Decodable {
        var conversation: String
        var add_generation_prompt: Bool
        var output: String?
        var error: String?
        var error_type: String?
        var tools: Bool?
    }

    struct Template: Decodable {
        var name: String
        var origin: String
        var file: String
        var sha256: String
        var bos_token: String
        var eos_token: String
        var cases: [Case]
    }

    var jinja2_version: String
    var now: String
    var templates: [Template]
    /// Conversations (name → list of message objects, key order kept) and the tool
    /// list, read with `Value(json:)` so that extra keys reach the template in order.
    var conversations: [String: Value] = [:]
    var tools: Value = .undefined

    private enum CodingKeys: String, CodingKey { case jinja2_version, now, templates }

    static let shared: TemplateFixture? = {
        guard let url = Bundle.module.url(forResource: "chat-templates", withExtension: "json", subdirectory: "Resources"),
              let data = try? Data(contentsOf: url),
              var fixture = try? JSONDecoder().decode(TemplateFixture.self, from: data),
              case .object(let raw) = try? Value(json: data),
              case .object(let conversations) = raw["conversations"] else { return nil }
        for (key, value) in conversations.pairs { fixture.conversations[key.stringValue!] = value }
        fixture.tools = raw["tools"] ?? .undefined
        return fixture
    }()

    static var templateNames: [String] { shared?.templates.map(\.name) ?? [] }

    /// 2026-11-25T16:00:00Z, formatted by the reference as a naive time (TZ=UTC here).
    var nowDate: Date { ISO8601DateFormatter().date(from: now)! }
}

enum TemplateSources {
    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// llama.cpp's `models` folder: `NIBBLE_VOCAB_DIR`, or where `make vocab` puts it.
    static var vocabDirectory: String {
        if let dir = ProcessInfo.processInfo.environment["NIBBLE_VOCAB_DIR"], !dir.isEmpty { return dir }
        let env = ProcessInfo.processInfo.environment
        let cache = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 + "/nibble" } ?? NSHomeDirectory() + "/.cache/nibble"
        return cache + "/llama-cpp-python-0.3.36/vendor/llama.cpp/models"
    }

    /// The template text the fixture entry was made from.
    static func text(_ template: TemplateFixture.Template) throws -> String {
        let path: String
        switch template.origin {
        case "vocab": path = vocabDirectory + "/templates/" + template.file
        case "model":
            guard let url = Bundle.module.url(forResource: template.file, withExtension: nil, subdirectory: "Resources") else {
                throw SourceError(description: "Resources/\(template.file) missing from the test bundle")
            }
            path = url.path
        default: path = repositoryRoot.appendingPathComponent("Prompts/templates/" + template.file).path
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SourceError(description: "\(path): not found (run `make vocab` or set NIBBLE_VOCAB_DIR)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    struct SourceError: Error, CustomStringConvertible { var description: String }
}

/// Where two strings first differ, with a little context on both sides.
func firstDifference(_ expected: String, _ actual: String) -> String {
    let e = Array(expected.utf8), a = Array(actual.utf8)
    var i = 0
    while i < e.count && i < a.count && e[i] == a[i] { i += 1 }
    func excerpt(_ bytes: [UInt8]) -> String {
        let lo = max(0, i - 30), hi = min(bytes.count, i + 40)
        return String(decoding: bytes[lo..<hi], as: UTF8.self).debugDescription
    }
    return "first difference at byte \(i) (expected \(e.count) bytes, got \(a.count)): expected …\(excerpt(e))… got …\(excerpt(a))…"
}

@Suite struct ChatTemplateFixtureTests {
    @Test func fixtureLoads() throws {
        let fixture = try #require(TemplateFixture.shared, "Resources/chat-templates.json missing or unreadable")
        #expect(fixture.templates.count >= 76)
        #expect(fixture.conversations.count >= 5)
        #expect(!fixture.jinja2_version.isEmpty)
        // The 30 templates the issue names must all be there.
        let required = [
            "meta-llama-Llama-3.1-8B-Instruct", "meta-llama-Llama-3.2-3B-Instruct", "meta-llama-Llama-3.3-70B-Instruct",
            "Qwen-Qwen2.5-7B-Instruct", "Qwen-Qwen3-0.6B", "Qwen-QwQ-32B", "Qwen3-Coder", "Qwen3.5-4B",
            "mistralai-Mistral-Nemo-Instruct-2407", "Mistral-Small-3.2-24B-Instruct-2506",
            "mistralai-Ministral-3-14B-Reasoning-2512", "unsloth-mistral-Devstral-Small-2507", "google-gemma-2-2b-it",
            "google-gemma-4-31B-it", "microsoft-Phi-3.5-mini-instruct", "deepseek-ai-DeepSeek-R1-Distill-Llama-8B",
            "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "deepseek-ai-DeepSeek-V3.1", "ibm-granite-granite-3.3-2B-Instruct",
            "ibm-granite-granite-4.0", "HuggingFaceTB-SmolLM3-3B", "openai-gpt-oss-120b",
            "NousResearch-Hermes-3-Llama-3.1-8B-tool_use", "CohereForAI-c4ai-command-r7b-12-2024-tool_use",
            "moonshotai-Kimi-K2", "GLM-4.6", "LFM2-8B-A1B", "MiniMax-M2", "NVIDIA-Nemotron-Nano-v2", "llama-cpp-deepseek-r1",
            "SmolLM2-135M-Instruct", "chatml", "llama2", "llama3", "gemma", "mistral",
        ]
        let names = Set(fixture.templates.map(\.name))
        for name in required { #expect(names.contains(name), "fixture lacks \(name)") }
    }

    /// Every (conversation, add_generation_prompt) of one template renders byte for byte
    /// as jinja2 did, or fails with jinja2's message. All mismatches are reported.
    @Test(arguments: TemplateFixture.templateNames)
    func matchesJinja2(_ name: String) throws {
        let fixture = try #require(TemplateFixture.shared)
        let entry = try #require(fixture.templates.first { $0.name == name })
        let text = try TemplateSources.text(entry)
        #expect(SHA256.hex(Array(text.utf8)) == entry.sha256, "\(entry.file) differs from the one the fixture was made from")
        let template = try ChatTemplate(source: text, name: entry.file)
        for c in entry.cases {
            let conversation = try #require(fixture.conversations[c.conversation])
            let label = "\(name) [\(c.conversation), add_generation_prompt=\(c.add_generation_prompt)]"
            do {
                let output: String
                if c.tools == true {
                    // Messages with tool calls and the tool list: the low-level API.
                    var context = ChatTemplate.context(messages: conversation, addGenerationPrompt: c.add_generation_prompt,
                                                       bosToken: entry.bos_token, eosToken: entry.eos_token)
                    context["tools"] = fixture.tools
                    output = try template.render(context: context, now: fixture.nowDate, timeZone: TimeZone(identifier: "UTC")!)
                } else {
                    // Plain chats: exactly what the REPL calls.
                    guard case .array(let items) = conversation else { throw TemplateSources.SourceError(description: "bad conversation") }
                    let messages = items.map { m -> (role: String, content: String) in
                        guard case .object(let o) = m else { return ("", "") }
                        return (o["role"]?.stringValue ?? "", o["content"]?.stringValue ?? "")
                    }
                    output = try template.render(messages: messages, addGenerationPrompt: c.add_generation_prompt,
                                                 bosToken: entry.bos_token, eosToken: entry.eos_token,
                                                 now: fixture.nowDate, timeZone: TimeZone(identifier: "UTC")!)
                }
                if let expected = c.output {
                    #expect(output == expected, "\(label): \(firstDifference(expected, output))")
                } else {
                    Issue.record("\(label): expected the error \(c.error_type ?? "?"): \(c.error ?? "?"), got output")
                }
            } catch let error as TemplateError {
                if let expected = c.error {
                    #expect(error.message == expected, "\(label): expected error '\(expected)', got '\(error.message)'")
                } else {
                    Issue.record("\(label): unexpected error \(error)")
                }
            }
        }
    }
}
