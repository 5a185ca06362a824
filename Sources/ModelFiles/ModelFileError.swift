import Foundation

/// Everything that can be wrong with a model file. Each message names the file and,
/// for a corrupt file, the byte offset where reading went wrong. Names and keys read
/// from the file are quoted with `String.printable`, so a corrupt header can neither
/// flood the terminal nor send it control characters.
public enum ModelFileError: Error, CustomStringConvertible, LocalizedError, Equatable {
    /// The file could not be opened or mapped (missing, a directory, a FIFO, no permission, empty).
    case cannotOpen(path: String, reason: String)
    /// The bytes at `offset` do not form a valid GGUF file.
    case corrupt(path: String, offset: Int, reason: String)
    /// A metadata key that the caller needs is absent.
    case missingKey(path: String, key: String)
    /// A metadata value or tensor has the wrong type or shape for its use.
    case invalidValue(path: String, key: String, reason: String)
    /// A tensor the model needs is not in the tensor table; `context` says why it is expected.
    case missingTensor(path: String, name: String, context: String?)
    /// The mapped file was truncated or rewritten in place after it was mapped, so its
    /// bytes can no longer be trusted (reading past a truncation is a SIGBUS).
    case changedOnDisk(path: String, detail: String)
    /// A file could not be written; `reason` is the system's, e.g. "no such file or directory".
    case cannotWrite(path: String, reason: String)
    /// A file that is not GGUF (safetensors, config.json, tokenizer.json) is malformed:
    /// `reason` is one sentence naming the field or tensor.
    case malformed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason): "\(path): \(reason)"
        case let .corrupt(path, offset, reason): "\(path): corrupt GGUF at offset \(offset): \(reason)"
        case let .missingKey(path, key): "\(path): missing metadata key '\(key.printable())'"
        case let .invalidValue(path, key, reason): "\(path): '\(key.printable())' \(reason)"
        case let .missingTensor(path, name, context):
            "\(path): tensor '\(name.printable())' is missing" + (context.map { " (\($0))" } ?? "")
        case let .changedOnDisk(path, detail):
            "\(path): the file changed on disk since it was loaded (\(detail)); /reload or /model to read it again"
        case let .cannotWrite(path, reason): "\(path): cannot write (\(reason))"
        case let .malformed(path, reason): "\(path): \(reason)"
        }
    }

    public var errorDescription: String? { description }

    /// The system's text for `errno`, in lower case as it reads inside a sentence
    /// ("no such file or directory").
    public static func systemReason(_ code: Int32) -> String {
        let text = String(cString: strerror(code))
        return text.prefix(1).lowercased() + text.dropFirst()
    }
}

extension String {
    /// The text made safe to quote in a one-line message: control, format and other
    /// invisible characters escaped (`\n`, `\t`, `\x1B`, `\u{202E}`), at most `limit`
    /// characters, and "…" when cut.
    public func printable(limit: Int = 60) -> String {
        var out = ""
        var count = 0
        for scalar in unicodeScalars {
            let piece: String
            switch scalar {
            case "\n": piece = "\\n"
            case "\t": piece = "\\t"
            case "\r": piece = "\\r"
            default:
                switch scalar.properties.generalCategory {
                case .control:
                    piece = "\\x" + String(scalar.value, radix: 16, uppercase: true).leftPadded(to: 2)
                case .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned:
                    piece = "\\u{" + String(scalar.value, radix: 16, uppercase: true).leftPadded(to: 4) + "}"
                default:
                    piece = String(scalar)
                }
            }
            if count + piece.count > limit {
                return out + "…"
            }
            out += piece
            count += piece.count
        }
        return out
    }

    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
