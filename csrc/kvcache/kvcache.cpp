// ---- paged KV cache: block pool, block tables, sequence operations, save/restore ----
// Layout and invariants: kvcache.h. Every operation validates everything first and only then
// changes state, so an exception always leaves the cache exactly as it was.
#include "kvcache/kvcache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>


namespace slmk {

namespace {

int64_t round64(int64_t n) { return (n + 63) / 64 * 64; }

std::string seq_str(int64_t seq) { return "sequence " + std::to_string(seq); }

}  // namespace

Format kv_dtype_from_name(const std::string& name) {
    std::string s = name;
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    if (s == "f32") return Format::F32;
    if (s == "f16") return Format::F16;
    if (s == "q8_0") return Format::Q8_0;
    if (s == "q4_0") return Format::Q4_0;
    throw std::invalid_argument("dtype must be 'f32', 'f16', 'q8_0' or 'q4_0', got '" + name + "'");
}

KVCache::KVCache(int n_layers_, int n_kv_heads_, int head_dim_, int64_t capacity_tokens, int block_tokens_,
                 Format dtype_, std::vector<int64_t> layer_windows, RecurrentSpec recurrent_)
    : n_layers(n_layers_), n_kv_heads(n_kv_heads_), head_dim(head_dim_), block_tokens(block_tokens_), dtype(dtype_),
      recurrent(recurrent_) {
    if (n_layers < 1) throw std::invalid_argument("n_layers must be >= 1");
    if (n_kv_heads < 1) throw std::invalid_argument("n_kv_heads must be >= 1");
    if (head_dim < 1 || head_dim > 4096) throw std::invalid_argument("head_dim must be in 1..4096");
    if (capacity_tokens < 1) throw std::invalid_argument("capacity_tokens must be >= 1");
    if (block_tokens < 1 || block_tokens > 4096) throw std::invalid_argument("block_tokens must be in 1..4096");
    if (dtype != Format::F32 && dtype != Format::F16 && dtype != Format::Q8_0 && dtype != Format::Q4_0)
        throw std::invalid_argument("dtype must be f32, f16, q8_0 or q4_0");
    if (layer_windows.empty()) layer_windows.assign(n_layers, 0);
    if (static_cast<int>(layer_windows.size()) != n_layers)
        throw std::invalid_argument("layer_windows must have one entry per layer (" + std::to_string(n_layers) + ")");
    for (int64_t w : layer_windows)
        if (w < 0) throw std::invalid_argument("layer_windows entries must be >= 0 (0: full attention)");
    windows = std::move(layer_windows);
    if (recurrent.n_layers < 0 || recurrent.n_layers > 4096)
        throw std::invalid_argument("recurrent_layers must be in 0..4096");
    if (recurrent.n_layers > 0 && (recurrent.state_floats < 1 || recurrent.state_floats > (int64_t(1) << 28)))
        throw std::invalid_argument("recurrent_state_floats must be in 1..2^28 when there are recurrent layers");
    if (recurrent.n_layers == 0) recurrent.state_floats = 0;
    if (recurrent.max_snapshots < 0 || recurrent.max_snapshots > 1024)
        throw std::invalid_argument("max_snapshots must be in 0..1024");
    if (recurrent.snapshot_interval < 0) throw std::invalid_argument("snapshot_interval must be >= 0 (0: none)");
    const bool blockwise = dtype == Format::Q8_0 || dtype == Format::Q4_0;
    head_dim_padded = blockwise ? (head_dim + QK - 1) / QK * QK : head_dim;
    row_bytes = row_bytes_of(dtype, head_dim_padded);
    half_bytes = round64(static_cast<int64_t>(n_kv_heads) * block_tokens * row_bytes);
    block_bytes = 2 * half_bytes;
    const int64_t per_layer = capacity_tokens / block_tokens + (capacity_tokens % block_tokens != 0);  // (no overflow)
    // 2^24 blocks (16.7M; a 126-layer model at 128k tokens needs 0.5M) bound the bookkeeping
    // allocated and touched here (8 bytes a block) to 128 MiB, whatever the arguments
    if (per_layer > (int64_t(1) << 24) / n_layers)
        throw std::invalid_argument("capacity_tokens is too large: " + std::to_string(n_layers) + " layers of " +
                                    std::to_string(per_layer) + " blocks exceed 2^24 blocks");
    n_blocks = per_layer * n_layers;
    if (n_blocks > std::numeric_limits<int64_t>::max() / block_bytes / 2)
        throw std::invalid_argument("capacity_tokens is too large");
    pool_.reserve(n_blocks * block_bytes);  // pages are committed by the OS on first write
    refcount_.assign(n_blocks, 0);
    free_.reserve(n_blocks);
    for (int64_t b = n_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));  // block 0 on top
}

