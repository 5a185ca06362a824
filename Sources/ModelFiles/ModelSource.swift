// Where a model's weights and hyper-parameters come from, whatever the container.
//
// The engine, `Footprint`, `info` and the weight loader see a model only through this
// protocol: metadata under GGUF's key names (`general.architecture`,
// `<arch>.block_count`, `tokenizer.ggml.tokens`, …) and tensors under GGUF's names and
// shapes. `GGUFFile` is one; a Hugging Face folder (config.json + safetensors) becomes
// another by translating its config into the same keys and its tensor names into
// GGUF's, so the model families never learn which container they were read from.

/// A model's metadata and tensor table, with each tensor's bytes.
public protocol ModelSource: AnyObject, Sendable {
    /// The file or folder, as the user named it (every error names it).
    var path: String { get }
    /// Metadata under GGUF key names.
    var metadata: [String: GGUFValue] { get }
    /// The tensor table, in storage order.
    var tensors: [GGUFTensorInfo] { get }
    func tensor(named name: String) -> GGUFTensorInfo?
    /// The raw bytes of a tensor (no copy; valid while the source lives).
    func data(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer
    /// Throws when the bytes behind the source changed since it was opened (re-reading
    /// a truncated mapping would be a SIGBUS; a rewritten one would mix versions).
    func verifyUnchanged() throws
    /// Lets the memory behind `bytes` (a tensor's, or the header's, once copied or
    /// parsed) go: mapped file pages are dropped from the resident set. Optional.
    func releasePages(of bytes: UnsafeRawBufferPointer)
    /// Forgets the values of `keys` (the engine drops the vocabulary arrays once its
    /// tokenizer has its own tables). Call before the source is shared between threads. Optional.
    func discardMetadata(_ keys: Set<String>)
}

extension ModelSource {
    public func releasePages(of bytes: UnsafeRawBufferPointer) {}
    public func discardMetadata(_ keys: Set<String>) {}

    public func string(_ key: String) -> String? { metadata[key]?.stringValue }
    public func int(_ key: String) -> Int? { metadata[key]?.intValue }
    public func float(_ key: String) -> Double? { metadata[key]?.doubleValue }
    public func bool(_ key: String) -> Bool? { metadata[key]?.boolValue }

    public func stringArray(_ key: String) -> [String]? { array(key) { $0.stringValue } }
    public func intArray(_ key: String) -> [Int]? { array(key) { $0.intValue } }
    public func floatArray(_ key: String) -> [Float]? { array(key) { $0.doubleValue.map(Float.init) } }

    /// The array at `key` when every element converts; nil otherwise.
    private func array<T>(_ key: String, _ convert: (GGUFValue) -> T?) -> [T]? {
        guard let items = metadata[key]?.arrayValue else { return nil }
        var out: [T] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard let v = convert(item) else { return nil }
            out.append(v)
        }
        return out
    }

    /// `general.architecture`, the key prefix of the model's hyper-parameters.
    public var architecture: String? { string("general.architecture") }

    /// The whole tensor as f32.
    /// - Throws: `ModelFileError.invalidValue` when its type has no dequantiser yet.
    public func dequantize(_ tensor: GGUFTensorInfo) throws -> [Float] {
        guard tensor.type.canDequantize else {
            throw ModelFileError.invalidValue(path: path, key: tensor.name, reason: "has ggml type \(tensor.type.name), which Nibble cannot read yet")
        }
        let data = data(of: tensor)
        return [Float](unsafeUninitializedCapacity: tensor.elementCount) { buffer, count in
            tensor.type.dequantize(data.baseAddress!, count: tensor.elementCount, into: buffer.baseAddress!)
            count = tensor.elementCount
        }
    }
}
