/// Everything that can be wrong with a model file. Each message names the file and,
/// for a corrupt file, the byte offset where reading went wrong.
public enum ModelFileError: Error, CustomStringConvertible, Equatable {
    /// The file could not be opened or mapped (missing, a directory, no permission, empty).
    case cannotOpen(path: String, reason: String)
    /// The bytes at `offset` do not form a valid GGUF file.
    case corrupt(path: String, offset: Int, reason: String)
    /// A metadata key that the caller needs is absent.
    case missingKey(path: String, key: String)
    /// A metadata value or tensor has the wrong type or shape for its use.
    case invalidValue(path: String, key: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason): "\(path): \(reason)"
        case let .corrupt(path, offset, reason): "\(path): corrupt GGUF at offset \(offset): \(reason)"
        case let .missingKey(path, key): "\(path): missing metadata key '\(key)'"
        case let .invalidValue(path, key, reason): "\(path): '\(key)' \(reason)"
        }
    }
}