int64_t KVCache::row_bytes_of(Format f, int64_t n) { return ::slmk::row_bytes(f, n); }

// ---- helpers ----

KVSequence& KVCache::seq_ref(int64_t seq) {
    auto it = seqs_.find(seq);
    if (it == seqs_.end()) throw KVUnknownSequence("seq " + std::to_string(seq) + " is not a live sequence of this cache");
    return it->second;
}

const KVSequence& KVCache::sequence(int64_t seq) const { return const_cast<KVCache*>(this)->seq_ref(seq); }

void KVCache::check_layer(int layer) const {
    if (layer < 0 || layer >= n_layers)
        throw std::out_of_range("layer " + std::to_string(layer) + " is out of range (n_layers = " +
                                std::to_string(n_layers) + ")");
}

int32_t KVCache::take_block() {
    const int32_t b = free_.back();  // callers have counted: never empty here
    free_.pop_back();
    refcount_[b] = 1;
    return b;
}

void KVCache::release(int32_t b) {
    if (--refcount_[b] == 0) free_.push_back(b);
}

void KVCache::copy_slots(int32_t dst, int32_t src, int lo, int hi) {
    for (int h = 0; h < n_kv_heads; ++h) {
        std::memcpy(wk_row(dst, h, lo), k_row(src, h, lo), (hi - lo) * row_bytes);
        std::memcpy(wv_row(dst, h, lo), v_row(src, h, lo), (hi - lo) * row_bytes);
    }
}

void KVCache::drop_below(KVSeqLayer& L, int64_t pos) { drop_range(L, std::numeric_limits<int64_t>::min(), pos); }

void KVCache::drop_range(KVSeqLayer& L, int64_t a, int64_t b) {
    std::vector<KVEntry> out;
    out.reserve(L.entries.size() + 1);
    for (const KVEntry& e : L.entries) {
        if (e.end() <= a || e.pos0 >= b) {
            out.push_back(e);
        } else if (e.pos0 >= a && e.end() <= b) {
            release(e.block);
        } else if (e.pos0 < a && e.end() > b) {  // split around the hole: one more reference
            out.push_back({e.block, e.lo, static_cast<int32_t>(e.lo + (a - e.pos0)), e.pos0});
            out.push_back({e.block, static_cast<int32_t>(e.lo + (b - e.pos0)), e.hi, b});
            ++refcount_[e.block];
        } else if (e.pos0 < a) {  // keep the left part
            out.push_back({e.block, e.lo, static_cast<int32_t>(e.lo + (a - e.pos0)), e.pos0});
        } else {  // keep the right part
            out.push_back({e.block, static_cast<int32_t>(e.lo + (b - e.pos0)), e.hi, b});
        }
    }
    L.entries.swap(out);
}

// ---- sequence operations ----

int64_t KVCache::new_sequence() {
    KVSequence s;
    s.layers.resize(n_layers);
    s.state.assign(static_cast<size_t>(recurrent.n_layers * recurrent.state_floats), 0.0f);
    const int64_t id = next_id_++;
    seqs_.emplace(id, std::move(s));
    return id;
}

