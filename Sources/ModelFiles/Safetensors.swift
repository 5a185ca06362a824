import Foundation

// A reader for safetensors, the weight format of Hugging Face folders.
// Format: https://github.com/huggingface/safetensors#format
//
//   u64 N (little-endian) | N bytes of JSON: {"name": {"dtype": "F32", "shape": [..],
//   "data_offsets": [begin, end]}, ..., "__metadata__": {...}} | the data section
//
// Offsets are relative to the data section. The whole header is checked before a
// tensor is handed out: the length fits the file, the JSON is an object of tensors,
// each tensor's dtype is one Nibble reads (F32, F16, BF16), its shape × element size
// is its byte length, its bytes lie inside the data section and overlap no other's.

/// One tensor of a safetensors file, in the file's own (row-major) terms.
public struct SafetensorsTensor: Sendable, Equatable {
    public let name: String
    public let type: GGMLType
    /// Row-major, outermost first (PyTorch order): a Linear weight is `[out, in]`.
    public let shape: [Int]
    /// Absolute byte range within the file.
    public let range: Range<Int>

    public var elementCount: Int { shape.reduce(1, *) }
}

/// A mapped `.safetensors` file: its tensor table and tensor bytes.
public final class SafetensorsFile: @unchecked Sendable {
    public let path: String
    public let file: MappedFile
    /// Tensors in data order.
    public let tensors: [SafetensorsTensor]
    /// `__metadata__` (string → string), when present.
    public let metadata: [String: String]
    private let index: [String: Int]

    /// Largest header accepted (100 MB, the limit of the safetensors library itself).
    public static let maximumHeaderLength = 100_000_000

    /// Maps and validates `path`.
    /// - Throws: `ModelFileError` naming the file and, when one is at fault, the tensor.
    public init(path: String) throws {
        let file = try MappedFile(path: path)
        self.path = path
        self.file = file
        func bad(_ reason: String) -> ModelFileError { .malformed(path: path, reason: reason) }

        let size = file.bytes.count
        guard size >= 8 else { throw bad("the file is \(size) bytes, too short for the safetensors header length") }
        let headerLength = file.bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
        guard headerLength <= UInt64(size - 8) else {
            throw bad("the header length \(headerLength) runs past the end of the file (\(size) bytes); the file is truncated or not safetensors")
        }
        guard headerLength <= UInt64(Self.maximumHeaderLength) else {
            throw bad("the header length \(headerLength) is more than the \(Self.maximumHeaderLength) bytes safetensors allows")
        }
        let dataStart = 8 + Int(headerLength)
        let dataCount = size - dataStart
        let json = Data(file.bytes[8..<dataStart])
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: json)
        } catch {
            throw bad("the header is not well-formed JSON")
        }
        guard let entries = object as? [String: Any] else { throw bad("the header is not a JSON object") }

        var tensors: [SafetensorsTensor] = []
        var metadata: [String: String] = [:]
        for (name, value) in entries {
            if name == "__metadata__" {
                if let m = value as? [String: Any] {
                    for (k, v) in m { if let s = v as? String { metadata[k] = s } }
                }
                continue
            }
            func badTensor(_ reason: String) -> ModelFileError { bad("tensor '\(name.printable())' \(reason)") }
            guard let entry = value as? [String: Any] else { throw badTensor("is not a JSON object") }
            guard let dtype = entry["dtype"] as? String else { throw badTensor("has no 'dtype'") }
            guard let type = Self.types[dtype] else {
                throw badTensor("has dtype \(dtype.printable()), which Nibble cannot read (F32, F16 and BF16 are supported)")
            }
            guard let shapeValues = entry["shape"] as? [Any] else { throw badTensor("has no 'shape' list") }
            var shape: [Int] = []
            var elements = 1
            for v in shapeValues {
                guard let d = Self.integer(v), d >= 0, d < 1 << 40 else { throw badTensor("has shape entry \(v), not a dimension") }
                let (product, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow, product < 1 << 48 else { throw badTensor("has an absurd element count") }
                elements = product
                shape.append(d)
            }
            guard let offsets = entry["data_offsets"] as? [Any], offsets.count == 2,
                  let begin = Self.integer(offsets[0]), let end = Self.integer(offsets[1]) else {
                throw badTensor("has no 'data_offsets' [begin, end]")
            }
            guard begin >= 0, begin <= end else { throw badTensor("has data_offsets [\(begin), \(end)], which do not form a range") }
            guard end <= dataCount else {
                throw badTensor("has data_offsets [\(begin), \(end)] past the end of the data section (\(dataCount) bytes); the file is truncated")
            }
            let bytes = elements * type.byteCount(elements: 1)!
            guard end - begin == bytes else {
                throw badTensor("has \(end - begin) bytes but dtype \(dtype) × shape \(shape) is \(bytes) bytes")
            }
            tensors.append(SafetensorsTensor(name: name, type: type, shape: shape, range: (dataStart + begin)..<(dataStart + end)))
        }
        tensors.sort { ($0.range.lowerBound, $0.range.upperBound, $0.name) < ($1.range.lowerBound, $1.range.upperBound, $1.name) }
        for (a, b) in zip(tensors, tensors.dropFirst()) where a.range.overlaps(b.range) {
            throw bad("tensor '\(b.name.printable())' overlaps tensor '\(a.name.printable())' (data_offsets [\(b.range.lowerBound - dataStart), \(b.range.upperBound - dataStart)] and [\(a.range.lowerBound - dataStart), \(a.range.upperBound - dataStart)])")
        }
        self.tensors = tensors
        self.metadata = metadata
        index = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
    }

    static let types: [String: GGMLType] = ["F32": .f32, "F16": .f16, "BF16": .bf16]

    /// A JSON number that is an exact non-negative integer.
    static func integer(_ value: Any) -> Int? {
        if let n = value as? NSNumber {
            let d = n.doubleValue
            guard d >= 0, d < 9e15, d == d.rounded() else { return nil }
            return Int(d)
        }
        return nil
    }

    public func tensor(named name: String) -> SafetensorsTensor? { index[name].map { tensors[$0] } }

    /// The tensor's bytes inside the mapping (no copy).
    public func data(of tensor: SafetensorsTensor) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[tensor.range])
    }
}

