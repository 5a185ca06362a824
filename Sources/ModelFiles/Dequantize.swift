// Reference dequantisation of ggml blocks to f32.
//
// Ported from ggml's `dequantize_row_*` (ggml/src/ggml-quants.c) and checked bit for
// bit against gguf-py's `gguf.quants.dequantize`. The arithmetic is written so that no
// fused multiply-add is formed (Swift never contracts `a * b + c`), because the
// references round the product and the sum separately: `y = d * q + m`.

extension GGMLType {
    /// Whether `dequantize(_:count:into:)` handles this type.
    public var canDequantize: Bool {
        switch self {
        case .f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1: true
        default: false
        }
    }

    /// Converts `count` elements (a whole number of blocks) starting at `source` to f32.
    /// - Precondition: `canDequantize` and `count % blockSize == 0`.
    public func dequantize(_ source: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(canDequantize && count % blockSize == 0)
        let blocks = count / blockSize
        switch self {
        case .f32:
            out.update(from: source.assumingMemoryBound(to: Float.self), count: count)
            // (an unaligned source is fine on x86-64 and arm64; GGUF data is 32-byte aligned)
        case .f16:
            for i in 0..<count { out[i] = halfToFloat(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .bf16:
            for i in 0..<count { out[i] = Float(bitPattern: UInt32(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
        case .q8_0:
            // block_q8_0 { ggml_half d; int8_t qs[32]; }  y = d * q
            for b in 0..<blocks {
                let block = source + b * 34
                let d = halfToFloat(block.loadUnaligned(as: UInt16.self))
                let qs = (block + 2).assumingMemoryBound(to: Int8.self)
                let y = out + b * 32
                for j in 0..<32 { y[j] = d * Float(qs[j]) }
            }
        case .q4_0:
            // block_q4_0 { ggml_half d; uint8_t qs[16]; }  element j is the low nibble of
            // qs[j], element j+16 its high nibble; y = d * (q - 8)
            for b in 0..<blocks {
                let block = source + b * 18
                let d = halfToFloat(block.loadUnaligned(as: UInt16.self))
                let qs = (block + 2).assumingMemoryBound(to: UInt8.self)
                let y = out + b * 32
                for j in 0..<16 {
                    y[j] = d * Float(Int(qs[j] & 0x0F) - 8)
                    y[j + 16] = d * Float(Int(qs[j] >> 4) - 8)
                }
            }
        case .q4_1:
            // block_q4_1 { ggml_half d; ggml_half m; uint8_t qs[16]; }  y = d * q + m
            for b in 0..<blocks {
                let block = source + b * 20
                let d = halfToFloat(block.loadUnaligned(as: UInt16.self))
                let m = halfToFloat(block.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
                let qs = (block + 4).assumingMemoryBound(to: UInt8.self)
                let y = out + b * 32
                for j in 0..<16 {
                    y[j] = d * Float(qs[j] & 0x0F) + m
                    y[j + 16] = d * Float(qs[j] >> 4) + m
                }
            }
        case .q5_0:
            // block_q5_0 { ggml_half d; uint8_t qh[4]; uint8_t qs[16]; }  the fifth bit of
            // element j is bit j of qh; y = d * (q - 16)
            for b in 0..<blocks {
                let block = source + b * 22
                let d = halfToFloat(block.loadUnaligned(as: UInt16.self))
                let qh = block.loadUnaligned(fromByteOffset: 2, as: UInt32.self).littleEndian
                let qs = (block + 6).assumingMemoryBound(to: UInt8.self)
                let y = out + b * 32
                for j in 0..<16 {
                    let lo = Int(qs[j] & 0x0F) | Int((qh >> UInt32(j)) & 1) << 4
                    let hi = Int(qs[j] >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
                    y[j] = d * Float(lo - 16)
                    y[j + 16] = d * Float(hi - 16)
                }
            }
        case .q5_1:
            // block_q5_1 { ggml_half d; ggml_half m; uint8_t qh[4]; uint8_t qs[16]; }  y = d * q + m
            for b in 0..<blocks {
                let block = source + b * 24
                let d = halfToFloat(block.loadUnaligned(as: UInt16.self))
                let m = halfToFloat(block.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
                let qh = block.loadUnaligned(fromByteOffset: 4, as: UInt32.self).littleEndian
                let qs = (block + 8).assumingMemoryBound(to: UInt8.self)
                let y = out + b * 32
                for j in 0..<16 {
                    let lo = UInt32(qs[j] & 0x0F) | ((qh >> UInt32(j)) & 1) << 4
                    let hi = UInt32(qs[j] >> 4) | ((qh >> UInt32(j + 16)) & 1) << 4
                    y[j] = d * Float(lo) + m
                    y[j + 16] = d * Float(hi) + m
                }
            }
        default:
            preconditionFailure("no dequantiser for \(name)")
        }
    }
}

/// IEEE half to single precision, exact for every input (NaN payloads included).
@inline(__always)
public func halfToFloat(_ bits: UInt16) -> Float {
    Float(Float16(bitPattern: bits))
}
