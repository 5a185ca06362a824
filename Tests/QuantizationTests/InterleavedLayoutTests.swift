import CKernels
import Foundation
@testable import Quantization
import Testing

// The interleaved layout of q8, q4, q4_0, q5_0, q5_1, q2, nf4 and the K-quants (CKernels.h, "interleaved weights"): where each
// byte of a GGML block goes, that the blocks come back unchanged however the rows were
// written, and WeightMatrix's use of it. Its kernels against the scalar path on the blocks:
// KernelTilingTests.

private func someBlocks(_ fmt: nb_format, rows: Int, k: Int, seed: UInt64) -> [UInt8] {
    nativeFormats.contains(fmt) ? randomBlocks(fmt, rows: rows, k: k, seed: seed)
        : pack(fmt, gaussianMatrix(rows: rows, k: k, seed: seed), rows: rows, k: k)
}

@Suite struct InterleavedLayoutTests {
    /// Every byte against the layout as CKernels.h describes it, computed here (blocks of 32,
    /// q2's of 64, the K-quants' of 256): the group is runs of P blocks (P = 2 with one f16
    /// field, else 1), each its blocks' fields, padded to 64 bytes, then their codes; f16 field
    /// f of block b of row r at run(b) + (b mod P)·32F + 32f + 2·lane in its group, code word j
    /// (the block's bytes after its fields; q6_K: before its d) at run(b) + 64 + (b mod P)·16Q
    /// + 64j + 4·lane; a last run of fewer blocks is as long as they need; padding rows and
    /// bytes zero (the buffer starts as 0xA5).
    @Test func bytesAreWhereTheLayoutSays() {
        for fmt in interleavedFormats where fmt != NB_FMT_NF4 {
            // f16 fields, code bytes per block and where the fields are, from the block structs
            // in CKernels.h
            let (fields, qbytes, fieldAt) = switch fmt {
            case NB_FMT_Q8: (1, 32, 0)
            case NB_FMT_Q4: (2, 16, 0)
            case NB_FMT_Q4_0: (1, 16, 0)
            case NB_FMT_Q5_0: (1, 20, 0)
            case NB_FMT_Q2: (2, 16, 0)
            case NB_FMT_Q4_K: (2, 140, 0)  // d, dmin | scales[12], qs[128]
            case NB_FMT_Q5_K: (2, 172, 0)  // d, dmin | scales[12], qh[32], qs[128]
            case NB_FMT_Q6_K: (1, 208, 208)  // ql[128], qh[64], scales[16] | d
            default: (2, 20, 0)  // q5_1
            }
            let codeAt = fieldAt == 0 ? 2 * fields : 0
            let block = Int(nb_format_get(fmt)!.pointee.block)  // q2: 64
            for (rows, k) in [(1, 32), (17, 96), (40, 64), (3, 128), (1, 256), (17, 512)] where k % block == 0 {
                let nb = k / block, blockBytes = 2 * fields + qbytes
                let per = fields == 1 ? 2 : 1, run = 64 + per * 16 * qbytes
                let group = nb / per * run + (nb % per > 0 ? 64 + nb % per * 16 * qbytes : 0)
                let blocks = someBlocks(fmt, rows: rows, k: k, seed: UInt64(rows * k))
                let il = interleave(fmt, blocks, rows: rows, k: k)
                #expect(il.count == (rows + 15) / 16 * group && group % 64 == 0)
                var expected = [UInt8](repeating: 0, count: il.count)
                for r in 0..<rows {
                    for b in 0..<nb {
                        let src = (r * nb + b) * blockBytes, g = r / 16 * group + b / per * run, lane = r % 16, i0 = b % per
                        for f in 0..<fields {
                            for i in 0..<2 { expected[g + i0 * 32 * fields + 32 * f + 2 * lane + i] = blocks[src + fieldAt + 2 * f + i] }
                        }
                        for j in 0..<qbytes / 4 {
                            for i in 0..<4 { expected[g + 64 + i0 * 16 * qbytes + 64 * j + 4 * lane + i] = blocks[src + codeAt + 4 * j + i] }
                        }
                    }
                }
                #expect(il == expected, "\(formatName(fmt)) \(rows) × \(k)")
            }
        }
    }

