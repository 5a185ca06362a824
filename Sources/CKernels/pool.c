// A persistent worker pool for per-operation parallelism.
//
// A 135M model runs ~200 matrix products per token; creating threads or using
// libdispatch per product costs more than the product. Workers here spin for a short
// while after each operation (the next one usually follows within microseconds) and
// only then sleep on a condition variable.
#define _GNU_SOURCE
#include "CKernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdlib.h>
#if defined(__x86_64__)
#include <immintrin.h>
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
    _Atomic uint64_t generation;      // bumped by every nb_pool_run
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
};

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

static void *worker_main(void *arg) {
    nb_pool *pool = arg;
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
        run_tasks(pool, (uint32_t)seen);
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
    for (int i = 0; i < n_threads - 1; i++) {
        if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0) {
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
    free(pool);
}

int nb_pool_threads(const nb_pool *pool) { return pool->n_threads; }

void nb_pool_run(nb_pool *pool, nb_task_fn task, void *ctx, int64_t n_tasks) {
    if (n_tasks <= 0) return;
    if (pool->n_threads == 1 || n_tasks == 1) {
        for (int64_t i = 0; i < n_tasks; i++) task(ctx, i);
        return;
    }
    uint64_t generation = atomic_load(&pool->generation) + 1;
    // Close the previous operation to late claimers before touching its fields.
    atomic_store(&pool->next, (generation << 32) | 0xffffffffu);
    atomic_store(&pool->task, task);
    atomic_store(&pool->ctx, ctx);
    atomic_store(&pool->n_tasks, n_tasks);
    atomic_store(&pool->done, 0);
    atomic_store(&pool->next, generation << 32);
    atomic_store(&pool->generation, generation);
    if (atomic_load(&pool->sleeping) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
    run_tasks(pool, (uint32_t)generation);
    // Wait for tasks other threads claimed. Yield now and then: on a busy machine the
    // thread we wait for may need this core.
    int spins = 0;
    while (atomic_load_explicit(&pool->done, memory_order_acquire) < n_tasks) {
        if (++spins % 64 == 0) sched_yield();
        else cpu_relax();
    }
}
