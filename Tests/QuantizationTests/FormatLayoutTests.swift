import CKernels
@testable import Quantization
import Testing

/// Block sizes and byte counts of the packed formats.
@Suite struct FormatLayoutTests {
    @Test func blockStructsMatchGGML() {
        #expect(MemoryLayout<nb_block_q8>.size == 34 && MemoryLayout<nb_block_q8>.stride == 34)  // block_q8_0
        #expect(MemoryLayout<nb_block_q4>.size == 20 && MemoryLayout<nb_block_q4>.stride == 20)  // block_q4_1
        #expect(MemoryLayout<nb_block_q2>.size == 20 && MemoryLayout<nb_block_q2>.stride == 20)  // per 64
        #expect(MemoryLayout<nb_q8a>.size == 40 && MemoryLayout<nb_q8a>.stride == 40)
        #expect(MemoryLayout<nb_block_q4>.offset(of: \.m) == 2 && MemoryLayout<nb_block_q4>.offset(of: \.qs) == 4)
        #expect(MemoryLayout<nb_block_q8>.offset(of: \.qs) == 2)
        #expect(MemoryLayout<nb_q8a>.offset(of: \.s) == 4 && MemoryLayout<nb_q8a>.offset(of: \.qs) == 8)
    }

    /// GGML's block structs (ggml-common.h) and block_q8_K, mirrored: sizes, strides and
    /// field offsets (the C side _Static_asserts the same).
    @Test func ggmlBlockStructs() {
        func layout<T>(_: T.Type) -> (Int, Int) { (MemoryLayout<T>.size, MemoryLayout<T>.stride) }
        #expect(layout(nb_block_q4_0.self) == (18, 18) && MemoryLayout<nb_block_q4_0>.offset(of: \.qs) == 2)
        #expect(layout(nb_block_q5_0.self) == (22, 22) && MemoryLayout<nb_block_q5_0>.offset(of: \.qh) == 2
                && MemoryLayout<nb_block_q5_0>.offset(of: \.qs) == 6)
        #expect(layout(nb_block_q5_1.self) == (24, 24) && MemoryLayout<nb_block_q5_1>.offset(of: \.qh) == 4
                && MemoryLayout<nb_block_q5_1>.offset(of: \.qs) == 8)
        #expect(layout(nb_block_q4_K.self) == (144, 144) && MemoryLayout<nb_block_q4_K>.offset(of: \.dmin) == 2
                && MemoryLayout<nb_block_q4_K>.offset(of: \.scales) == 4 && MemoryLayout<nb_block_q4_K>.offset(of: \.qs) == 16)
        #expect(layout(nb_block_q5_K.self) == (176, 176) && MemoryLayout<nb_block_q5_K>.offset(of: \.qh) == 16
                && MemoryLayout<nb_block_q5_K>.offset(of: \.qs) == 48)
        #expect(layout(nb_block_q6_K.self) == (210, 210) && MemoryLayout<nb_block_q6_K>.offset(of: \.qh) == 128
                && MemoryLayout<nb_block_q6_K>.offset(of: \.scales) == 192 && MemoryLayout<nb_block_q6_K>.offset(of: \.d) == 208)
        #expect(layout(nb_block_q2_K.self) == (84, 84) && MemoryLayout<nb_block_q2_K>.offset(of: \.d) == 80)
        #expect(layout(nb_block_q3_K.self) == (110, 110) && MemoryLayout<nb_block_q3_K>.offset(of: \.scales) == 96
                && MemoryLayout<nb_block_q3_K>.offset(of: \.d) == 108)
        #expect(layout(nb_block_iq4_nl.self) == (18, 18))
        #expect(layout(nb_block_iq4_xs.self) == (136, 136) && MemoryLayout<nb_block_iq4_xs>.offset(of: \.scales_l) == 4
                && MemoryLayout<nb_block_iq4_xs>.offset(of: \.qs) == 8)
        #expect(layout(nb_q8k.self) == (292, 292) && MemoryLayout<nb_q8k>.offset(of: \.qs) == 4
                && MemoryLayout<nb_q8k>.offset(of: \.bsums) == 260)
    }

    /// The format table, and WeightFormat mirroring it case for case.
    @Test func formatTable() {
        // name, block, block bytes, GGML type, activation kind, packable
        let rows: [(String, Int32, Int32, Int32, nb_activation, Bool)] = [
            ("f32", 1, 4, 0, NB_ACT_F32, true), ("f16", 1, 2, 1, NB_ACT_F32, true), ("bf16", 1, 2, 30, NB_ACT_F32, true),
            ("q8", 32, 34, 8, NB_ACT_Q8A, true), ("q4", 32, 20, 3, NB_ACT_Q8A, true), ("nf4", 64, 32, -1, NB_ACT_Q8A, true),
            ("q2", 64, 20, -1, NB_ACT_Q8A, true), ("q4_0", 32, 18, 2, NB_ACT_Q8A, false), ("q5_0", 32, 22, 6, NB_ACT_Q8A, false),
            ("q5_1", 32, 24, 7, NB_ACT_Q8A, false), ("q4_K", 256, 144, 12, NB_ACT_Q8K, false),
            ("q5_K", 256, 176, 13, NB_ACT_Q8K, false), ("q6_K", 256, 210, 14, NB_ACT_Q8K, false),
        ]
        #expect(rows.count == Int(NB_FMT_COUNT.rawValue) && WeightFormat.allCases.count == rows.count)
        #expect(nb_format_get(NB_FMT_COUNT) == nil)
        for (i, (name, block, bytes, ggml, activation, packable)) in rows.enumerated() {
            let info = nb_format_get(nb_format(UInt32(i)))!.pointee
            #expect(String(cString: info.name) == name && info.block == block && info.block_bytes == bytes && info.ggml_type == ggml
                    && info.activation == activation && (info.packable != 0) == packable, "\(name)")
            let format = WeightFormat.allCases[i]
            #expect(format.rawValue == name && format.c.rawValue == UInt32(i) && format.isPackable == packable
                    && format.blockSize == Int(block), "\(name)")
            #expect(format.ggmlTypeNumber == (ggml >= 0 ? UInt32(ggml) : nil))
            if ggml >= 0 { #expect(WeightFormat(ggmlTypeNumber: UInt32(ggml)) == format && nb_format_of_ggml(UInt32(ggml)) == Int32(i)) }
            if name != "nf4" { #expect(format.bitsPerWeight == Double(bytes) * 8 / Double(block), "\(name)") }
            #expect(format.byteCount(rows: 3, columns: 256 * 3) == (name == "nf4" ? format.byteCount(rows: 3, columns: 768) : 3 * 768 / Int(block) * Int(bytes)))
        }
        #expect(WeightFormat.selectable == [.f32, .f16, .bf16, .q8, .q4, .nf4, .q2])
        #expect(Set(WeightFormat.precisionOrder) == Set(WeightFormat.allCases) && WeightFormat.precisionOrder.count == WeightFormat.allCases.count)
        #expect(WeightFormat.q8 > .q6_K && WeightFormat.q4_K > .q4 && WeightFormat.q4 > .nf4 && WeightFormat.q5_0 > .q4_K)
        #expect(nb_format_of_ggml(10) == -1 && nb_format_of_ggml(15) == -1)  // Q2_K, Q8_K: no format
        // Activation scratch sizes by kind
        #expect(nb_activation_bytes(NB_ACT_Q8A, 3, 640) == 3 * 20 * 40 && nb_activation_bytes(NB_ACT_Q8K, 3, 512) == 3 * 2 * 292)
        #expect(nb_activation_bytes(NB_ACT_Q8K, 1, 640) == 0 && nb_activation_bytes(NB_ACT_F32, 1, 256) == 0)
    }

    @Test func byteCounts() {
        func bytes(_ f: nb_format, _ rows: Int, _ k: Int) -> Int { nb_format_bytes(f, Int64(rows), Int64(k)) }
        #expect(bytes(NB_FMT_F32, 3, 64) == 768)
        #expect(bytes(NB_FMT_F16, 3, 64) == 384)
        #expect(bytes(NB_FMT_BF16, 3, 64) == 384)
        #expect(bytes(NB_FMT_Q8, 3, 64) == 3 * 2 * 34)
        #expect(bytes(NB_FMT_Q4, 3, 64) == 3 * 2 * 20)
        #expect(bytes(NB_FMT_Q2, 3, 64) == 3 * 20)
        // nf4: codes 96 + absmax codes 3 (padded to 100) + 1 scale + offset
        #expect(bytes(NB_FMT_NF4, 3, 64) == 100 + 4 + 4)
        #expect(bytes(NB_FMT_Q8, 576, 576) == 576 * 18 * 34)
        #expect(bytes(NB_FMT_Q4, 49152, 576) == 49152 * 18 * 20)
        #expect(bytes(NB_FMT_Q2, 1536, 576) == 1536 * 9 * 20)
        // 4096 × 4096 nf4: 4096·4096/2 codes, 262144 absmax codes, 1024 scales, offset
        #expect(bytes(NB_FMT_NF4, 4096, 4096) == 8_388_608 + 262_144 + 4096 + 4)
        // q8/q4 need k % 32 == 0; nf4/q2 need k % 64 == 0
        #expect(bytes(NB_FMT_Q8, 2, 48) == 0 && bytes(NB_FMT_Q4, 2, 48) == 0)
        #expect(bytes(NB_FMT_Q8, 2, 96) == 2 * 3 * 34 && bytes(NB_FMT_Q4, 2, 96) == 2 * 3 * 20)
        #expect(bytes(NB_FMT_NF4, 2, 96) == 0 && bytes(NB_FMT_Q2, 2, 32) == 0)
        #expect(bytes(NB_FMT_Q8, 2, 0) == 0)
        // GGML's blocks: q4_0/q5_0/q5_1 per 32, K-quants per 256
        #expect(bytes(NB_FMT_Q4_0, 2, 640) == 2 * 20 * 18 && bytes(NB_FMT_Q5_0, 2, 640) == 2 * 20 * 22 && bytes(NB_FMT_Q5_1, 2, 64) == 2 * 2 * 24)
        #expect(bytes(NB_FMT_Q4_K, 640, 2048) == 640 * 8 * 144 && bytes(NB_FMT_Q5_K, 1, 512) == 2 * 176 && bytes(NB_FMT_Q6_K, 3, 256) == 3 * 210)
        #expect(bytes(NB_FMT_Q4_K, 1, 640) == 0 && bytes(NB_FMT_Q6_K, 1, 128) == 0 && bytes(NB_FMT_Q5_0, 1, 48) == 0)
    }

    @Test func bitsPerWeight() {
        func bpw(_ f: nb_format) -> Double { Double(nb_format_bytes(f, 4096, 4096)) * 8 / (4096 * 4096) }
        #expect(bpw(NB_FMT_F16) == 16 && bpw(NB_FMT_BF16) == 16)
        #expect(bpw(NB_FMT_Q8) == 8.5)
        #expect(bpw(NB_FMT_Q4) == 5)
        #expect(bpw(NB_FMT_Q2) == 2.5)
        #expect(abs(bpw(NB_FMT_NF4) - 4.127) < 0.001)  // 4 + 8/64 + 32/(64·256)
    }

    @Test func activationQuantisationIsWantedByTheBlockFormatsOnly() {
        for f in allFormats + nativeFormats {
            #expect((nb_format_wants_q8a(f) != 0) == (quantizedFormats + nativeFormats).contains(f), "\(formatName(f))")
        }
    }

    /// Every format but nf4 stores rows independently: packing a slice of rows gives the
    /// same bytes at the slice's offset (so a loader may pack rows in parallel).
    @Test func rowSlicesPackIndependently() {
        let rows = 6, k = 128
        let w = gaussianMatrix(rows: rows, k: k, seed: 11)
        for f in allFormats where f != NB_FMT_NF4 {  // (the packable formats)
            let whole = pack(f, w, rows: rows, k: k)
            let rowBytes = nb_format_bytes(f, 1, Int64(k))
            let part = pack(f, Array(w[2 * k..<5 * k]), rows: 3, k: k)
            #expect(Array(whole[2 * rowBytes..<5 * rowBytes]) == part, "\(formatName(f))")
        }
    }
}
