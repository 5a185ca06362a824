import Foundation
import TestFixtures
import Testing


func requireModel() throws -> String {
    try #require(FileManager.default.fileExists(atPath: modelPath), "model missing at \(modelPath): run `make model`")
    return modelPath
}


struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `nibble` with `arguments`, feeding `input` on stdin; fails the test after `timeout`.
func nibble(_ arguments: [String], input: String? = nil, environment: [String: String] = [:], currentDirectory: URL? = nil,
            timeout: Double = 120) throws -> RunResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: nibbleBinary)
    process.arguments = arguments
    if let currentDirectory { process.currentDirectoryURL = currentDirectory }
    var env = ProcessInfo.processInfo.environment
    env.merge(environment) { $1 }
    process.environment = env
    let out = Pipe(), err = Pipe(), inp = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = inp
    try process.run()
    if let input { inp.fileHandleForWriting.write(Data(input.utf8)) }
    try inp.fileHandleForWriting.close()
    // Read both pipes concurrently so a chatty child never blocks on a full pipe.
    nonisolated(unsafe) var outData = Data(), errData = Data()
    let group = DispatchGroup()
    DispatchQueue.global().async(group: group) { outData = out.fileHandleForReading.readDataToEndOfFile() }
    DispatchQueue.global().async(group: group) { errData = err.fileHandleForReading.readDataToEndOfFile() }
    if group.wait(timeout: .now() + timeout) == .timedOut {
        process.terminate()
        Issue.record("nibble \(arguments.joined(separator: " ")) did not finish within \(timeout) s")
    }
    process.waitUntilExit()
    return RunResult(status: process.terminationStatus,
                     stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
}

/// A new folder under the test process's scratch root (removed when the process exits);
/// tests that write large files into it remove it themselves when they end.
func temporaryDirectory() throws -> URL { try Scratch.directory("nibble-e2e") }
