/*
 * The thread pool's wasm side. Built with -matomics (wasm/xception-mt.wasm): every worker is an
 * instance of the same module on the same shared memory, with its own stack (set_stack_pointer),
 * parked in worker_loop. The main thread posts a job (function, context, thread count), bumps a
 * generation counter, does share 0 itself and waits until every started worker has acknowledged.
 * All started workers acknowledge every job (those past job_n do no work) so no worker can read a
 * later job's fields while an earlier one is pending. Until every started worker has entered its
 * loop, jobs run on the calling thread alone. Without -matomics (wasm/xception.wasm) jobs always
 * run serially.
 */
#include "kernels.h"

static float *thread_work[MAX_THREADS];

/* GEMM packing space of thread `tid` (TypeScript allocates one per worker). */
void EXPORT(set_thread_work)(int tid, float *work) {
  if (tid > 0 && tid < MAX_THREADS) thread_work[tid] = work;
}

float *gemm_work_of(int tid, float *own) { return tid == 0 ? own : thread_work[tid]; }

void split_range(int count, int tid, int n, int align, int *begin, int *end) {
  int per = (count + n - 1) / n;
  per = (per + align - 1) / align * align;
  *begin = min_int(count, tid * per);
  *end = min_int(count, *begin + per);
}

#ifdef __wasm_atomics__
#define SEQ __ATOMIC_SEQ_CST
#define SPINS 20000

static int generation, stopping, pending, busy, started, ready, failed, wanted = 1;
static double min_work = PARALLEL_MIN_WORK;
static task_fn job_fn;
static void *job_ctx;
static int job_n;

void EXPORT(set_stack_pointer)(void *top) {
  __asm__ volatile(".globaltype __stack_pointer, i32\n\tlocal.get %0\n\tglobal.set __stack_pointer" ::"r"(top));
}

/* Threads jobs may use (the caller included); `workers` are the workers started so far. */
void EXPORT(set_threads)(int threads, int workers) {
  wanted = max_int(1, min_int(threads, MAX_THREADS));
  __atomic_store_n(&started, workers, SEQ);
}

/* Jobs smaller than this run on the caller alone (tests set 0 to split even tiny kernels). */
void EXPORT(set_parallel_min_work)(double work) { min_work = work; }

int EXPORT(ready_workers)(void) { return __atomic_load_n(&ready, SEQ); }

static int wait_for_change(int *at, int old) {
  int now;
  for (int spin = 0; (now = __atomic_load_n(at, SEQ)) == old; spin++)
    if (spin >= SPINS) __builtin_wasm_memory_atomic_wait32(at, old, -1);
  return now;
}

/* A worker's whole life: returns only after stop_workers. */
void EXPORT(worker_loop)(int tid) {
  int seen = __atomic_load_n(&generation, SEQ);
  __atomic_add_fetch(&ready, 1, SEQ);
  for (;;) {
    seen = wait_for_change(&generation, seen);
    if (__atomic_load_n(&stopping, SEQ)) break;
    if (tid < job_n) job_fn(job_ctx, tid, job_n);
    if (__atomic_sub_fetch(&pending, 1, SEQ) == 0) __builtin_wasm_memory_atomic_notify(&pending, 1);
  }
  __atomic_sub_fetch(&ready, 1, SEQ);
}

/* Called (by the worker's JavaScript) when a job trapped in worker_loop: acknowledges the job so
 * the caller does not wait forever, and marks the pool failed: that job's caller traps (its result
 * lacks the worker's share) and jobs run serially from now on. */
void EXPORT(worker_failed)(void) {
  __atomic_store_n(&failed, 1, SEQ);
  __atomic_sub_fetch(&ready, 1, SEQ);
  if (__atomic_sub_fetch(&pending, 1, SEQ) == 0) __builtin_wasm_memory_atomic_notify(&pending, 1);
}

/* Wakes every worker to return from worker_loop; jobs run serially from now on. */
void EXPORT(stop_workers)(void) {
  __atomic_store_n(&stopping, 1, SEQ);
  __atomic_store_n(&started, 0, SEQ);
  __atomic_add_fetch(&generation, 1, SEQ);
  __builtin_wasm_memory_atomic_notify(&generation, -1);
}

void parallel_run(task_fn fn, void *ctx, double work) {
  int workers = __atomic_load_n(&started, SEQ);
  int n = min_int(wanted, workers + 1);
  if (n <= 1 || work < min_work || __atomic_load_n(&busy, SEQ) || __atomic_load_n(&ready, SEQ) != workers ||
      __atomic_load_n(&failed, SEQ)) {
    fn(ctx, 0, 1);
    return;
  }
  __atomic_store_n(&busy, 1, SEQ);
  job_fn = fn, job_ctx = ctx, job_n = n;
  __atomic_store_n(&pending, workers, SEQ);
  __atomic_add_fetch(&generation, 1, SEQ);
  __builtin_wasm_memory_atomic_notify(&generation, -1);
  fn(ctx, 0, n);
  for (int left = __atomic_load_n(&pending, SEQ); left != 0; left = __atomic_load_n(&pending, SEQ)) wait_for_change(&pending, left);
  __atomic_store_n(&busy, 0, SEQ);
  if (__atomic_load_n(&failed, SEQ)) __builtin_trap(); /* a worker's share is missing: never a silent wrong result */
}
#else
void parallel_run(task_fn fn, void *ctx, double work) {
  (void)work;
  fn(ctx, 0, 1);
}
#endif
