// A persistent worker pool for per-operation parallelism.
//
// A 135M model runs ~200 matrix products per token; creating threads or using
// libdispatch per product costs more than the product. Workers here spin for a short
// while after each operation (the next one usually follows within microseconds) and
// only then sleep on a condition variable.
#define _GNU_SOURCE
#include "CKernels.h"
#include "budget.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__)
#include "x86_simd.h"
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

// About a millisecond of spinning before a worker goes to sleep.
#define NB_SPIN_ITERATIONS 20000

struct nb_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    _Atomic uint64_t generation;      // bumped by every nb_pool_run and nb_pool_run_ranges
    _Atomic int sleeping;             // workers waiting on `wake`
    _Atomic int stop;
    // The current operation, written by the caller before the generation is bumped.
    _Atomic(nb_task_fn) task;
    _Atomic(void *) ctx;
    _Atomic int64_t n_tasks;
    // High 32 bits: the generation the tasks belong to; low 32 bits: the next index.
    // A worker that wakes late claims with a compare-exchange that fails once the
    // caller has moved on, so it can never run a stale task, and the caller never
    // waits for idle workers, only for claimed tasks to finish.
    _Atomic uint64_t next;
    _Atomic int64_t done;
    // nb_pool_run_ranges: the range function (NULL for an nb_pool_run operation) and one
    // part per thread, each a word of the generation, the part's front and its back. The
    // owner claims from the front, thieves from the back, by compare-exchange: a worker
    // that wakes late fails on the generation, as with `next`.
    _Atomic(nb_range_fn) range_fn;
    _Atomic int64_t range_units, range_scale;  // [0, units) in parts of `range_scale` units
    _Atomic int64_t range_piece;               // the most a claim takes, in parts (a thief's: half what is left)
    struct nb_part { _Atomic uint64_t word; char pad[56]; } *parts;
};

struct nb_worker { nb_pool *pool; int id; };

// A part's word: the generation (32 bits, as `next`), then front and back (16 bits each),
// counted in parts of `range_scale` units so that any number of units fits.
#define NB_UNIT_BITS 16
#define NB_UNIT_MASK ((1ull << NB_UNIT_BITS) - 1)
static inline uint64_t part_word(uint32_t gen, uint64_t front, uint64_t back) {
    return ((uint64_t)gen << (2 * NB_UNIT_BITS)) | (front << NB_UNIT_BITS) | back;
}
static inline uint32_t part_gen(uint64_t w) { return (uint32_t)(w >> (2 * NB_UNIT_BITS)); }
static inline uint64_t part_front(uint64_t w) { return (w >> NB_UNIT_BITS) & NB_UNIT_MASK; }
static inline uint64_t part_back(uint64_t w) { return w & NB_UNIT_MASK; }

static void run_tasks(nb_pool *pool, uint32_t generation) {
    nb_task_fn task = atomic_load(&pool->task);
    void *ctx = atomic_load(&pool->ctx);
    int64_t n = atomic_load(&pool->n_tasks);
    uint64_t v = atomic_load(&pool->next);
    for (;;) {
        if ((uint32_t)(v >> 32) != generation || (int64_t)(v & 0xffffffffu) >= n) return;
        if (!atomic_compare_exchange_weak(&pool->next, &v, v + 1)) continue;  // v reloaded
        task(ctx, (int64_t)(v & 0xffffffffu));
        atomic_fetch_add_explicit(&pool->done, 1, memory_order_release);
        v = atomic_load(&pool->next);
    }
}

// Each thread works through a contiguous part of its own from the front, in pieces of at
// most `piece` units, so that the hardware prefetchers and the kernels' own prefetching see
// long runs; a thread that is done takes pieces (at most half of what is left) from the back
// of the part with the most left. Measured on SmolLM2 decode, 2 threads on Zen 5 (see
// WeightMatrix.multiply for the piece size): 8 equal chunks claimed in turn (what this
// replaced) made q4 and q8 5-6 % slower; no pieces (one per thread) made f32 6-8 % slower;
// pieces of half of what is left, down to 16 rows, made q4 3 % slower (every piece starts
// its stream cold). On Zen 3, 1 MiB pieces against 256 KiB: q4 2 %, q8 3 % faster.
static void run_piece(nb_pool *pool, nb_range_fn fn, void *ctx, uint64_t begin, uint64_t end, int64_t scale,
                      int64_t units) {
    const int64_t b = (int64_t)begin * scale, e = (int64_t)end * scale < units ? (int64_t)end * scale : units;
    fn(ctx, b, e);
    atomic_fetch_add_explicit(&pool->done, e - b, memory_order_release);
}

