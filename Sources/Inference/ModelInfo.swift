import ModelFiles

/// What the chat and the CLI need to know about a loaded model, whatever its container:
/// its names, chat template, trained context and the sampling settings its authors
/// recommend. (They used to read GGUF keys through `Engine.file`; a Hugging Face folder
/// answers the same questions from its own files.)
public struct ModelInfo: Sendable, Equatable {
    /// The file or folder as the user named it.
    public var path: String
    /// `general.architecture` (or the HF `model_type` it maps to).
    public var architecture: String
    /// The name people know the model by (`ModelName.display`).
    public var displayName: String
    /// `general.name`, when the file has one.
    public var generalName: String?
    /// The Jinja chat template the model ships (`tokenizer.chat_template`).
    public var chatTemplate: String?
    /// The context the model was trained for.
    public var trainedContext: Int
    /// `general.sampling.*` values by key without the prefix (`temp`, `top_k`, `top_p`,
    /// `min_p`, `penalty_repeat`, …): the generation settings the model comes with.
    public var samplingDefaults: [String: Double]

    public init(source: any ModelSource, config: ModelConfig) {
        path = source.path
        architecture = config.architecture
        displayName = ModelName.display(forPath: source.path)
        generalName = source.string("general.name")
        chatTemplate = source.string("tokenizer.chat_template")
        trainedContext = config.contextLength
        var sampling: [String: Double] = [:]
        for (key, value) in source.metadata where key.hasPrefix("general.sampling.") {
            if let v = value.doubleValue { sampling[String(key.dropFirst("general.sampling.".count))] = v }
        }
        samplingDefaults = sampling
    }
}
