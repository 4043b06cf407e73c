// ---- attention chunk kernels: AVX-512 VNNI (the Q8_0 cache's scores by vpdpbusd) ----
// The AVX-512 traits with the Q8_0 integer dot replaced; the other formats' entries are the
// AVX-512 rung's (the rung inherits them).
#include "attention/attention_avx512.h"

namespace slmk {

namespace {

struct Avx512Vnni : attn_avx512::Avx512 {
    // vpdpbusd multiplies unsigned by signed bytes: k + 128 (k xor 0x80) by q, started from
    // aux = -128 * (the lane's query bytes summed), which leaves exactly sum k * q per lane.
    struct Q8Key {
        __m512i u;
    };
    static Q8Key q8_key(const uint8_t* blk, int nblk) {
        return {_mm512_xor_si512(q8_group(blk, nblk), _mm512_set1_epi8(static_cast<char>(0x80)))};
    }
    static void q8_query(const int8_t* q, const float* qd, int nblk, float* qdl, int32_t* aux) {
        _mm512_storeu_ps(qdl, q8_scales(qd, 1, nblk));
        const __m512i sum128 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(static_cast<char>(0x80)),
                                                   _mm512_loadu_si512(q));
        _mm512_storeu_si512(aux, _mm512_sub_epi32(_mm512_setzero_si512(), sum128));
    }
    static vec q8_dot(const Q8Key& k, const int8_t* q, const int32_t* aux, vec dkq, vec s) {
        const __m512i p = _mm512_dpbusd_epi32(_mm512_loadu_si512(aux), k.u, _mm512_loadu_si512(q));
        return _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), dkq, s);
    }
};

constexpr std::array<KernelEntry, 1> kEntries = {
    entry<Op::attn_chunk, attn_simd::chunk<Avx512Vnni, Format::Q8_0>>(Format::Q8_0),
};

}  // namespace

extern constexpr KernelList kernels_attention_avx512_vnni{Isa::avx512_vnni, kEntries.data(), kEntries.size()};

}  // namespace slmk