static void run_ranges(nb_pool *pool, int self, uint32_t generation) {
    const nb_range_fn fn = atomic_load(&pool->range_fn);
    void *ctx = atomic_load(&pool->ctx);
    const uint32_t gen = generation;
    const int64_t units = atomic_load(&pool->range_units), scale = atomic_load(&pool->range_scale);
    const uint64_t piece = (uint64_t)atomic_load(&pool->range_piece);
    const int n = pool->n_threads;
    _Atomic uint64_t *own = &pool->parts[self].word;
    for (uint64_t w = atomic_load(own); part_gen(w) == gen && part_front(w) < part_back(w);) {
        const uint64_t f = part_front(w), b = part_back(w), end = b - f > piece ? f + piece : b;
        if (!atomic_compare_exchange_weak(own, &w, part_word(gen, end, b))) continue;
        run_piece(pool, fn, ctx, f, end, scale, units);
        w = atomic_load(own);
    }
    for (;;) {
        // the part with the most left
        int victim = -1;
        uint64_t most = 0, w = 0;
        for (int i = 1; i < n; i++) {
            const int v = (self + i) % n;
            const uint64_t x = atomic_load(&pool->parts[v].word);
            if (part_gen(x) == gen && part_back(x) > part_front(x) && part_back(x) - part_front(x) > most) {
                most = part_back(x) - part_front(x);
                victim = v;
                w = x;
            }
        }
        if (victim < 0) return;
        const uint64_t f = part_front(w), b = part_back(w), half = (b - f + 1) / 2,
                       take = half < piece ? half : piece;
        if (!atomic_compare_exchange_strong(&pool->parts[victim].word, &w, part_word(gen, f, b - take))) continue;
        run_piece(pool, fn, ctx, b - take, b, scale, units);
    }
}

static void *worker_main(void *arg) {
    struct nb_worker *me = arg;
    nb_pool *pool = me->pool;
    const int id = me->id;
    free(me);
    uint64_t seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load(&pool->generation) == seen) {
            if (atomic_load_explicit(&pool->stop, memory_order_relaxed)) return NULL;
            if (++spins < NB_SPIN_ITERATIONS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&pool->mutex);
            atomic_fetch_add(&pool->sleeping, 1);
            // Checked again under the lock after announcing sleep: the caller bumps the
            // generation and then reads `sleeping` (both sequentially consistent), so
            // either it sees us asleep and signals, or we see its new generation here.
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop)) {
                pthread_cond_wait(&pool->wake, &pool->mutex);
            }
            atomic_fetch_sub(&pool->sleeping, 1);
            pthread_mutex_unlock(&pool->mutex);
            spins = 0;
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = atomic_load(&pool->generation);
        if (atomic_load(&pool->range_fn)) run_ranges(pool, id, (uint32_t)seen);
        else run_tasks(pool, (uint32_t)seen);
    }
}

nb_pool *nb_pool_create(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    nb_pool *pool = calloc(1, sizeof(nb_pool));
    if (!pool) return NULL;
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->threads = calloc((size_t)n_threads, sizeof(pthread_t));
    pool->parts = aligned_alloc(64, sizeof(struct nb_part) * (size_t)n_threads);
    if (!pool->threads || !pool->parts) {
        free(pool->threads);
        free(pool->parts);
        free(pool);
        return NULL;
    }
    for (int i = 0; i < n_threads; i++) atomic_init(&pool->parts[i].word, 0);
    for (int i = 0; i < n_threads - 1; i++) {
        struct nb_worker *me = malloc(sizeof *me);
        if (me) *me = (struct nb_worker){pool, i + 1};
        if (!me || pthread_create(&pool->threads[i], NULL, worker_main, me) != 0) {
            free(me);
            pool->n_threads = i + 1;  // run with the workers we could start
            break;
        }
    }
    return pool;
}

void nb_pool_destroy(nb_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 0; i < pool->n_threads - 1; i++) pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
    free(pool->threads);
    free(pool->parts);
    free(pool);
}

int nb_pool_threads(const nb_pool *pool) { return pool->n_threads; }