    /// nf4, byte by byte: runs of 4 64-blocks, their absmax codes (padded to 64 bytes) and then
    /// their codes; block b of row r has its absmax code at run(b) + (b mod 4)·16 + lane of the
    /// group and its 32 code bytes as 8 words at run(b) + 64 + (b mod 4)·512 + 64j + 4·lane;
    /// the per-256-block scales and the offset follow the last group as packed.
    @Test func nf4BytesAreWhereTheLayoutSays() {
        for (rows, k) in [(1, 64), (17, 192), (40, 576)] {
            let nb = k / 64, run = 64 + 4 * 512, group = nb / 4 * run + (nb % 4 > 0 ? 64 + nb % 4 * 512 : 0)
            let packed = pack(NB_FMT_NF4, gaussianMatrix(rows: rows, k: k, seed: UInt64(rows + k)), rows: rows, k: k)
            let qabsmax = rows * k / 2, scales = (qabsmax + rows * nb + 3) / 4 * 4
            let il = interleave(NB_FMT_NF4, packed, rows: rows, k: k)
            let groups = (rows + 15) / 16 * group
            #expect(il.count == groups + packed.count - scales)
            var expected = [UInt8](repeating: 0, count: il.count)
            for r in 0..<rows {
                for b in 0..<nb {
                    let g = r / 16 * group + b / 4 * run, lane = r % 16
                    expected[g + b % 4 * 16 + lane] = packed[qabsmax + r * nb + b]
                    for j in 0..<8 {
                        for i in 0..<4 { expected[g + 64 + b % 4 * 512 + 64 * j + 4 * lane + i] = packed[(r * nb + b) * 32 + 4 * j + i] }
                    }
                }
            }
            for i in scales..<packed.count { expected[groups + i - scales] = packed[i] }
            #expect(il == expected, "nf4 \(rows) × \(k)")
            #expect(deinterleave(NB_FMT_NF4, il, rows: rows, k: k, range: 0..<rows) == packed)
        }
    }

