import Testing
import Foundation
import CKernels
import Synchronization
@testable import Quantization

@Suite struct WorkerPoolTests {
    /// Every index runs exactly once, for many consecutive operations of varied sizes
    /// (the generation-stamped claim must never run a stale or duplicate task).
    @Test(arguments: [1, 2, 3, 4])
    func everyTaskRunsOnce(threads: Int) {
        let pool = WorkerPool(threads: threads)
        let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: 1000)
        defer { counts.deallocate() }
        for round in 0..<2000 {
            let n = (round * 37) % 1000 + 1
            counts.initialize(repeating: 0)
            pool.parallelFor(n) { i in counts[i] += 1 }   // distinct i per task: no race
            #expect(counts[..<n].allSatisfy { $0 == 1 } && counts[n...].allSatisfy { $0 == 0 }, "round \(round)")
        }
    }

    /// Ranges cover `0..<count` once, at every thread count and piece size, with the
    /// operations alternating with task operations (a late worker must not run a stale range
    /// or task), and past the 65,535 parts a claim word holds.
    @Test(arguments: [1, 2, 3, 4])
    func chunksCoverTheRangeOnce(threads: Int) {
        let pool = WorkerPool(threads: threads)
        let hits = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 2_000_000)
        defer { hits.deallocate() }
        var round = 0
        for count in [0, 1, 15, 16, 17, 576, 960, 3072, 49152, 2_000_000] {
            for (granularity, piece) in [(16, Int.max), (16, 1), (16, 3), (1, 7), (1, Int.max)] {
                hits.initialize(repeating: 0)
                pool.parallelChunks(count, granularity: granularity, piece: piece) { range in
                    #expect(range.lowerBound % granularity == 0)
                    #expect(threads == 1 || piece == .max || range.count <= piece * granularity || count > 65535 * granularity)
                    for i in range { hits[i] &+= 1 }
                }
                #expect(hits[..<count].allSatisfy { $0 == 1 } && hits[count...].allSatisfy { $0 == 0 },
                        "count \(count), granularity \(granularity), piece \(piece)")
                round += 1
                let n = round % 7 + 1
                hits.initialize(repeating: 0)
                pool.parallelFor(n) { i in hits[i] &+= 1 }
                #expect(hits[..<n].allSatisfy { $0 == 1 }, "tasks after count \(count)")
            }
        }
    }

    /// A thread that is done takes pieces from the back of a part whose owner is held up:
    /// the caller's first piece waits until another thread has run a piece of the caller's
    /// part (or gives up after 10 s, which fails the test), and that piece is the last one.
    @Test func aHeldUpPartIsTakenFromTheBack() {
        let pool = WorkerPool(threads: 2)
        let caller = pthread_self()
        let stolen = Atomic<Int>(0)
        let count = 64
        pool.parallelChunks(count, granularity: 1, piece: 1) { range in
            if pthread_equal(pthread_self(), caller) != 0 {
                guard range.lowerBound == 0 else { return }
                for _ in 0..<10_000 where stolen.load(ordering: .sequentiallyConsistent) == 0 { usleep(1000) }
            } else if range.lowerBound < count / 2 {
                _ = stolen.compareExchange(expected: 0, desired: range.lowerBound + 1, ordering: .sequentiallyConsistent)
            }
        }
        #expect(stolen.load(ordering: .sequentiallyConsistent) == count / 2, "the first piece taken from the caller's part")
    }

    /// Decode's time budget (`nibble bench`): on, each product adds a call and its time; off
    /// (the default), it is zero and stays zero. (Other tests' products, run concurrently, can
    /// only add while it is on: the checks there are lower bounds.)
    @Test func timeBudgetCountsProductsOnlyWhileOn() throws {
        let pool = WorkerPool(threads: 2)
        let rows = 64, k = 256
        let m = try WeightMatrix(format: .q8, rows: rows, columns: k, name: "w", pool: pool) { range, out in
            for (i, r) in range.enumerated() {
                for c in 0..<k { out[i * k + c] = Float((r * 7 + c) % 13) - 6 }
            }
        }
        let scratch = try ActivationScratch(tokens: 1, columns: k)
        let x = [Float](repeating: 0.5, count: k)
        var y = [Float](repeating: 0, count: rows)
        func multiply(_ times: Int) {
            for _ in 0..<times {
                y.withUnsafeMutableBufferPointer { ys in
                    x.withUnsafeBufferPointer { m.multiply($0.baseAddress!, batch: 1, into: ys.baseAddress!, pool: pool, scratch: scratch) }
                }
            }
        }
        nb_time_budget_enable(1)
        multiply(5)
        let on = nb_time_budget_read()
        nb_time_budget_enable(0)
        #expect(on.products >= 5 && on.products_ns > 0, "\(on)")
        let off = nb_time_budget_read()
        multiply(5)
        let after = nb_time_budget_read()
        for b in [off, after] {
            #expect(b.products == 0 && b.products_ns == 0 && b.attentions == 0 && b.attention_ns == 0, "\(b)")
        }
    }
}