int64_t KVCache::plan_extend(int64_t seq, int64_t n, std::map<int32_t, int32_t>* released) const {
    const KVSequence& S = sequence(seq);
    if (n < 1) throw std::invalid_argument("n_tokens must be >= 1, got " + std::to_string(n));
    const int64_t L = S.length;
    for (int l = 0; l < n_layers; ++l)
        if (S.layers[l].written != L)
            throw std::invalid_argument("layer " + std::to_string(l) + " of " + seq_str(seq) + " has " +
                                        std::to_string(L - S.layers[l].written) +
                                        " reserved positions not yet written; write every layer before extend");
    // blocks needed in every layer (a copy of a shared tail, then fresh blocks)
    int64_t need = 0;
    for (int l = 0; l < n_layers; ++l) {
        const auto& E = S.layers[l].entries;
        int64_t avail = 0;
        if (!E.empty() && E.back().end() == L && E.back().hi < block_tokens) {
            avail = block_tokens - E.back().hi;
            const int32_t b = E.back().block;
            int32_t refs = refcount_[b];
            if (released) refs -= (*released)[b];
            if (refs > 1) {
                ++need;
                if (released) ++(*released)[b];
            }
        }
        const int64_t rem = std::max<int64_t>(0, n - avail);
        need += rem / block_tokens + (rem % block_tokens != 0);  // (no rem + block_tokens - 1: n may be ~2^63)
        if (need > n_blocks) return n_blocks + 1;  // saturates: more than the pool never fits
    }
    return need;
}

void KVCache::extend(int64_t seq, int64_t n) {
    KVSequence& S = seq_ref(seq);
    const int64_t need = plan_extend(seq, n);
    const int64_t L = S.length;
    if (need > static_cast<int64_t>(free_.size()))
        throw KVCapacityError("KV cache is full: extending " + seq_str(seq) + " by " + std::to_string(n) +
                              " tokens needs " + (need > n_blocks ? "more than all " : "") +
                              std::to_string(std::min(need, n_blocks)) + " blocks, " + std::to_string(free_.size()) +
                              " of " + std::to_string(n_blocks) + " are free (nothing was changed)");
    // commit
    for (int l = 0; l < n_layers; ++l) {
        auto& E = S.layers[l].entries;
        int64_t remaining = n;
        if (!E.empty() && E.back().end() == L && E.back().hi < block_tokens) {
            KVEntry& t = E.back();
            if (refcount_[t.block] > 1) {  // copy-on-write of the shared partial tail
                const int32_t nb = take_block();
                copy_slots(nb, t.block, t.lo, t.hi);
                release(t.block);
                t.block = nb;
            }
            const int64_t take = std::min<int64_t>(remaining, block_tokens - t.hi);
            t.hi += static_cast<int32_t>(take);
            remaining -= take;
        }
        int64_t pos = L + (n - remaining);
        while (remaining > 0) {
            const int64_t take = std::min<int64_t>(remaining, block_tokens);
            E.push_back({take_block(), 0, static_cast<int32_t>(take), pos});
            pos += take;
            remaining -= take;
        }
    }
    S.length = L + n;
    // sliding-window layers: the first new query (position L) sees positions > L - W
    for (int l = 0; l < n_layers; ++l) {
        const int64_t W = windows[l];
        if (W <= 0) continue;
        const int64_t thr = L - W + 1;
        if (thr > S.layers[l].floor) {
            drop_below(S.layers[l], thr);
            S.layers[l].floor = thr;
        }
    }
}

