import Foundation

/// The default model, installed by `make model` (`make test` does it first): $NIBBLE_MODEL,
/// else SmolLM2-135M-Instruct Q4_1 in the cache.
public let modelPath: String = {
    let env = ProcessInfo.processInfo.environment
    if let path = env["NIBBLE_MODEL"], !path.isEmpty { return path }
    let cache = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.cache")
    return cache + "/nibble/models/SmolLM2-135M-Instruct.Q4_1.gguf"
}()

/// The `nibble` binary built next to the test bundle ($NIBBLE_BIN overrides).
public let nibbleBinary: String = {
    if let path = ProcessInfo.processInfo.environment["NIBBLE_BIN"] { return path }
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    // xctest bundles on Linux live in the build folder itself; step out of a bundle if needed.
    while !FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("nibble").path), dir.path != "/" {
        dir = dir.deletingLastPathComponent()
    }
    return dir.appendingPathComponent("nibble").path
}()