    /// Written whole or in pieces, in any order, over any earlier contents: the same bytes. The
    /// blocks come back whole or by row ranges, and rows unpack as the blocks' rows.
    @Test func roundTripsInPieces() {
        for fmt in interleavedFormats {
            for (rows, k) in [(33, 96), (48, 576), (40, 128), (33, 512)] where k % Int(nb_format_get(fmt)!.pointee.block) == 0 {
                let blocks = someBlocks(fmt, rows: rows, k: k, seed: 7)
                let rowBytes = nb_format_bytes(fmt, 1, Int64(k))
                let whole = interleave(fmt, blocks, rows: rows, k: k)
                for pieces in [[0..<16, 16..<32, 32..<rows].reversed(), [0..<5, 5..<21, 21..<rows], (0..<rows).map { $0..<($0 + 1) }] {
                    #expect(interleave(fmt, blocks, rows: rows, k: k, pieces: Array(pieces), fill: 0x5A) == whole,
                            "\(formatName(fmt)) \(rows) × \(k) in \(pieces.count) pieces")
                }
                #expect(deinterleave(fmt, whole, rows: rows, k: k, range: 0..<rows) == blocks)
                if fmt != NB_FMT_NF4 {  // nf4's rows are not whole blocks apart (nf4BytesAreWhereTheLayoutSays)
                    #expect(deinterleave(fmt, whole, rows: rows, k: k, range: 7..<30) == Array(blocks[(7 * rowBytes)..<(30 * rowBytes)]))
                }
                let values = unpack(fmt, blocks, rows: rows, k: k)
                var row = [Float](repeating: .nan, count: k)
                for r in [0, 15, 16, rows - 1] {
                    whole.withUnsafeBytes { w in
                        row.withUnsafeMutableBufferPointer { nb_unpack_row_interleaved(fmt, w.baseAddress, Int64(rows), Int64(k), Int64(r), $0.baseAddress) }
                    }
                    #expect(row.map(\.bitPattern) == values[(r * k)..<((r + 1) * k)].map(\.bitPattern), "\(formatName(fmt)) row \(r)")
                }
            }
        }
        // No layout: a format without one, or rows that are not whole blocks.
        #expect(nb_interleaved_bytes(NB_FMT_Q6_K, 16, 128) == 0 && nb_interleaved_bytes(NB_FMT_Q4_K, 16, 320) == 0
                && nb_interleaved_bytes(NB_FMT_F16, 16, 64) == 0 && nb_interleaved_bytes(NB_FMT_NF4, 16, 96) == 0)
        #expect(nb_interleaved_bytes(NB_FMT_Q8, 16, 48) == 0 && nb_interleaved_bytes(NB_FMT_Q2, 16, 96) == 0)
    }

    /// WeightMatrix holds q8, q4, q2 and nf4 interleaved (on x86), built from a file's blocks or from f32 rows on
    /// a pool (70 rows: the last group is short): packedBytes gives the blocks back, rows
    /// unpack as the blocks' rows, and products equal nb_matmul's on the blocks bit for bit.
    @Test func weightMatrixKeepsTheLayout() throws {
        let pool = WorkerPool(threads: 2)
        let rows = 70, k = 576
        let values = gaussianMatrix(rows: rows, k: k, seed: 4)
        for format in [WeightFormat.q8, .q4, .q2, .nf4] {
            let blocks = pack(format.c, values, rows: rows, k: k)
            let fromBlocks = try blocks.withUnsafeBytes { try WeightMatrix(format: format, rows: rows, columns: k, name: "w", packed: $0) }
            let fromRows = try WeightMatrix(format: format, rows: rows, columns: k, name: "w", pool: pool) { range, out in
                for (i, r) in range.enumerated() {
                    for c in 0..<k { out[i * k + c] = values[r * k + c] }
                }
            }
            for m in [fromBlocks, fromRows] {
                #expect(m.byteCount == format.storedByteCount(rows: rows, columns: k))
                #if arch(x86_64)
                #expect(m.interleaved && m.byteCount == Int(nb_interleaved_bytes(format.c, Int64(rows), Int64(k))))
                if format != .nf4 { #expect(m.byteCount == 5 * Int(nb_interleaved_bytes(format.c, 16, Int64(k)))) }
                #endif
                try expectSameAsBlocks(m, blocks, pool: pool)
            }
        }
    }

    /// The K-quants, which only come from files: built from their blocks, held interleaved (on
    /// x86), given back, unpacked and multiplied as the blocks are.
    @Test func weightMatrixKeepsTheKQuantsInterleaved() throws {
        let pool = WorkerPool(threads: 2)
        let rows = 70, k = 512
        for format in [WeightFormat.q4_K, .q5_K, .q6_K] {
            let blocks = randomBlocks(format.c, rows: rows, k: k, seed: 3)
            let m = try blocks.withUnsafeBytes { try WeightMatrix(format: format, rows: rows, columns: k, name: "w", packed: $0) }
            #expect(m.byteCount == format.storedByteCount(rows: rows, columns: k))
            #if arch(x86_64)
            // 5 groups, each 16 rows' bytes: at 2 blocks per row even q6_K's 32-byte d fields fill
            // the 64-byte scale part
            #expect(m.interleaved && m.byteCount == 5 * 16 * format.byteCount(rows: 1, columns: k))
            #endif
            try expectSameAsBlocks(m, blocks, pool: pool)
        }
    }
}

/// `m` gives `blocks` back (`packedBytes`), its rows unpack as theirs, and its products with
/// 1 and 3 tokens equal nb_matmul's on them bit for bit.
private func expectSameAsBlocks(_ m: WeightMatrix, _ blocks: [UInt8], pool: WorkerPool) throws {
    let format = m.format, rows = m.rows, k = m.columns
    #expect(m.packedBytes == blocks, "\(format)")
    let unpacked = unpack(format.c, blocks, rows: rows, k: k)
    var row = [Float](repeating: .nan, count: k)
    for r in [0, 17, rows - 1] {
        row.withUnsafeMutableBufferPointer { m.row(r, into: $0.baseAddress!) }
        #expect(row.map(\.bitPattern) == unpacked[(r * k)..<((r + 1) * k)].map(\.bitPattern), "\(format) row \(r)")
    }
    for batch in [1, 3] {
        let x = gaussianMatrix(rows: batch, k: k, seed: 9)
        let scratch = try ActivationScratch(tokens: batch, columns: k)
        var y = [Float](repeating: .nan, count: batch * rows)
        y.withUnsafeMutableBufferPointer { ys in
            x.withUnsafeBufferPointer { m.multiply($0.baseAddress!, batch: batch, into: ys.baseAddress!, pool: pool, scratch: scratch) }
        }
        let xq = quantizeFor(format.activation, x, tokens: batch, k: k)
        let expected = matmulRaw(format.c, blocks, rows: rows, k: k, xq: xq, tokens: batch, ldY: rows, rowRange: 0..<rows)
        #expect(y.map(\.bitPattern) == expected.map(\.bitPattern), "\(format) batch \(batch)")
    }
}
