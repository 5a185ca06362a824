import Testing
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

    @Test func chunksCoverTheRangeOnce() {
        let pool = WorkerPool(threads: 2)
        for count in [0, 1, 15, 16, 17, 576, 49152] {
            let hits = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(count, 1))
            hits.initialize(repeating: 0)
            pool.parallelChunks(count, granularity: 16) { range in
                #expect(range.lowerBound % 16 == 0)
                for i in range { hits[i] += 1 }
            }
            #expect(hits[..<count].allSatisfy { $0 == 1 }, "count \(count)")
            hits.deallocate()
        }
    }
}
