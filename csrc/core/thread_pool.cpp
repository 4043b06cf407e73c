// ---- persistent thread pool ----
// Workers spin briefly on a generation counter before sleeping on a condition variable, so
// the back-to-back small calls of a decode step do not pay a futex wake-up each; and the
// caller never waits for a worker that has not started (on a loaded machine it may not run
// for milliseconds): it claims the remaining chunks itself.
#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#define SLMK_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define SLMK_PAUSE() __asm__ volatile("yield")
#else
#define SLMK_PAUSE() ((void)0)
#endif

namespace slmk {

int physical_cores() {
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        std::set<std::pair<std::string, std::string>> cores;
        int logical = 0;
        for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
            if (!CPU_ISSET(cpu, &set)) continue;
            ++logical;
            const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
            std::ifstream core(base + "core_id"), pkg(base + "physical_package_id");
            std::string c, p;
            if (!(core >> c) || !(pkg >> p)) return logical > 0 ? CPU_COUNT(&set) : 1;
            cores.insert({p, c});
        }
        if (!cores.empty()) return static_cast<int>(cores.size());
        if (logical > 0) return logical;
    }
#endif
    unsigned hc = std::thread::hardware_concurrency();
    return hc ? static_cast<int>(hc) : 1;
}

namespace {

class Pool {
  public:
    Pool() : n_threads_(physical_cores()) { start_workers(n_threads_ - 1); }
    ~Pool() { stop_workers(); }

    int num_threads() const { return n_threads_; }

    void set_num_threads(int n) {
        std::lock_guard<std::mutex> busy(busy_);
        if (n == n_threads_) return;
        stop_workers();
        n_threads_ = n;
        start_workers(n - 1);
    }

    void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn, int per_thread) {
        if (n <= 0) return;
        grain = std::max<int64_t>(grain, 1);
        std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
        const int64_t max_chunks = (n + grain - 1) / grain;
        if (!busy.owns_lock() || n_threads_ == 1 || max_chunks == 1) {
            fn(0, n);
            return;
        }
        // A few chunks per thread so a slow thread does not hold the others up.
        const int64_t n_chunks = std::min<int64_t>({max_chunks, (int64_t)n_threads_ * std::max(per_thread, 1),
                                                   static_cast<int64_t>(kMask20)});
        job_ = &fn;
        job_n_ = n;
        done_.store(0, std::memory_order_relaxed);
        job_gen_ = (job_gen_ + 1) & kMask24;
        claim_.store((job_gen_ << 40) | (static_cast<uint64_t>(n_chunks) << 20), std::memory_order_release);
        {
            std::lock_guard<std::mutex> lk(wake_mu_);
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_cv_.notify_all();
        work();
        // Wait only for chunks in flight: a worker that wakes late finds nothing left to claim
        // (and cannot claim a chunk of a later job: claims carry the job's generation).
        for (int spins = 0; done_.load(std::memory_order_acquire) != n_chunks; ++spins) {
            if (spins < 100000) SLMK_PAUSE();
            else std::this_thread::yield();
        }
    }

  private:
    static constexpr uint64_t kMask20 = (1u << 20) - 1, kMask24 = (1u << 24) - 1;

    // claim_ = generation (24 bits) | chunks (20) | next chunk (20). A chunk is claimed by CAS,
    // so the job's fields are read only by a thread holding an unfinished chunk of that job,
    // while its caller is still waiting for it.
    void work() {
        for (;;) {
            uint64_t cur = claim_.load(std::memory_order_acquire);
            const uint64_t next = cur & kMask20, chunks = (cur >> 20) & kMask20;
            if (next >= chunks) return;
            if (!claim_.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel)) continue;
            const int64_t n = job_n_;
            const int64_t begin = n * static_cast<int64_t>(next) / static_cast<int64_t>(chunks);
            const int64_t end = n * static_cast<int64_t>(next + 1) / static_cast<int64_t>(chunks);
            (*job_)(begin, end);
            done_.fetch_add(1, std::memory_order_release);
        }
    }

    // `seen`: the generation current when the worker was created (read before the thread
    // starts, so a job published before the thread runs is not missed).
    void worker_loop(uint64_t seen) {
        for (;;) {
            // Spin for ~50-100 us before sleeping.
            int spins = 0;
            while (generation_.load(std::memory_order_acquire) == seen && spins < 20000) {
                SLMK_PAUSE();
                ++spins;
            }
            if (generation_.load(std::memory_order_acquire) == seen) {
                std::unique_lock<std::mutex> lk(wake_mu_);
                wake_cv_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen; });
            }
            seen = generation_.load(std::memory_order_acquire);
            if (stopping_.load(std::memory_order_acquire)) return;
            work();
        }
    }

    void start_workers(int n) {
        stopping_.store(false);
        const uint64_t gen = generation_.load();
        for (int i = 0; i < n; ++i) workers_.emplace_back([this, gen] { worker_loop(gen); });
    }

    void stop_workers() {
        {
            std::lock_guard<std::mutex> lk(wake_mu_);
            stopping_.store(true, std::memory_order_release);
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_cv_.notify_all();
        for (auto& t : workers_) t.join();
        workers_.clear();
    }

    int n_threads_;
    std::vector<std::thread> workers_;
    std::mutex busy_;  // held by the one caller whose job the pool runs
    std::mutex wake_mu_;
    std::condition_variable wake_cv_;
    std::atomic<uint64_t> generation_{0};
    std::atomic<bool> stopping_{false};
    const std::function<void(int64_t, int64_t)>* job_ = nullptr;
    int64_t job_n_ = 0;
    uint64_t job_gen_ = 0;
    std::atomic<uint64_t> claim_{0};
    std::atomic<int64_t> done_{0};
};

Pool& pool() {
    static Pool p;
    return p;
}

}  // namespace

int get_num_threads() { return pool().num_threads(); }

void set_num_threads(int n) {
    if (n < 1 || n > 1024) throw std::invalid_argument("num_threads must be in 1..1024, got " + std::to_string(n));
    pool().set_num_threads(n);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn, int per_thread) {
    pool().run(n, grain, fn, per_thread);
}

}  // namespace slmk