void KVCache::write(const QuantKernels& qk, int layer, int64_t seq, const float* k, const float* v, int64_t n) {
    check_layer(layer);
    KVSequence& S = seq_ref(seq);
    KVSeqLayer& Ly = S.layers[layer];
    const int64_t pending = S.length - Ly.written;
    if (pending == 0)
        throw std::invalid_argument("layer " + std::to_string(layer) + " of " + seq_str(seq) +
                                    " has no reserved positions: call extend first");
    if (n != pending)
        throw std::invalid_argument("k and v have " + std::to_string(n) + " tokens but layer " + std::to_string(layer) +
                                    " of " + seq_str(seq) + " has " + std::to_string(pending) + " reserved positions");
    const quantize_row_fn quant = qk.quantize(dtype);
    std::vector<float> tmp(head_dim_padded, 0.0f);
    auto put = [&](const float* src, uint8_t* dst) {
        if (dtype == Format::F32) {
            std::memcpy(dst, src, head_dim * sizeof(float));
        } else if (head_dim_padded == head_dim) {
            quant(src, dst, head_dim);
        } else {
            std::memcpy(tmp.data(), src, head_dim * sizeof(float));  // the pad stays zero
            quant(tmp.data(), dst, head_dim_padded);
        }
    };
    for (const KVEntry& e : Ly.entries) {
        if (e.end() <= Ly.written) continue;
        if (refcount_[e.block] != 1) throw std::logic_error("KV cache: write into a shared block");
        for (int64_t p = std::max(e.pos0, Ly.written); p < e.end(); ++p) {
            const int slot = static_cast<int>(e.lo + (p - e.pos0));
            const int64_t t = p - Ly.written;
            for (int h = 0; h < n_kv_heads; ++h) {
                put(k + (t * n_kv_heads + h) * head_dim, wk_row(e.block, h, slot));
                put(v + (t * n_kv_heads + h) * head_dim, wv_row(e.block, h, slot));
            }
        }
    }
    Ly.written = S.length;
}

int64_t KVCache::fork(int64_t seq) {
    const KVSequence& S = seq_ref(seq);
    for (int l = 0; l < n_layers; ++l)
        if (S.layers[l].written != S.length)
            throw std::invalid_argument("cannot fork " + seq_str(seq) + ": layer " + std::to_string(l) +
                                        " has reserved positions not yet written");
    KVSequence copy = S;
    for (const auto& Ly : copy.layers)
        for (const KVEntry& e : Ly.entries) ++refcount_[e.block];
    const int64_t id = next_id_++;
    seqs_.emplace(id, std::move(copy));
    return id;
}

void KVCache::truncate(int64_t seq, int64_t n) {
    KVSequence& S = seq_ref(seq);
    if (n < 0 || n > S.length)
        throw std::invalid_argument("n_tokens must be in 0..length (" + std::to_string(S.length) + "), got " +
                                    std::to_string(n));
    if (recurrent.n_layers > 0 && n < S.length) {
        // the recurrent state goes back only to a snapshot (or to the zero state at 0)
        auto it = S.snapshots.find(n);
        if (n != 0 && it == S.snapshots.end()) {
            std::string have;
            for (int64_t p : snapshot_positions(seq)) have += (have.empty() ? "" : ", ") + std::to_string(p);
            throw std::invalid_argument("cannot truncate " + seq_str(seq) + " to " + std::to_string(n) +
                                        " tokens: its recurrent layers' state can only go back to a snapshot, kept at "
                                        "positions [" + have + "]; truncate to one of them and feed the tokens after "
                                        "it again (nothing was changed)");
        }
        if (n == 0) std::fill(S.state.begin(), S.state.end(), 0.0f);
        else std::copy(it->second->begin(), it->second->end(), S.state.begin());
        S.snapshots.erase(S.snapshots.upper_bound(n), S.snapshots.end());
    }
    for (auto& Ly : S.layers) {
        drop_range(Ly, n, std::numeric_limits<int64_t>::max());
        Ly.written = std::min(Ly.written, n);
    }
    S.length = n;
}

void KVCache::free_sequence(int64_t seq) {
    KVSequence& S = seq_ref(seq);
    for (auto& Ly : S.layers)
        for (const KVEntry& e : Ly.entries) release(e.block);
    seqs_.erase(seq);
}

void KVCache::evict(int64_t seq, int64_t n_sink, int64_t window) {
    KVSequence& S = seq_ref(seq);
    if (n_sink < 0) throw std::invalid_argument("n_sink must be >= 0");
    if (window < 0) throw std::invalid_argument("window must be >= 0");
    for (int l = 0; l < n_layers; ++l)
        if (S.layers[l].written != S.length)
            throw std::invalid_argument("cannot evict from " + seq_str(seq) + ": layer " + std::to_string(l) +
                                        " has reserved positions not yet written");
    const int64_t b = S.length - window;
    if (b <= n_sink) return;
    for (auto& Ly : S.layers) drop_range(Ly, n_sink, b);
}

