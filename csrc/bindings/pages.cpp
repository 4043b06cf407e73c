// ---- releasing the resident pages of file-backed weights ----
// After weights are packed, the GGUF bytes they came from are not read again (except embedding
// rows, which fault back in one page at a time). Dropping their pages keeps a model's resident
// memory at the packed copy instead of packed + file. Only pages that the kernel can re-read from
// the file are dropped: MADV_DONTNEED on anonymous or private-written memory would zero it.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "bindings.h"

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace slmk {

std::vector<PageRange> file_page_ranges(const void* p, int64_t n) {
    std::vector<PageRange> out;
#if defined(__linux__)
    if (n <= 0) return out;
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t lo = reinterpret_cast<uintptr_t>(p), hi = lo + static_cast<uintptr_t>(n);
    std::FILE* f = std::fopen("/proc/self/maps", "r");
    if (!f) return out;
    char line[4096];
    while (std::fgets(line, sizeof line, f)) {
        // start-end perms offset dev inode [path]
        unsigned long start, end, offset, inode;
        char perms[8], dev[32];
        if (std::sscanf(line, "%lx-%lx %7s %lx %31s %lu", &start, &end, perms, &offset, dev, &inode) != 6) continue;
        if (end <= lo || start >= hi || inode == 0) continue;  // outside, or anonymous
        const bool writable = perms[1] == 'w', shared = perms[3] == 's';
        if (writable && !shared) continue;  // private and writable: may hold changes of its own
        const uintptr_t a = (std::max<uintptr_t>(start, lo) + page - 1) / page * page;
        const uintptr_t b = std::min<uintptr_t>(end, hi) / page * page;
        if (b > a) out.push_back({a, b});
    }
    std::fclose(f);
#else
    (void)p;
    (void)n;
#endif
    return out;
}

int64_t release_file_pages(const void* p, int64_t n) {
    int64_t released = 0;
#if defined(__linux__)
    for (const PageRange& r : file_page_ranges(p, n))
        if (madvise(reinterpret_cast<void*>(r.first), r.second - r.first, MADV_DONTNEED) == 0)
            released += static_cast<int64_t>(r.second - r.first);
#endif
    return released;
}

}  // namespace slmk
