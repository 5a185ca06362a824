import Foundation
import TestFixtures
import Testing

/// A closed pipe or a full disk on stdout: no crash, no backtrace (issue 9, item 8).
@Suite struct OutputErrorTests {
    /// Runs a bash script with N = the binary and M = the default model.
    func bash(_ script: String, in dir: URL) throws -> RunResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", script]
        process.currentDirectoryURL = dir
        var env = ProcessInfo.processInfo.environment
        env["N"] = nibbleBinary
        env["M"] = try requireModel()
        env["XDG_DATA_HOME"] = dir.path + "/data"
        env["XDG_STATE_HOME"] = dir.path + "/state"
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return RunResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
    }

    @Test func aClosedPipeEndsQuietly() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = try bash("""
            trap '' PIPE
            "$N" generate --model "$M" --prompt "Once upon a time" --max-tokens 200 --temperature 0 2>err.txt | head -c 10 >/dev/null
            echo "status ${PIPESTATUS[0]}"
            cat err.txt
            """, in: dir)
        #expect(run.stdout.hasPrefix("status 0\n"), "\(run.stdout)")
        #expect(!run.stdout.contains("error") && !run.stdout.contains("Fatal"), "\(run.stdout)")
    }

    @Test func aFullDiskIsOneLine() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for command in [#""$N" info --model "$M""#, #""$N" generate --model "$M" --prompt Hi --max-tokens 4"#] {
            let run = try bash(command + " > /dev/full", in: dir)
            #expect(run.status == 1, "\(command): \(run.stderr)")
            #expect(run.stderr == "error: cannot write to standard output: no space left on device\n", "\(command): \(run.stderr)")
        }
    }

    /// The chat finishes the turn it was on, autosaves it, and ends.
    @Test func theChatSavesBeforeItEnds() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = try bash(#"printf 'Hello!\nAre you there?\n' | "$N" chat --model "$M" --max-tokens 8 > /dev/full"#, in: dir)
        #expect(run.status == 1)
        #expect(run.stderr == "error: cannot write to standard output: no space left on device\n", "\(run.stderr)")
        let folder = dir.appendingPathComponent("data/nibble/sessions")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        #expect(files.count == 1)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent(files[0]))) as? [String: Any]
        let messages = try #require(json?["messages"] as? [[String: Any]])
        #expect(messages.first?["content"] as? String == "Hello!")
        #expect(messages.count == 2, "the chat ended after the turn in flight")
    }
}
