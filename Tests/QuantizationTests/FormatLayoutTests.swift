import CKernels
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
        for f in allFormats {
            #expect((nb_format_wants_q8a(f) != 0) == quantizedFormats.contains(f), "\(formatName(f))")
        }
    }

    /// Every format but nf4 stores rows independently: packing a slice of rows gives the
    /// same bytes at the slice's offset (so a loader may pack rows in parallel).
    @Test func rowSlicesPackIndependently() {
        let rows = 6, k = 128
        let w = gaussianMatrix(rows: rows, k: k, seed: 11)
        for f in allFormats where f != NB_FMT_NF4 {
            let whole = pack(f, w, rows: rows, k: k)
            let rowBytes = nb_format_bytes(f, 1, Int64(k))
            let part = pack(f, Array(w[2 * k..<5 * k]), rows: 3, k: k)
            #expect(Array(whole[2 * rowBytes..<5 * rowBytes]) == part, "\(formatName(f))")
        }
    }
}