// ---- inspection ----

int64_t KVCache::stored(int layer, int64_t seq) const {
    check_layer(layer);
    const KVSeqLayer& Ly = sequence(seq).layers[layer];
    int64_t n = 0;
    for (const KVEntry& e : Ly.entries) n += std::max<int64_t>(0, std::min(e.end(), Ly.written) - e.pos0);
    return n;
}

void KVCache::read(const QuantKernels& qk, int layer, int64_t seq, float* k, float* v, int64_t* pos) const {
    check_layer(layer);
    const KVSeqLayer& Ly = sequence(seq).layers[layer];
    const dequantize_row_fn deq = qk.dequantize(dtype);
    std::vector<float> tmp(head_dim_padded);
    auto get = [&](const uint8_t* src, float* dst) {
        if (dtype == Format::F32) {
            std::memcpy(dst, src, head_dim * sizeof(float));
        } else {
            deq(src, tmp.data(), head_dim_padded);
            std::memcpy(dst, tmp.data(), head_dim * sizeof(float));
        }
    };
    int64_t t = 0;
    for (const KVEntry& e : Ly.entries) {
        for (int64_t p = e.pos0; p < std::min(e.end(), Ly.written); ++p, ++t) {
            const int slot = static_cast<int>(e.lo + (p - e.pos0));
            for (int h = 0; h < n_kv_heads; ++h) {
                get(k_row(e.block, h, slot), k + (t * n_kv_heads + h) * head_dim);
                get(v_row(e.block, h, slot), v + (t * n_kv_heads + h) * head_dim);
            }
            pos[t] = p;
        }
    }
}

KVStats KVCache::stats() const {
    KVStats s;
    s.state_bytes_per_sequence = recurrent.n_layers * recurrent.state_floats * static_cast<int64_t>(sizeof(float));
    std::map<const void*, int64_t> snaps;  // shared by forks: counted once
    for (const auto& kv : seqs_)
        for (const auto& sn : kv.second.snapshots) snaps[sn.second.get()] = static_cast<int64_t>(sn.second->size());
    s.snapshots = static_cast<int64_t>(snaps.size());
    s.snapshot_bytes = 0;
    for (const auto& kv : snaps) s.snapshot_bytes += kv.second * static_cast<int64_t>(sizeof(float));
    s.blocks_total = n_blocks;
    s.blocks_free = static_cast<int64_t>(free_.size());
    s.blocks_used = n_blocks - s.blocks_free;
    s.block_bytes = block_bytes;
    s.sequences = static_cast<int64_t>(seqs_.size());
    s.bytes_per_token = static_cast<int64_t>(n_layers) * 2 * n_kv_heads * row_bytes;
    return s;
}

std::vector<int64_t> KVCache::sequence_ids() const {
    std::vector<int64_t> ids;
    for (const auto& kv : seqs_) ids.push_back(kv.first);
    return ids;
}

// ---- recurrent state ----

float* KVCache::state(int64_t seq, int layer) {
    KVSequence& S = seq_ref(seq);
    if (layer < 0 || layer >= recurrent.n_layers)
        throw std::out_of_range("recurrent layer " + std::to_string(layer) + " is out of range (recurrent layers: " +
                                std::to_string(recurrent.n_layers) + ")");
    return S.state.data() + static_cast<int64_t>(layer) * recurrent.state_floats;
}

void KVCache::snapshot(int64_t seq) {
    KVSequence& S = seq_ref(seq);
    if (recurrent.n_layers == 0) throw std::invalid_argument("this cache has no recurrent layers to snapshot");
    if (S.length == 0 || recurrent.max_snapshots == 0) return;  // 0 is the zero state, always there
    S.snapshots[S.length] = std::make_shared<const std::vector<float>>(S.state);
    while (static_cast<int>(S.snapshots.size()) > recurrent.max_snapshots) S.snapshots.erase(S.snapshots.begin());
}

