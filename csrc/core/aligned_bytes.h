// ---- a 64-byte aligned, grow-only byte buffer (kernel scratch, packed weights, the KV pool) ----
#pragma once
#include <cstdint>

namespace slmk {

struct AlignedBytes {
    uint8_t* ptr = nullptr;
    int64_t size = 0;
    AlignedBytes() = default;
    explicit AlignedBytes(int64_t n);
    ~AlignedBytes();
    AlignedBytes(const AlignedBytes&) = delete;
    AlignedBytes& operator=(const AlignedBytes&) = delete;
    // Contents are not kept; throws std::bad_alloc. huge: a large buffer read as long streams
    // (packed weights) gets transparent huge pages where Linux offers them: the GEMV's weight
    // streams then cross no 4 KiB page boundary (a TLB miss each) every 4 KiB.
    void reserve(int64_t n, bool huge = false);
};

}  // namespace slmk
