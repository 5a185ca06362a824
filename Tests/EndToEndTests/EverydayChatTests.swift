import Foundation
import Testing

/// Issue 10's smaller items, in script mode: bare commands that show instead of failing,
/// tokens as `id 'piece'`, one unit (MiB), `-m`.
@Suite(.serialized) struct EverydayChatTests {
    @Test func bareCommandsShowWhatTheyWouldChange() throws {
        let dir = try temporaryDirectory()
        let model = try requireModel()
        let run = try nibble(["chat", "-m", model, "--temperature", "0", "--max-tokens", "4"],
                             input: "/model\n/tokens Hello world\n/tokens\nHi\n/export\n/prompt\n/show\n/compare q8 q4 Hi\n",
                             environment: ["XDG_DATA_HOME": dir.path + "/data", "XDG_STATE_HOME": dir.path + "/state", "NO_COLOR": "1"],
                             currentDirectory: dir)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.isEmpty, "\(run.stderr)")
        #expect(run.stdout.contains("model: SmolLM2-135M-Instruct at q4 — \(model)"))
        // SmolLM2: "Hello" 19556, " world" 905 (Ġ shown as the space it stands for).
        #expect(run.stdout.contains("2 tokens: 19556 'Hello' 905 ' world'"), "\(run.stdout)")
        #expect(run.stdout.contains("the next prompt takes "))
        #expect(run.stdout.range(of: #"exported the transcript to .*/data/nibble/sessions/nibble-\d{8}-\d{6}\.md"#, options: .regularExpression) != nil,
                "\(run.stdout)")
        #expect(run.stdout.contains("  concise "), "\(run.stdout)")
        #expect(run.stdout.contains(" MiB, KV cache ") && !run.stdout.contains(" MB"), "\(run.stdout)")
        #expect(run.stdout.contains("the replies are identical") || run.stdout.range(of: #"the replies differ from token \d+ on"#, options: .regularExpression) != nil)
    }

    @Test func tokenizeShowsPieces() throws {
        let run = try nibble(["tokenize", "-m", try requireModel(), "--text", "Hello world", "--pieces"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "19556 'Hello' 905 ' world'\n")
    }
}
