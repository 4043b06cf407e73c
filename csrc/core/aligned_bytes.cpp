#include "aligned_bytes.h"

#include <cstdlib>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace slmk {

namespace {
// reserve(n, huge = true) of at least kHugeFrom bytes: the buffer starts on a 2 MiB boundary and
// asks Linux for transparent huge pages over every whole 2 MiB inside it (never beyond it).
constexpr int64_t kHuge = 2 << 20;
constexpr int64_t kHugeFrom = 4 << 20;
}  // namespace

AlignedBytes::AlignedBytes(int64_t n) { reserve(n); }
AlignedBytes::~AlignedBytes() { std::free(ptr); }
void AlignedBytes::reserve(int64_t n, bool huge) {
    if (n <= size) return;
    std::free(ptr);
    ptr = nullptr;
    const int64_t rounded = (n + 63) / 64 * 64;
    void* p = nullptr;
    huge = huge && rounded >= kHugeFrom;
    if (posix_memalign(&p, huge ? kHuge : 64, rounded) != 0) p = nullptr;
    ptr = static_cast<uint8_t*>(p);
    if (!ptr) {
        size = 0;
        throw std::bad_alloc();
    }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (huge) madvise(ptr, rounded / kHuge * kHuge, MADV_HUGEPAGE);  // advice only: errors ignored
#endif
    size = rounded;
}

}  // namespace slmk