// Wakes the workers on the operation whose fields the caller has set.
static void start(nb_pool *pool, uint64_t generation) {
    atomic_store(&pool->generation, generation);
    if (atomic_load(&pool->sleeping) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
}

// Waits for the work other threads claimed. Yields now and then: on a busy machine the
// thread we wait for may need this core.
static void finish(nb_pool *pool, int64_t total) {
    int spins = 0;
    while (atomic_load_explicit(&pool->done, memory_order_acquire) < total) {
        if (++spins % 64 == 0) sched_yield();
        else cpu_relax();
    }
}

void nb_pool_run_ranges(nb_pool *pool, nb_range_fn fn, void *ctx, int64_t units, int64_t piece) {
    if (units <= 0) return;
    const int n = pool->n_threads;
    if (n == 1 || units == 1) {
        fn(ctx, 0, units);
        return;
    }
    const int64_t scale = (units + (int64_t)NB_UNIT_MASK - 1) / (int64_t)NB_UNIT_MASK, pieces = (units + scale - 1) / scale;
    uint64_t generation = atomic_load(&pool->generation) + 1;
    // Close the previous operation to late claimers before touching its fields.
    atomic_store(&pool->next, (generation << 32) | 0xffffffffu);
    for (int i = 0; i < n; i++) atomic_store(&pool->parts[i].word, part_word((uint32_t)generation, 0, 0));
    atomic_store(&pool->range_fn, fn);
    atomic_store(&pool->range_units, units);
    atomic_store(&pool->range_scale, scale);
    atomic_store(&pool->range_piece, piece < scale ? 1 : piece / scale);
    atomic_store(&pool->ctx, ctx);
    atomic_store(&pool->done, 0);
    for (int i = 0; i < n; i++)
        atomic_store(&pool->parts[i].word, part_word((uint32_t)generation, (uint64_t)(pieces * i / n),
                                                     (uint64_t)(pieces * (i + 1) / n)));
    start(pool, generation);
    run_ranges(pool, 0, (uint32_t)generation);
    finish(pool, units);
}

void nb_pool_run(nb_pool *pool, nb_task_fn task, void *ctx, int64_t n_tasks) {
    if (n_tasks <= 0) return;
    if (pool->n_threads == 1 || n_tasks == 1) {
        for (int64_t i = 0; i < n_tasks; i++) task(ctx, i);
        return;
    }
    uint64_t generation = atomic_load(&pool->generation) + 1;
    // Close the previous operation to late claimers before touching its fields.
    atomic_store(&pool->next, (generation << 32) | 0xffffffffu);
    atomic_store(&pool->range_fn, NULL);
    atomic_store(&pool->task, task);
    atomic_store(&pool->ctx, ctx);
    atomic_store(&pool->n_tasks, n_tasks);
    atomic_store(&pool->done, 0);
    atomic_store(&pool->next, generation << 32);
    start(pool, generation);
    run_tasks(pool, (uint32_t)generation);
    finish(pool, n_tasks);
}

// ---- decode's time budget ------------------------------------------------------------------

static _Atomic int budget_on;
static _Atomic uint64_t budget_ns[2], budget_calls[2];  // [0] products, [1] attention

void nb_time_budget_enable(int on) {
    atomic_store(&budget_on, 0);
    for (int i = 0; i < 2; i++) {
        atomic_store(&budget_ns[i], 0);
        atomic_store(&budget_calls[i], 0);
    }
    atomic_store(&budget_on, on != 0);
}

nb_time_budget nb_time_budget_read(void) {
    return (nb_time_budget){atomic_load(&budget_ns[0]), atomic_load(&budget_ns[1]), atomic_load(&budget_calls[0]),
                            atomic_load(&budget_calls[1])};
}

static uint64_t monotonic_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

uint64_t nb_budget_start(void) { return atomic_load_explicit(&budget_on, memory_order_relaxed) ? monotonic_ns() : 0; }

void nb_budget_add(uint64_t start, int attention) {
    if (!start) return;
    atomic_fetch_add_explicit(&budget_ns[attention != 0], monotonic_ns() - start, memory_order_relaxed);
    atomic_fetch_add_explicit(&budget_calls[attention != 0], 1, memory_order_relaxed);
}

// ---- fused products ---------------------------------------------------------------------

typedef struct {
    const nb_product *products;
    int count;
    const float *x;
    int64_t k, n_tokens, granularity, total;
} fused_job;

static void fused_range(void *ctx, int64_t begin, int64_t end) {
    const fused_job *job = ctx;
    const int64_t lo = begin * job->granularity, hi = end * job->granularity < job->total ? end * job->granularity : job->total;
    for (int i = 0; i < job->count; i++) {
        const nb_product *p = &job->products[i];
        const int64_t b = (lo > p->base ? lo : p->base) - p->base, e = (hi < p->base + p->rows ? hi : p->base + p->rows) - p->base;
        if (b >= e) continue;
        if (p->interleaved) nb_matmul_interleaved(p->fmt, p->w, p->rows, job->k, p->xq, p->y, job->n_tokens, p->rows, b, e);
        else nb_matmul(p->fmt, p->w, p->rows, job->k, job->x, p->xq, p->y, job->n_tokens, p->rows, b, e);
    }
}

void nb_matmul_fused(nb_pool *pool, const nb_product *products, int count, const float *x, int64_t k, int64_t n_tokens,
                     int64_t granularity, int64_t piece) {
    int64_t total = 0;
    for (int i = 0; i < count; i++) total += products[i].rows;
    if (total <= 0 || granularity < 1) return;
    fused_job job = {products, count, x, k, n_tokens, granularity, total};
    const uint64_t start = nb_budget_start();
    nb_pool_run_ranges(pool, fused_range, &job, (total + granularity - 1) / granularity, piece < 1 ? 1 : piece);
    nb_budget_add(start, 0);
}