/// The safetensors of a model folder: one `model.safetensors`, or the shards a
/// `model.safetensors.index.json` lists in its `weight_map`.
public final class SafetensorsCollection: @unchecked Sendable {
    public let files: [SafetensorsFile]
    /// Tensor name → (file index, tensor), every tensor of every file.
    public let tensors: [String: (file: Int, tensor: SafetensorsTensor)]
    /// Tensor names in storage order (file by file).
    public let names: [String]

    /// Opens the weights of `folder`.
    public init(folder: String) throws {
        let fm = FileManager.default
        let indexPath = folder + "/model.safetensors.index.json"
        let single = folder + "/model.safetensors"
        var fileNames: [String]
        var weightMap: [String: String]? = nil
        if fm.fileExists(atPath: indexPath) {
            func bad(_ reason: String) -> ModelFileError { .malformed(path: indexPath, reason: reason) }
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: indexPath)) } catch {
                throw ModelFileError.cannotOpen(path: indexPath, reason: "cannot read: \(error.localizedDescription)")
            }
            guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw bad("is not a well-formed JSON object")
            }
            guard let map = object["weight_map"] as? [String: Any] else { throw bad("has no 'weight_map' object") }
            var names: [String: String] = [:]
            for (tensor, file) in map {
                guard let file = file as? String, !file.isEmpty, !file.contains("/"), file != "..", file != "." else {
                    throw bad("'weight_map' gives tensor '\(tensor.printable())' the file \(String(describing: file).printable()), not a file name in the folder")
                }
                names[tensor] = file
            }
            weightMap = names
            fileNames = Array(Set(names.values)).sorted()
        } else if fm.fileExists(atPath: single) {
            fileNames = ["model.safetensors"]
        } else {
            throw ModelFileError.cannotOpen(path: folder, reason: "a model folder needs model.safetensors or model.safetensors.index.json, and it has neither")
        }
        var files: [SafetensorsFile] = []
        var tensors: [String: (file: Int, tensor: SafetensorsTensor)] = [:]
        var names: [String] = []
        for (i, name) in fileNames.enumerated() {
            let file = try SafetensorsFile(path: folder + "/" + name)
            files.append(file)
            for t in file.tensors {
                if let map = weightMap, map[t.name] != name { continue }  // the index decides which shard holds it
                guard tensors[t.name] == nil else {
                    throw ModelFileError.malformed(path: file.path, reason: "tensor '\(t.name.printable())' is also in \(files[tensors[t.name]!.file].path)")
                }
                tensors[t.name] = (i, t)
                names.append(t.name)
            }
        }
        if let map = weightMap {
            for (tensor, file) in map.sorted(by: { $0.key < $1.key }) where tensors[tensor] == nil {
                throw ModelFileError.malformed(path: folder + "/" + file, reason: "tensor '\(tensor.printable())' is missing (model.safetensors.index.json puts it in this file)")
            }
        }
        self.files = files
        self.tensors = tensors
        self.names = names
    }
}
