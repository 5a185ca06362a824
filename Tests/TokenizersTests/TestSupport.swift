import Foundation
import ModelFiles
@testable import Tokenizers

/// Locations of the test fixtures that live outside the repository (downloaded by the Makefile).
enum Fixtures {
    private static var cacheDirectory: String {
        let env = ProcessInfo.processInfo.environment
        if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/nibble" }
        return NSHomeDirectory() + "/.cache/nibble"
    }

    /// llama.cpp's tokenizer test vectors: `NIBBLE_VOCAB_DIR`, or where `make vocab` puts them.
    static var vocabDirectory: String {
        if let dir = ProcessInfo.processInfo.environment["NIBBLE_VOCAB_DIR"], !dir.isEmpty { return dir }
        return cacheDirectory + "/llama-cpp-python-0.3.36/vendor/llama.cpp/models"
    }

    /// The SmolLM2 model: `NIBBLE_MODEL`, or where `make model` puts it.
    static var modelPath: String {
        if let path = ProcessInfo.processInfo.environment["NIBBLE_MODEL"], !path.isEmpty { return path }
        return cacheDirectory + "/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    }

    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// Tokenizers are expensive to build (up to 500k merges); build each file's once per test run.
    private static let cache = TokenizerCache()

    static func tokenizer(at path: String) throws -> Tokenizer {
        try cache.tokenizer(at: path)
    }
}

final class TokenizerCache: @unchecked Sendable {
    private let lock = NSLock()
    private var tokenizers: [String: Tokenizer] = [:]

    func tokenizer(at path: String) throws -> Tokenizer {
        lock.lock()
        defer { lock.unlock() }
        if let t = tokenizers[path] { return t }
        let t = try Tokenizer(gguf: GGUFFile(path: path))
        tokenizers[path] = t
        return t
    }
}

/// One llama.cpp test vector: input bytes and expected ids.
struct VocabTestCase {
    let input: [UInt8]
    let expected: [Int]
}

enum VocabTestFile {
    /// Reads `<vocab>.inp` / `<vocab>.out` exactly as llama.cpp's tests/test-tokenizer-0.cpp
    /// (`read_tests`) does: inputs are separated by "\n__ggml_vocab_test__\n" (so a trailing
    /// separator ends the last input and adds nothing), outputs are one line each, stripped and
    /// split on spaces. The C++ test keeps them in a `std::map`, so a repeated input keeps its
    /// last expected output; we do the same (keeping the first position, for stable messages).
    static func read(vocabPath: String) throws -> [VocabTestCase] {
        let raw = [UInt8](try Data(contentsOf: URL(fileURLWithPath: vocabPath + ".inp")))
        let outText = try String(contentsOfFile: vocabPath + ".out", encoding: .utf8)
        let separator = Array("\n__ggml_vocab_test__\n".utf8)

        var inputs: [[UInt8]] = []
        var pos = 0
        while pos < raw.count {
            if let next = find(separator, in: raw, from: pos) {
                inputs.append(Array(raw[pos..<next]))
                pos = next + separator.count
            } else {
                inputs.append(Array(raw[pos...]))
                break
            }
        }

        var outLines = outText.components(separatedBy: "\n")
        if outLines.last == "" { outLines.removeLast() } // std::getline yields no empty last line
        guard inputs.count == outLines.count else {
            throw TestFailure("\(vocabPath): \(inputs.count) inputs but \(outLines.count) expected outputs")
        }

        var order: [[UInt8]] = []
        var expected: [[UInt8]: [Int]] = [:]
        for (input, line) in zip(inputs, outLines) {
            let ids = line.trimmingCharacters(in: .whitespacesAndNewlines)
                .split(separator: " ", omittingEmptySubsequences: true).compactMap { Int($0) }
            if expected[input] == nil { order.append(input) }
            expected[input] = ids
        }
        return order.map { VocabTestCase(input: $0, expected: expected[$0]!) }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard haystack.count - from >= needle.count else { return nil }
        var i = from
        while i <= haystack.count - needle.count {
            if haystack[i] == needle[0] && Array(haystack[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Shows text with invisible characters escaped, for failure messages.
func visible(_ bytes: [UInt8]) -> String {
    visible(String(decoding: bytes, as: UTF8.self))
}

func visible(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        default:
            if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) {
                out += String(format: "\\u{%X}", scalar.value)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}
