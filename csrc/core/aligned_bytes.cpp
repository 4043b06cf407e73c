#include "aligned_bytes.h"

#include <cstdlib>
#include <new>

namespace slmk {

AlignedBytes::AlignedBytes(int64_t n) { reserve(n); }
AlignedBytes::~AlignedBytes() { std::free(ptr); }
void AlignedBytes::reserve(int64_t n) {
    if (n <= size) return;
    std::free(ptr);
    const int64_t rounded = (n + 63) / 64 * 64;
    ptr = static_cast<uint8_t*>(std::aligned_alloc(64, rounded));
    if (!ptr) {
        size = 0;
        throw std::bad_alloc();
    }
    size = rounded;
}

}  // namespace slmk