void KVCache::add_snapshot(int64_t seq, int64_t pos, const float* state) {
    KVSequence& S = seq_ref(seq);
    if (recurrent.n_layers == 0) throw std::invalid_argument("this cache has no recurrent layers to snapshot");
    if (pos < 1 || pos > S.length)
        throw std::invalid_argument("snapshot position must be in 1..length (" + std::to_string(S.length) + "), got " +
                                    std::to_string(pos));
    if (recurrent.max_snapshots == 0) return;
    S.snapshots[pos] = std::make_shared<const std::vector<float>>(state, state + S.state.size());
    while (static_cast<int>(S.snapshots.size()) > recurrent.max_snapshots) S.snapshots.erase(S.snapshots.begin());
}

std::vector<int64_t> KVCache::snapshot_positions(int64_t seq) const {
    const KVSequence& S = sequence(seq);
    std::vector<int64_t> out{0};
    for (const auto& kv : S.snapshots) out.push_back(kv.first);
    return out;
}

// ---- save / restore ----
// File: "SLMKKVC\0", u32 version, u32 ggml dtype, u32 n_layers, n_kv_heads, head_dim, u32 0,
// i64 length; per layer: i64 window, i64 floor, i64 n_runs, runs (i64 pos0, i64 count);
// then per layer, per stored token in position order: K rows of every head, V rows likewise
// (the cache's row format); then (version 2) u32 recurrent layers, u32 0, i64 state floats per
// layer, the live state (floats), i64 n_snapshots, per snapshot i64 position and its floats;
// last, u64 FNV-1a of every byte before it. Little-endian. Version 1 (no recurrent section) is
// still read by caches without recurrent layers.

namespace {

constexpr char kMagic[8] = {'S', 'L', 'M', 'K', 'K', 'V', 'C', '\0'};
constexpr uint32_t kVersion = 2;

// FNV-1a, 64-bit (Fowler, Noll, Vo): small and dependency-free; detects any accidental change.
uint64_t fnv1a64(const uint8_t* p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; ++i) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

struct Writer {
    std::vector<uint8_t> buf;
    template <class T> void put(T v) {
        const size_t o = buf.size();
        buf.resize(o + sizeof(T));
        std::memcpy(buf.data() + o, &v, sizeof(T));
    }
    void bytes(const void* p, size_t n) {
        if (n == 0) return;  // p may be null (an empty recurrent state): memcpy must not see it
        const size_t o = buf.size();
        buf.resize(o + n);
        std::memcpy(buf.data() + o, p, n);
    }
};

struct Reader {
    const uint8_t* p;
    size_t n, o = 0;
    template <class T> T get() {
        if (n - o < sizeof(T)) throw KVFileError("KV cache file is truncated");
        T v;
        std::memcpy(&v, p + o, sizeof(T));
        o += sizeof(T);
        return v;
    }
};

struct Run { int64_t pos0, count; };

}  // namespace

