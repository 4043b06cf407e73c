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
    void reserve(int64_t n);  // contents are not kept; throws std::bad_alloc
};

}  // namespace slmk
