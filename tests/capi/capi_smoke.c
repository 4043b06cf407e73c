/* The C API end to end, against the installed package: quantize, matmul, rope and attention,
 * each checked against a plain C reference; error codes and messages. Prints "capi ok". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slmkernels.h"

#define CHECK(call)                                                                 \
    do {                                                                            \
        slmk_status s_ = (call);                                                    \
        if (s_ != SLMK_OK) {                                                        \
            fprintf(stderr, "%s:%d %s -> %d: %s\n", __FILE__, __LINE__, #call, s_, \
                    slmk_last_error());                                             \
            return 1;                                                               \
        }                                                                           \
    } while (0)
#define EXPECT(cond)                                                     \
    do {                                                                 \
        if (!(cond)) {                                                   \
            fprintf(stderr, "%s:%d failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                    \
        }                                                                \
    } while (0)

static float frand(unsigned* s) { /* uniform in [-1, 1) */
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

enum { N = 24, K = 64, M = 3, T = 4, H = 4, G = 2, D = 32 };

int main(void) {
    unsigned seed = 14;
    EXPECT(strcmp(slmk_version(), SLMK_VERSION_STRING) == 0);
    EXPECT(SLMK_VERSION == 100);
    CHECK(slmk_set_num_threads(2));

    /* ---- quantize / dequantize / matmul ---- */
    static float w[N * K], x[M * K], wd[N * K], out[M * N];
    for (int i = 0; i < N * K; ++i) w[i] = frand(&seed);
    for (int i = 0; i < M * K; ++i) x[i] = frand(&seed);
    const int64_t rb = slmk_row_bytes(SLMK_Q8_0, K);
    EXPECT(rb == 2 * 34);
    unsigned char* q = malloc((size_t)(N * rb));
    CHECK(slmk_quantize(SLMK_Q8_0, w, N, K, K, q, (size_t)(N * rb)));
    CHECK(slmk_dequantize(SLMK_Q8_0, q, N, K, wd, K));
    for (int i = 0; i < N * K; ++i) EXPECT(fabsf(wd[i] - w[i]) <= 1.0f / 127.0f + 1e-6f); /* |w| < 1: scale <= 1/127 */
    slmk_weights* pw = NULL;
    CHECK(slmk_weights_create(SLMK_Q8_0, q, N, K, rb, &pw));
    free(q); /* packed: the GGUF bytes are no longer needed */
    CHECK(slmk_matmul(pw, x, M, K, K, out, N));
    for (int m = 0; m < M; ++m)
        for (int n = 0; n < N; ++n) {
            double ref = 0, mag = 0;
            for (int k = 0; k < K; ++k) {
                ref += (double)x[m * K + k] * wd[n * K + k];
                mag += fabs((double)x[m * K + k] * wd[n * K + k]);
            }
            /* activations are quantized to int8 per block of 32: error below 1/127 of the magnitude */
            EXPECT(fabs(out[m * N + n] - ref) <= mag / 127.0 + 1e-5);
        }
    slmk_weights_destroy(pw);

    /* ---- rope (normal mode: pairs (2i, 2i+1)) ---- */
    static float r_in[T * H * D], r_out[T * H * D];
    int64_t pos[T] = {0, 1, 7, 100};
    for (int i = 0; i < T * H * D; ++i) r_in[i] = frand(&seed);
    CHECK(slmk_rope(r_in, r_out, T, H, D, pos, 10000.0, SLMK_ROPE_NORMAL, 0));
    for (int t = 0; t < T; ++t)
        for (int h = 0; h < H; ++h)
            for (int i = 0; i < D / 2; ++i) {
                const double a = pos[t] * pow(10000.0, -2.0 * i / D);
                const float* v = r_in + (t * H + h) * D + 2 * i;
                const float* o = r_out + (t * H + h) * D + 2 * i;
                EXPECT(fabs(o[0] - (v[0] * cos(a) - v[1] * sin(a))) < 1e-4);
                EXPECT(fabs(o[1] - (v[0] * sin(a) + v[1] * cos(a))) < 1e-4);
            }

    /* ---- KV cache + attention (f32 cache, GQA 4 query heads over 2 KV heads, causal) ---- */
    static float kk[T * G * D], vv[T * G * D], qq[T * H * D], ao[T * H * D];
    for (int i = 0; i < T * G * D; ++i) kk[i] = frand(&seed), vv[i] = frand(&seed);
    for (int i = 0; i < T * H * D; ++i) qq[i] = frand(&seed);
    slmk_kvcache* c = NULL;
    int64_t seq;
    CHECK(slmk_kvcache_create(1, G, D, 64, 16, SLMK_F32, &c));
    CHECK(slmk_kvcache_new_sequence(c, &seq));
    CHECK(slmk_kvcache_extend(c, seq, T));
    CHECK(slmk_kvcache_write(c, 0, seq, kk, vv, T));
    CHECK(slmk_attention(c, 0, seq, qq, T, H, 0.0f, ao));
    for (int t = 0; t < T; ++t)
        for (int h = 0; h < H; ++h) {
            const int g = h / (H / G);
            double s[T], mx = -1e30, l = 0;
            for (int j = 0; j <= t; ++j) {
                s[j] = 0;
                for (int d = 0; d < D; ++d) s[j] += (double)qq[(t * H + h) * D + d] * kk[(j * G + g) * D + d];
                s[j] /= sqrt((double)D);
                if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j <= t; ++j) l += exp(s[j] - mx);
            for (int d = 0; d < D; ++d) {
                double acc = 0;
                for (int j = 0; j <= t; ++j) acc += exp(s[j] - mx) / l * vv[(j * G + g) * D + d];
                EXPECT(fabs(ao[(t * H + h) * D + d] - acc) < 1e-4);
            }
        }

    /* ---- errors: a status, a message, nothing written ---- */
    float keep = 5.0f;
    EXPECT(slmk_quantize(SLMK_Q8_0, w, 1, 33, 33, &keep, sizeof keep) == SLMK_ERR_FORMAT);
    EXPECT(strstr(slmk_last_error(), "block size 32") != NULL);
    EXPECT(keep == 5.0f);
    EXPECT(slmk_attention(c, 0, seq + 99, qq, 1, H, 0.0f, ao) == SLMK_ERR_STATE);
    EXPECT(slmk_attention(c, 0, seq, qq, 1, 3, 0.0f, ao) == SLMK_ERR_ARGUMENT);
    EXPECT(slmk_kvcache_extend(c, seq, 1000) == SLMK_ERR_CAPACITY);
    EXPECT(slmk_weights_create((slmk_format)99, w, 1, 32, 128, &pw) == SLMK_ERR_FORMAT && pw == NULL);
    EXPECT(slmk_row_bytes((slmk_format)-1, 32) == 0);
    EXPECT(slmk_rope(r_in, r_out, T, H, D, pos, 10000.0, (slmk_rope_mode)-7, 0) == SLMK_ERR_ARGUMENT);
    CHECK(slmk_set_num_threads(1));
    EXPECT(strlen(slmk_last_error()) == 0);
    slmk_kvcache_destroy(c);
    printf("capi ok (isa %s)\n", slmk_isa());
    return 0;
}
