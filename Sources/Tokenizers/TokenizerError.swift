import ModelFiles

/// Why a tokenizer could not be built from a model file. Every message names the file and, where
/// there is one, the metadata key at fault.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    /// A key the tokenizer cannot do without is absent.
    case missingKey(file: String, key: String)
    /// A key is present but has the wrong type, length or value.
    case invalidValue(file: String, key: String, reason: String)
    /// `tokenizer.ggml.model` names a tokenizer family this module does not implement.
    case unsupportedModel(file: String, model: String)
    /// `tokenizer.ggml.pre` names a pre-tokenizer that llama.cpp does not know or that we have not ported.
    case unsupportedPreTokenizer(file: String, name: String)
    /// A tokenizer.json (or tokenizer_config.json) field is missing, malformed or has a value we
    /// do not read; `field` is its JSON path, such as `model.merges[3]`.
    case invalidField(file: String, field: String, reason: String)
    /// A tokenizer.json component (normalizer, pre-tokenizer, model, post-processor, decoder, Split
    /// regex, behavior) that this module does not implement: using it anyway would give other ids.
    case unsupportedComponent(file: String, field: String, value: String, supported: String)

    public var description: String {
        switch self {
        case let .missingKey(file, key):
            return "\(file): missing tokenizer metadata '\(key)'"
        case let .invalidValue(file, key, reason):
            return "\(file): invalid tokenizer metadata '\(key)': \(reason)"
        case let .unsupportedModel(file, model):
            return "\(file): unsupported tokenizer model '\(model)' in 'tokenizer.ggml.model' "
                + "(supported: 'gpt2' byte-level BPE, 'llama' SentencePiece BPE, 'gemma4')"
        case let .unsupportedPreTokenizer(file, name):
            return "\(file): unsupported pre-tokenizer '\(name)' in 'tokenizer.ggml.pre' "
                + "(unknown to llama.cpp, or its splitting rules are not implemented here)"
        case let .invalidField(file, field, reason):
            return "\(file): invalid '\(field)': \(reason)"
        case let .unsupportedComponent(file, field, value, supported):
            return "\(file): unsupported '\(field)' value '\(value.printable(limit: 200))' (supported: \(supported))"
        }
    }
}
