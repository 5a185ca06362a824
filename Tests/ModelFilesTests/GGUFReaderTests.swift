import Foundation
import Testing
@testable import ModelFiles
import TestFixtures

/// A file in a fresh folder under the scratch root (removed when the test process exits).
func temporaryFile(_ name: String, _ bytes: [UInt8]) throws -> String {
    let dir = Scratch.root.appendingPathComponent("nibble-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let path = dir.appendingPathComponent(name).path
    FileManager.default.createFile(atPath: path, contents: Data(bytes))
    return path
}

/// Every metadata value type, including nested arrays and an empty array.
let everyValueType: [(String, GGUFValue)] = [
    ("t.u8", .uint8(200)), ("t.i8", .int8(-100)), ("t.u16", .uint16(60000)), ("t.i16", .int16(-30000)),
    ("t.u32", .uint32(4_000_000_000)), ("t.i32", .int32(-2_000_000_000)), ("t.f32", .float32(3.25)),
    ("t.bool", .bool(true)), ("t.string", .string("Příliš žluťoučký kůň 🐴")),
    ("t.u64", .uint64(1 << 60)), ("t.i64", .int64(-(1 << 60))), ("t.f64", .float64(-2.5e-300)),
    ("t.array.i32", .array(type: .int32, [.int32(1), .int32(-2), .int32(3)])),
    ("t.array.strings", .array(type: .string, [.string("a b"), .string(""), .string("<|im_end|>")])),
    ("t.array.empty", .array(type: .float32, [])),
    ("t.array.nested", .array(type: .array, [
        .array(type: .string, [.string("x")]),
        .array(type: .string, [.string("y"), .string("z")]),
    ])),
]

func sampleFile(version: UInt32 = 3, alignment: Int = 32) -> GGUFWriter {
    var w = GGUFWriter(version: version, alignment: alignment)
    if alignment != 32 { w.add("general.alignment", .uint32(UInt32(alignment))) }
    for (k, v) in everyValueType { w.add(k, v) }
    // A 2×32 Q8_0 matrix and an 8-element f32 vector (32 bytes: the file ends with the
    // last tensor's data, no padding, so every shorter prefix is truncated).
    var q8: [UInt8] = []
    for row in 0..<2 {
        q8 += [0x00, 0x3C]  // f16 1.0
        q8 += (0..<32).map { UInt8(bitPattern: Int8($0 - 16 + row)) }
    }
    w.add(tensor: .init(name: "m", type: .q8_0, shape: [32, 2], data: q8))
    w.add(tensor: .init(name: "v", type: .f32, shape: [8], data: [Float(1), -2, 0.5, 0, 0, 0, 0, 7].flatMap { f in withUnsafeBytes(of: f.bitPattern.littleEndian, Array.init) }))
    return w
}

@Suite struct GGUFReaderTests {
    @Test(arguments: [UInt32(2), 3], [32, 64])
    func readsEveryValueTypeAndTensors(version: UInt32, alignment: Int) throws {
        let path = try temporaryFile("sample.gguf", sampleFile(version: version, alignment: alignment).serialize())
        let file = try GGUFFile(path: path)
        #expect(file.version == version)
        #expect(file.alignment == alignment)
        for (key, value) in everyValueType { #expect(file.metadata[key] == value, "\(key)") }
        #expect(file.metadataKeys.suffix(everyValueType.count) == everyValueType.map(\.0))
        #expect(file.stringArray("t.array.strings") == ["a b", "", "<|im_end|>"])
        #expect(file.intArray("t.array.i32") == [1, -2, 3])
        #expect(file.int("t.u64") == 1 << 60)

        #expect(file.tensors.map(\.name) == ["m", "v"])
        let m = try #require(file.tensor(named: "m"))
        #expect(m.shape == [32, 2] && m.type == .q8_0 && m.byteCount == 68 && m.offset % alignment == 0)
        let values = try file.dequantize(m)
        #expect(values[0] == -16 && values[31] == 15 && values[32] == -15 && values[63] == 16)
        let v = try #require(file.tensor(named: "v"))
        #expect(try file.dequantize(v) == [1, -2, 0.5, 0, 0, 0, 0, 7])
    }

    // MARK: - Bad files: an error naming the file, never a crash or a huge allocation.

    func expectCorrupt(_ bytes: [UInt8], _ fragment: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let path = try temporaryFile("bad.gguf", bytes)
        do {
            _ = try GGUFFile(path: path)
            Issue.record("parsed a corrupt file", sourceLocation: sourceLocation)
        } catch let error as ModelFileError {
            let message = error.description
            #expect(message.hasPrefix(path), sourceLocation: sourceLocation)
            #expect(!message.contains("\n"), sourceLocation: sourceLocation)
            if let fragment { #expect(message.contains(fragment), "\(message)", sourceLocation: sourceLocation) }
        }
    }

    @Test func everyTruncationIsAnError() throws {
        let bytes = sampleFile().serialize()
        // Cut everywhere in the header, tensor table and data (the last byte too).
        for length in 1..<bytes.count {
            try expectCorrupt(Array(bytes[..<length]))
        }
    }

    @Test func missingEmptyAndDirectory() throws {
        let missing = "/nonexistent/nibble/model.gguf"
        #expect(throws: ModelFileError.cannotOpen(path: missing, reason: "no such file or directory")) { try GGUFFile(path: missing) }
        let empty = try temporaryFile("empty.gguf", [])
        #expect(throws: ModelFileError.cannotOpen(path: empty, reason: "file is empty")) { try GGUFFile(path: empty) }
        let dir = Scratch.root.path
        #expect(throws: ModelFileError.cannotOpen(path: dir, reason: "not a regular file (a directory)")) { try GGUFFile(path: dir) }
    }

    @Test func badMagicAndVersion() throws {
        var rng = SystemRandomNumberGenerator()
        try expectCorrupt((0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) } + [], "bad magic")
        var bytes = sampleFile().serialize()
        bytes[4] = 1  // GGUF v1 used 32-bit counts
        try expectCorrupt(bytes, "unsupported GGUF version 1")
    }

    @Test func absurdCountsAreRejectedBeforeAllocating() throws {
        let header: (UInt64, UInt64) -> [UInt8] = { tensors, kvs in
            var b: [UInt8] = [0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0]
            withUnsafeBytes(of: tensors.littleEndian) { b += $0 }
            withUnsafeBytes(of: kvs.littleEndian) { b += $0 }
            return b + [UInt8](repeating: 0, count: 64)
        }
        try expectCorrupt(header(0, UInt64.max), "metadata entries")
        try expectCorrupt(header(1 << 62, 0), "tensors")
        // An array that claims 2^60 elements.
        var w = GGUFWriter()
        w.add("a", .array(type: .uint64, [.uint64(7)]))
        var bytes = w.serialize()
        let countOffset = 24 + 8 + 1 + 4 + 4  // header, key, type, element type
        withUnsafeBytes(of: (UInt64(1) << 60).littleEndian) { for i in 0..<8 { bytes[countOffset + i] = $0[i] } }
        try expectCorrupt(bytes, "array claims")
        // A string longer than the file.
        var s = GGUFWriter()
        s.add("k", .string("value"))
        var sb = s.serialize()
        sb[24 + 8 + 1 + 4 + 7] = 0x7F
        try expectCorrupt(sb, "runs past the end")
    }

    @Test func badTensorEntries() throws {
        func file(_ tensor: GGUFWriter.Tensor) -> [UInt8] {
            var w = GGUFWriter()
            w.add(tensor: tensor)
            return w.serialize()
        }
        try expectCorrupt(file(.init(name: "t", type: .q4_0, shape: [31], data: [UInt8](repeating: 0, count: 18))), "block size")
        // Data offset beyond the end.
        var bytes = file(.init(name: "t", type: .f32, shape: [4], data: [UInt8](repeating: 0, count: 16)))
        let offsetField = 24 + 8 + 1 + 4 + 8 + 4
        bytes[offsetField + 4] = 1
        try expectCorrupt(bytes, "runs past the end")
        // Unknown type and too many dimensions.
        var typeBytes = file(.init(name: "t", type: .f32, shape: [4], data: [UInt8](repeating: 0, count: 16)))
        typeBytes[24 + 8 + 1 + 4 + 8] = 99
        try expectCorrupt(typeBytes, "unknown ggml type 99")
        var dimBytes = file(.init(name: "t", type: .f32, shape: [4], data: [UInt8](repeating: 0, count: 16)))
        dimBytes[24 + 8 + 1] = 9
        try expectCorrupt(dimBytes, "dimensions")
    }

    @Test func duplicateKeysAndTensors() throws {
        var w = GGUFWriter()
        w.add("k", .uint8(1))
        w.add("k", .uint8(2))
        try expectCorrupt(w.serialize(), "duplicate metadata key 'k'")
        var t = GGUFWriter()
        t.add(tensor: .init(name: "x", type: .f32, shape: [1], data: [0, 0, 0, 0]))
        t.add(tensor: .init(name: "x", type: .f32, shape: [1], data: [0, 0, 0, 0]))
        try expectCorrupt(t.serialize(), "duplicate tensor name 'x'")
    }

    @Test func typeTraitsMatchGGML() {
        // sizeof(block_*) in ggml-common.h.
        #expect(GGMLType.q4_1.blockBytes == 20 && GGMLType.q4_1.bitsPerWeight == 5)
        #expect(GGMLType.q8_0.blockBytes == 34 && GGMLType.q8_0.bitsPerWeight == 8.5)
        #expect(GGMLType.q4_K.blockBytes == 144 && GGMLType.q4_K.blockSize == 256)
        #expect(GGMLType.q6_K.blockBytes == 210)
        #expect(GGMLType(name: "q4_k") == .q4_K && GGMLType(name: "BF16") == .bf16)
        #expect(GGMLType.iq4_XS.name == "IQ4_XS")
    }
}
