import Foundation
import Testing

/// The default model, installed by `make model` (`make test` does it first).
let modelPath: String = {
    let env = ProcessInfo.processInfo.environment
    if let path = env["NIBBLE_MODEL"], !path.isEmpty { return path }
    let cache = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.cache")
    return cache + "/nibble/models/SmolLM2-135M-Instruct.Q4_1.gguf"
}()

func requireModel() throws -> String {
    try #require(FileManager.default.fileExists(atPath: modelPath), "model missing at \(modelPath): run `make model`")
    return modelPath
}

/// The `nibble` binary built next to the test bundle.
let nibbleBinary: String = {
    if let path = ProcessInfo.processInfo.environment["NIBBLE_BIN"] { return path }
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    // xctest bundles on Linux live in the build folder itself; step out of a bundle if needed.
    while !FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("nibble").path), dir.path != "/" {
        dir = dir.deletingLastPathComponent()
    }
    return dir.appendingPathComponent("nibble").path
}()

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

func temporaryDirectory() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nibble-e2e-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}
