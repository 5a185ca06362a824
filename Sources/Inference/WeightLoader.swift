import ModelFiles
import Quantization

/// Turns GGUF tensors into engine weights, checking every shape against the config so
/// that a mismatched file fails with the tensor's name instead of reading out of bounds.
struct WeightLoader {
    let gguf: GGUFFile
    let format: WeightFormat

    func has(_ name: String) -> Bool { gguf.tensor(named: name) != nil }

    private func tensor(_ name: String, shape: [Int]) throws -> GGUFTensorInfo {
        guard let t = gguf.tensor(named: name) else {
            throw ModelFileError.invalidValue(path: gguf.path, key: name, reason: "tensor is missing")
        }
        // Trailing dimensions of 1 are equivalent ([576] == [576, 1]).
        func trimmed(_ s: [Int]) -> [Int] { var s = s; while s.count > 1, s.last == 1 { s.removeLast() }; return s }
        guard trimmed(t.shape) == trimmed(shape) else {
            throw ModelFileError.invalidValue(path: gguf.path, key: name, reason: "has shape \(t.shape), expected \(shape)")
        }
        guard t.type.canDequantize else {
            throw ModelFileError.invalidValue(path: gguf.path, key: name, reason: "has ggml type \(t.type.name), which Nibble cannot read yet")
        }
        return t
    }

    /// A `rows × columns` matrix (GGUF shape `[columns, rows]`).
    func matrix(_ name: String, rows: Int, columns: Int) throws -> WeightMatrix {
        let t = try tensor(name, shape: [columns, rows])
        let data = gguf.data(of: t)
        let rowBytes = t.type.byteCount(elements: columns)!
        return try WeightMatrix(format: format, rows: rows, columns: columns, name: name) { range, out in
            t.type.dequantize(data.baseAddress! + range.lowerBound * rowBytes, count: range.count * columns, into: out)
        }
    }

    /// A vector kept in f32 at every precision (norm weights, biases).
    func vector(_ name: String, count: Int) throws -> [Float] {
        try gguf.dequantize(tensor(name, shape: [count]))
    }
}
