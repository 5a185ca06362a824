import Foundation
import ModelFiles

/// A copy of the default model with some metadata changed (nil removes a key), as
/// `gguf-new-metadata` would write it: the hostile-file tests' models.
func modelCopy(_ name: String, in dir: URL, changing changes: [String: GGUFValue?]) throws -> URL {
    let source = try GGUFFile(path: try requireModel())
    var writer = GGUFWriter(version: source.version, alignment: source.alignment)
    for key in source.metadataKeys {
        if let change = changes[key] {
            if let value = change { writer.add(key, value) }
        } else {
            writer.add(key, source.metadata[key]!)
        }
    }
    for (key, change) in changes where source.metadata[key] == nil {
        if let value = change { writer.add(key, value) }
    }
    for tensor in source.tensors {
        writer.add(tensor: .init(name: tensor.name, type: tensor.type, shape: tensor.shape, data: Array(source.data(of: tensor))))
    }
    let url = dir.appendingPathComponent(name)
    try Data(writer.serialize()).write(to: url)
    return url
}
