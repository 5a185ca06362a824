import CKernels

/// The process's persistent worker threads, shared by every operation.
///
/// `parallelFor` hands out task indices dynamically; the calling thread works too.
/// No threads are created per operation (see CKernels/pool.c).
public final class WorkerPool: @unchecked Sendable {
    /// The C pool, for kernels that split their own work (nb_pack_nf4, nb_matmul_fused,
    /// nb_attention_run).
    public let pool: OpaquePointer
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

    /// Runs `body(range)` on disjoint ranges covering `0..<count` whose bounds are multiples
    /// of `granularity` (but the last) and which hold at most `piece` of them (one range on
    /// one thread): each thread
    /// works through a contiguous part of its own, then helps with what the others have left
    /// (nb_pool_run_ranges).
    public func parallelChunks(_ count: Int, granularity: Int = 1, piece: Int = .max, _ body: (Range<Int>) -> Void) {
        let units = (count + granularity - 1) / granularity
        guard units > 1 && threadCount > 1 else {
            if count > 0 { body(0..<count) }
            return
        }
        withoutActuallyEscaping(body) { body in
            var task = body
            withUnsafeMutablePointer(to: &task) { pointer in
                var context = (pointer, count, granularity)
                withUnsafeMutablePointer(to: &context) { context in
                    nb_pool_run_ranges(pool, { context, begin, end in
                        let (body, count, granularity) = context!.assumingMemoryBound(
                            to: (UnsafeMutablePointer<(Range<Int>) -> Void>, Int, Int).self).pointee
                        body.pointee(Int(begin) * granularity..<min(count, Int(end) * granularity))
                    }, context, Int64(units), Int64(max(1, min(piece, units))))
                }
            }
        }
    }
}
