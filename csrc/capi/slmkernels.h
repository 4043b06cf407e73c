/* ---- slmkernels C API ----
 * Plain C (C99 and C++), for native runtimes. Every function returns an slmk_status; on an error
 * slmk_last_error() gives a one-line message (per thread, valid until the next call on that
 * thread) and no output has been written. Arrays are raw pointers with explicit sizes and row
 * strides (in elements); nothing is allocated behind the caller's back except inside the opaque
 * handles, which the matching _destroy frees. Results do not depend on the thread count.
 * Link: find_package(slmkernels) then target_link_libraries(app PRIVATE slmkernels::slmkernels)
 * (python -c "import slmkernels; print(slmkernels.get_cmake_dir())" gives slmkernels_DIR). */
#ifndef SLMKERNELS_H
#define SLMKERNELS_H

#include <stddef.h>
#include <stdint.h>

#define SLMK_VERSION_MAJOR 0
#define SLMK_VERSION_MINOR 1
#define SLMK_VERSION_PATCH 0
#define SLMK_VERSION_STRING "0.1.0"
/* One number that grows with every release: major * 10000 + minor * 100 + patch. */
#define SLMK_VERSION (SLMK_VERSION_MAJOR * 10000 + SLMK_VERSION_MINOR * 100 + SLMK_VERSION_PATCH)

#if defined(__GNUC__)
#define SLMK_API __attribute__((visibility("default")))
#else
#define SLMK_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum slmk_status {
    SLMK_OK = 0,
    SLMK_ERR_ARGUMENT = 1, /* a null pointer, a size or stride out of range, shapes that disagree */
    SLMK_ERR_FORMAT = 2,   /* an unknown format, or a row length that is not a multiple of its block */
    SLMK_ERR_STATE = 3,    /* a KV cache operation on an unknown sequence or unwritten positions */
    SLMK_ERR_CAPACITY = 4, /* the KV cache pool is full */
    SLMK_ERR_MEMORY = 5,   /* allocation failed */
    SLMK_ERR_INTERNAL = 6,
    SLMK_STATUS_MAX_ENUM_ = 0x7FFFFFFF
} slmk_status;

/* GGUF block formats; the values are GGML type ids. Every enum here ends with a *_MAX_ENUM_
   sentinel (and the input ones with a *_MIN_ENUM_ one, so negative ids such as -1 are in range
   too) so its range is all of int32 in C and C++ alike: a caller's out-of-range value then
   reaches the library's own check (SLMK_ERR_FORMAT / SLMK_ERR_ARGUMENT) instead of being an
   invalid enum value in C++ (undefined behaviour; UBSan flagged it). */
typedef enum slmk_format {
    SLMK_F32 = 0, SLMK_F16 = 1, SLMK_Q4_0 = 2, SLMK_Q4_1 = 3, SLMK_Q5_0 = 6, SLMK_Q5_1 = 7,
    SLMK_Q8_0 = 8, SLMK_Q4_K = 12, SLMK_Q5_K = 13, SLMK_Q6_K = 14, SLMK_BF16 = 30,
    SLMK_FORMAT_MIN_ENUM_ = -0x7FFFFFFF - 1, SLMK_FORMAT_MAX_ENUM_ = 0x7FFFFFFF
} slmk_format;

typedef enum slmk_rope_mode {
    SLMK_ROPE_NORMAL = 0, SLMK_ROPE_NEOX = 1,
    SLMK_ROPE_MODE_MIN_ENUM_ = -0x7FFFFFFF - 1, SLMK_ROPE_MODE_MAX_ENUM_ = 0x7FFFFFFF
} slmk_rope_mode;

SLMK_API const char* slmk_version(void);    /* SLMK_VERSION_STRING of the library loaded */
SLMK_API const char* slmk_last_error(void); /* "" after a successful call */
SLMK_API const char* slmk_isa(void);        /* the ISA whose kernels run, e.g. "avx2", "neon_dotprod" */
SLMK_API slmk_status slmk_set_num_threads(int n);

/* Bytes of one row of `cols` elements in `fmt` (0 when cols is not a multiple of its block). */
SLMK_API int64_t slmk_row_bytes(slmk_format fmt, int64_t cols);

/* x (rows, cols) float32, rows `ldx` floats apart -> dst, rows * slmk_row_bytes(fmt, cols) bytes
 * (dst_bytes must be at least that). Same bytes as the gguf package's quantizers. */
SLMK_API slmk_status slmk_quantize(slmk_format fmt, const float* x, int64_t rows, int64_t cols, int64_t ldx,
                                   void* dst, size_t dst_bytes);
SLMK_API slmk_status slmk_dequantize(slmk_format fmt, const void* src, int64_t rows, int64_t cols, float* out,
                                     int64_t ldo);

/* ---- GEMM: weights packed once into an opaque handle ---- */
typedef struct slmk_weights slmk_weights;
/* w (n, k) in GGUF layout, rows `row_stride_bytes` apart; copied (packed), so w may be freed after. */
SLMK_API slmk_status slmk_weights_create(slmk_format fmt, const void* w, int64_t n, int64_t k,
                                         int64_t row_stride_bytes, slmk_weights** out);
SLMK_API void slmk_weights_destroy(slmk_weights* w);
/* out (m, n) = x (m, k) @ w^T; x rows ldx floats apart, out rows ldo floats apart. */
SLMK_API slmk_status slmk_matmul(const slmk_weights* w, const float* x, int64_t m, int64_t k, int64_t ldx, float* out,
                                 int64_t ldo);

/* ---- rotary embedding ---- */
/* x, out (tokens, heads, head_dim) contiguous float32 (out may be x); rotary_dim 0 = head_dim. */
SLMK_API slmk_status slmk_rope(const float* x, float* out, int64_t tokens, int64_t heads, int64_t head_dim,
                               const int64_t* positions, double theta, slmk_rope_mode mode, int rotary_dim);

/* ---- paged KV cache and attention ---- */
typedef struct slmk_kvcache slmk_kvcache;
/* dtype: SLMK_F32, SLMK_F16, SLMK_Q8_0 or SLMK_Q4_0. */
SLMK_API slmk_status slmk_kvcache_create(int n_layers, int n_kv_heads, int head_dim, int64_t capacity_tokens,
                                         int block_tokens, slmk_format dtype, slmk_kvcache** out);
SLMK_API void slmk_kvcache_destroy(slmk_kvcache* c);
SLMK_API slmk_status slmk_kvcache_new_sequence(slmk_kvcache* c, int64_t* seq);
/* Reserves the next n positions of seq in every layer (the only call that allocates blocks). */
SLMK_API slmk_status slmk_kvcache_extend(slmk_kvcache* c, int64_t seq, int64_t n);
/* k, v (n, n_kv_heads, head_dim) contiguous float32 for the layer's n reserved positions. */
SLMK_API slmk_status slmk_kvcache_write(slmk_kvcache* c, int layer, int64_t seq, const float* k, const float* v,
                                        int64_t n);
/* Causal attention of q (q_tokens, n_heads, head_dim) contiguous float32, the newest q_tokens
 * positions of seq, over the layer's cached tokens (GQA: n_heads a multiple of n_kv_heads).
 * scale 0 = 1/sqrt(head_dim). out like q. */
SLMK_API slmk_status slmk_attention(const slmk_kvcache* c, int layer, int64_t seq, const float* q, int64_t q_tokens,
                                    int64_t n_heads, float scale, float* out);

#ifdef __cplusplus
}
#endif
#endif /* SLMKERNELS_H */
