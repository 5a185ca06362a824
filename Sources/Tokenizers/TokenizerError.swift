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
        }
    }
}
