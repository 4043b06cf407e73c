// ---- persistent thread pool ----
// parallel_for(n, fn) runs fn(begin, end) over [0, n) cut into chunks. Kernels give every
// output element to exactly one chunk and never reduce across chunks, so results are the
// same bits for any thread count. The calling thread works too. A call made while the pool
// is busy (another Python thread is inside a kernel) runs serially on its own thread: the
// kernels stay re-entrant and nothing deadlocks.
#pragma once
#include <cstdint>
#include <functional>

namespace slmk {

int physical_cores();            // physical cores in this process's affinity mask
int get_num_threads();
void set_num_threads(int n);     // n >= 1; throws std::invalid_argument otherwise

// `grain`: the fewest items worth a chunk of their own (amortizes the hand-off).
// `per_thread`: at most this many chunks per thread (more: finer balance when threads run at
// different speeds or start late, at one atomic claim per chunk).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn,
                  int per_thread = 4);

}  // namespace slmk