std::vector<uint8_t> KVCache::save(int64_t seq) const {
    const KVSequence& S = sequence(seq);
    for (int l = 0; l < n_layers; ++l)
        if (S.layers[l].written != S.length)
            throw std::invalid_argument("cannot save " + seq_str(seq) + ": layer " + std::to_string(l) +
                                        " has reserved positions not yet written");
    Writer w;
    w.bytes(kMagic, 8);
    w.put<uint32_t>(kVersion);
    w.put<uint32_t>(static_cast<uint32_t>(format_info(dtype).ggml_type));
    w.put<uint32_t>(n_layers);
    w.put<uint32_t>(n_kv_heads);
    w.put<uint32_t>(head_dim);
    w.put<uint32_t>(0);
    w.put<int64_t>(S.length);
    for (int l = 0; l < n_layers; ++l) {
        const KVSeqLayer& Ly = S.layers[l];
        std::vector<Run> runs;
        for (const KVEntry& e : Ly.entries) {
            if (!runs.empty() && runs.back().pos0 + runs.back().count == e.pos0) runs.back().count += e.hi - e.lo;
            else runs.push_back({e.pos0, e.hi - e.lo});
        }
        w.put<int64_t>(windows[l]);
        w.put<int64_t>(Ly.floor);
        w.put<int64_t>(static_cast<int64_t>(runs.size()));
        for (const Run& r : runs) {
            w.put<int64_t>(r.pos0);
            w.put<int64_t>(r.count);
        }
    }
    for (int l = 0; l < n_layers; ++l)
        for (const KVEntry& e : S.layers[l].entries)
            for (int slot = e.lo; slot < e.hi; ++slot) {
                for (int h = 0; h < n_kv_heads; ++h) w.bytes(k_row(e.block, h, slot), row_bytes);
                for (int h = 0; h < n_kv_heads; ++h) w.bytes(v_row(e.block, h, slot), row_bytes);
            }
    w.put<uint32_t>(static_cast<uint32_t>(recurrent.n_layers));
    w.put<uint32_t>(0);
    w.put<int64_t>(recurrent.state_floats);
    w.bytes(S.state.data(), S.state.size() * sizeof(float));
    w.put<int64_t>(static_cast<int64_t>(S.snapshots.size()));
    for (const auto& sn : S.snapshots) {
        w.put<int64_t>(sn.first);
        w.bytes(sn.second->data(), sn.second->size() * sizeof(float));
    }
    w.put<uint64_t>(fnv1a64(w.buf.data(), w.buf.size()));
    return std::move(w.buf);
}

