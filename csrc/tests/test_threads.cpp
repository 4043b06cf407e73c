// ---- the thread pool: every index visited exactly once, any thread count, re-entrant ----
#include <atomic>
#include <thread>
#include <vector>

#include "check.h"
#include "core/thread_pool.h"

using namespace slmk;
using namespace slmk_test;

int main() {
    for (int threads : {1, 2, 3, 8}) {
        set_num_threads(threads);
        check(get_num_threads() == threads, "set_num_threads");
        for (int64_t n : {0, 1, 7, 64, 1000, 100003}) {
            std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
            for (auto& h : hits) h = 0;
            parallel_for(n, 3, [&](int64_t b, int64_t e) {
                for (int64_t i = b; i < e; ++i) hits[i]++;
            });
            bool ok = true;
            for (auto& h : hits) ok &= (h == 1);
            check(ok, "parallel_for covers each index once: threads=" + std::to_string(threads) + " n=" + std::to_string(n));
        }
        // Many small jobs back to back (the decode pattern): no lost wake-ups.
        std::atomic<int64_t> total{0};
        for (int rep = 0; rep < 2000; ++rep)
            parallel_for(16, 1, [&](int64_t b, int64_t e) { total += e - b; });
        check(total == 2000 * 16, "2000 back-to-back jobs");
        // Two callers at once: one gets the pool, the other runs serially; both complete.
        std::atomic<int64_t> a{0}, b{0};
        std::thread other([&] {
            for (int rep = 0; rep < 200; ++rep) parallel_for(100, 1, [&](int64_t s, int64_t e) { a += e - s; });
        });
        for (int rep = 0; rep < 200; ++rep) parallel_for(100, 1, [&](int64_t s, int64_t e) { b += e - s; });
        other.join();
        check(a == 20000 && b == 20000, "concurrent callers");
        // A kernel that calls parallel_for from inside a chunk does not deadlock.
        std::atomic<int64_t> inner{0};
        parallel_for(4, 1, [&](int64_t s, int64_t e) {
            for (int64_t i = s; i < e; ++i) parallel_for(10, 1, [&](int64_t s2, int64_t e2) { inner += e2 - s2; });
        });
        check(inner == 40, "nested parallel_for");
    }
    bool threw = false;
    try { set_num_threads(0); } catch (const std::exception&) { threw = true; }
    check(threw, "set_num_threads(0) throws");
    return finish("test_threads");
}
