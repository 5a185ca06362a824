import CKernels

/// The process's persistent worker threads, shared by every operation.
///
/// `parallelFor` hands out task indices dynamically; the calling thread works too.
/// No threads are created per operation (see CKernels/pool.c).
public final class WorkerPool: @unchecked Sendable {
    /// The C pool, for kernels that split their own work (nb_pack_nf4).
    let pool: OpaquePointer
    public var threadCount: Int { Int(nb_pool_threads(pool)) }

    /// - Parameter threads: total threads including the caller's (at least 1).
    public init(threads: Int) {
        pool = nb_pool_create(Int32(max(1, threads)))
    }

    deinit { nb_pool_destroy(pool) }

    /// Runs `body(i)` for every `i` in `0..<count` and returns when all are done.
    /// `body` must be safe to call concurrently for different `i`.
    public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        guard count > 0 else { return }
        if count == 1 || threadCount == 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            var task = body
            withUnsafeMutablePointer(to: &task) { pointer in
                nb_pool_run(pool, { context, index in
                    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(index))
                }, pointer, Int64(count))
            }
        }
    }

    /// Splits `0..<count` into about `threadCount × 4` contiguous chunks whose sizes are
    /// multiples of `granularity`, and runs `body(range)` on each.
    public func parallelChunks(_ count: Int, granularity: Int = 1, _ body: (Range<Int>) -> Void) {
        let units = (count + granularity - 1) / granularity
        let chunks = min(units, threadCount == 1 ? 1 : threadCount * 4)
        guard chunks > 1 else {
            if count > 0 { body(0..<count) }
            return
        }
        parallelFor(chunks) { c in
            let begin = units * c / chunks * granularity
            let end = min(count, units * (c + 1) / chunks * granularity)
            if begin < end { body(begin..<end) }
        }
    }
}