int64_t KVCache::restore(const uint8_t* data, size_t size) {
    // ---- validate everything first ----
    if (size < 8 + 8 || std::memcmp(data, kMagic, 8) != 0)
        throw KVFileError("not a slmkernels KV cache file (bad magic)");
    Reader r{data, size - 8};  // the trailing checksum is not part of the body
    r.o = 8;
    const uint32_t version = r.get<uint32_t>();
    if (version != kVersion && !(version == 1 && recurrent.n_layers == 0))
        throw KVFileError("KV cache file version " + std::to_string(version) + " is not supported (expected " +
                          std::to_string(kVersion) + ")");
    uint64_t stored_sum;
    std::memcpy(&stored_sum, data + size - 8, 8);
    if (fnv1a64(data, size - 8) != stored_sum) throw KVFileError("KV cache file checksum mismatch (corrupt or truncated)");
    const uint32_t ggml = r.get<uint32_t>();
    const uint32_t nl = r.get<uint32_t>(), nh = r.get<uint32_t>(), hd = r.get<uint32_t>();
    r.get<uint32_t>();
    if (ggml != static_cast<uint32_t>(format_info(dtype).ggml_type) || nl != static_cast<uint32_t>(n_layers) ||
        nh != static_cast<uint32_t>(n_kv_heads) || hd != static_cast<uint32_t>(head_dim))
        throw KVFileError("KV cache file is for another cache geometry (n_layers " + std::to_string(nl) +
                          ", n_kv_heads " + std::to_string(nh) + ", head_dim " + std::to_string(hd) + ", ggml type " +
                          std::to_string(ggml) + ")");
    const int64_t length = r.get<int64_t>();
    if (length < 0) throw KVFileError("KV cache file: negative length");
    std::vector<int64_t> floors(n_layers);
    std::vector<std::vector<Run>> runs(n_layers);
    int64_t need = 0, tokens = 0;
    for (int l = 0; l < n_layers; ++l) {
        const int64_t w = r.get<int64_t>();
        if (w != windows[l]) throw KVFileError("KV cache file: layer " + std::to_string(l) + " window differs from this cache's");
        floors[l] = r.get<int64_t>();
        const int64_t nr = r.get<int64_t>();
        if (floors[l] < 0 || floors[l] > length || nr < 0 || nr > length)
            throw KVFileError("KV cache file: bad layer header");
        int64_t prev_end = std::numeric_limits<int64_t>::min();
        for (int64_t i = 0; i < nr; ++i) {
            Run u{r.get<int64_t>(), r.get<int64_t>()};
            if (u.count < 1 || u.pos0 < 0 || u.pos0 < floors[l] || u.pos0 < prev_end || u.count > length - u.pos0)
                throw KVFileError("KV cache file: bad token run");
            prev_end = u.pos0 + u.count;
            runs[l].push_back(u);
            // checked run by run, so need and tokens stay below the pool's size (no overflow)
            need += u.count / block_tokens + (u.count % block_tokens != 0);
            tokens += u.count;
            if (need > static_cast<int64_t>(free_.size()))
                throw KVCapacityError("KV cache is full: restoring needs more than the " +
                                      std::to_string(free_.size()) + " free blocks (nothing was changed)");
        }
    }
    const int64_t body = tokens * 2 * n_kv_heads * row_bytes;  // tokens fit the pool: no overflow
    if (static_cast<int64_t>(r.n - r.o) < body) throw KVFileError("KV cache file: data size does not match its header");
    const uint8_t* kv_src = data + r.o;
    r.o += static_cast<size_t>(body);
    // the recurrent section (version 2)
    std::vector<float> state;
    std::map<int64_t, RecurrentSnapshot> snaps;
    if (version >= 2) {
        const uint32_t nr = r.get<uint32_t>();
        r.get<uint32_t>();
        const int64_t floats = r.get<int64_t>();
        if (nr != static_cast<uint32_t>(recurrent.n_layers) || floats != recurrent.state_floats)
            throw KVFileError("KV cache file: its recurrent state (" + std::to_string(nr) + " layers of " +
                              std::to_string(floats) + " floats) does not match this cache's (" +
                              std::to_string(recurrent.n_layers) + " of " + std::to_string(recurrent.state_floats) + ")");
        const size_t nbytes = static_cast<size_t>(recurrent.n_layers * recurrent.state_floats) * sizeof(float);
        auto floats_at = [&](std::vector<float>& dst) {
            if (r.n - r.o < nbytes) throw KVFileError("KV cache file is truncated");
            dst.resize(nbytes / sizeof(float));
            if (nbytes) std::memcpy(dst.data(), data + r.o, nbytes);
            r.o += nbytes;
        };
        floats_at(state);
        const int64_t ns = r.get<int64_t>();
        if (ns < 0 || ns > recurrent.max_snapshots) throw KVFileError("KV cache file: bad snapshot count");
        int64_t prev = 0;
        for (int64_t i = 0; i < ns; ++i) {
            const int64_t pos = r.get<int64_t>();
            if (pos <= prev || pos > length) throw KVFileError("KV cache file: bad snapshot position");
            prev = pos;
            auto v = std::make_shared<std::vector<float>>();
            floats_at(*v);
            snaps[pos] = std::move(v);
        }
    }
    if (r.o != r.n) throw KVFileError("KV cache file: data size does not match its header");
    // ---- commit: each run starts in a fresh block ----
    KVSequence S;
    S.length = length;
    S.layers.resize(n_layers);
    S.state = std::move(state);
    S.snapshots = std::move(snaps);
    const uint8_t* src = kv_src;
    for (int l = 0; l < n_layers; ++l) {
        KVSeqLayer& Ly = S.layers[l];
        Ly.written = length;
        Ly.floor = floors[l];
        for (const Run& u : runs[l]) {
            for (int64_t done = 0; done < u.count;) {
                const int64_t take = std::min<int64_t>(u.count - done, block_tokens);
                const int32_t b = take_block();
                for (int slot = 0; slot < take; ++slot) {
                    for (int h = 0; h < n_kv_heads; ++h, src += row_bytes) std::memcpy(wk_row(b, h, slot), src, row_bytes);
                    for (int h = 0; h < n_kv_heads; ++h, src += row_bytes) std::memcpy(wv_row(b, h, slot), src, row_bytes);
                }
                Ly.entries.push_back({b, 0, static_cast<int32_t>(take), u.pos0 + done});
                done += take;
            }
        }
    }
    const int64_t id = next_id_++;
    seqs_.emplace(id, std::move(S));
    return id;
}

}  // namespace slmk
