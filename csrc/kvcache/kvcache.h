// ---- paged KV cache: a pool of fixed-size blocks, a block table per sequence and layer ----
//
// Storage. One block holds `block_tokens` token slots of ONE layer, K then V, each laid out
// [kv_head][slot][row] so the attention kernels read a run of slots of one head in place:
//   block = K: n_kv_heads x block_tokens x row_bytes, then V likewise       (64-byte aligned)
// A row is head_dim values in the cache's format: f32, IEEE f16, or GGUF Q8_0 / Q4_0 blocks of
// 32 (head_dim is zero-padded to a multiple of 32 for the block formats; the pad is never read
// back). All layers share one pool of n_layers * ceil(capacity_tokens / block_tokens) blocks.
//
// Tables. A sequence's tokens in one layer are a list of entries in position order; an entry
// is (block, slots [lo, hi), positions pos0 ..): positions are contiguous inside an entry, and
// gaps between entries are evicted tokens. Blocks are refcounted per entry: fork shares every
// entry (no copy); a block is written only while its refcount is 1, so extend copies a shared,
// partially filled tail first (copy-on-write). extend is the only operation that allocates:
// it counts what it needs first and either succeeds whole or changes nothing.
//
// Positions. Keys are stored exactly as written (the caller applies RoPE at the token's
// absolute position) and are never re-rotated: eviction keeps each kept token's position, and
// since a RoPE score depends only on q_pos - k_pos, attention over the kept tokens is exactly
// the full-context attention restricted to them.
//
// Sliding-window layers (window W > 0) free what no later query can see: extend drops
// positions below old_length - W + 1 (the first new query's window) in those layers.
//
// Recurrent state (hybrid models, e.g. Mamba-2 layers beside attention layers). A cache made
// with recurrent layers gives each sequence, beside its KV blocks (for the attention layers
// only), a fixed-size float state per recurrent layer: `state_floats` each (Mamba-2: the conv
// window, then the SSM state), zero for a new sequence, updated in place by the model's step.
// The state has no positions, so it cannot be rolled back by dropping tokens: truncate needs a
// snapshot, a copy of the whole state taken at a position. Snapshots are kept where the model
// takes them (Model: after every prompt, i.e. every forward call of more than one token, and
// every `snapshot_interval` decoded positions), at most `max_snapshots` per sequence (the
// oldest is dropped); position 0 is always available (the zero state). truncate(seq, n) to any
// other n without a snapshot at exactly n is refused, naming the positions that exist.
// fork copies the live state and shares the snapshots (immutable); save/restore carry both.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/aligned_bytes.h"
#include "quant/formats.h"

namespace slmk {

struct KVCapacityError : std::runtime_error { using std::runtime_error::runtime_error; };
struct KVUnknownSequence : std::runtime_error { using std::runtime_error::runtime_error; };
struct KVFileError : std::runtime_error { using std::runtime_error::runtime_error; };

struct KVEntry {
    int32_t block;   // pool index
    int32_t lo, hi;  // slots [lo, hi) of the block
    int64_t pos0;    // position of slot lo
    int64_t end() const { return pos0 + (hi - lo); }  // one past the last position
};

struct KVSeqLayer {
    std::vector<KVEntry> entries;  // position order
    int64_t written = 0;           // positions < written hold data (the rest are reserved by extend)
    int64_t floor = 0;             // window layers: positions < floor were freed
};

using RecurrentSnapshot = std::shared_ptr<const std::vector<float>>;

struct KVSequence {
    int64_t length = 0;            // next position (tokens ever reserved, minus truncated)
    std::vector<KVSeqLayer> layers;
    std::vector<float> state;      // recurrent layers x state_floats (empty without recurrent layers)
    std::map<int64_t, RecurrentSnapshot> snapshots;  // position -> the state after that many tokens
};

struct KVStats {
    int64_t blocks_total, blocks_used, blocks_free, block_bytes, sequences, bytes_per_token;
    int64_t state_bytes_per_sequence;  // recurrent layers' live state of one sequence
    int64_t snapshots, snapshot_bytes; // distinct snapshots kept (shared ones once), their bytes
};

struct RecurrentSpec {
    int n_layers = 0;               // recurrent layers (0: none)
    int64_t state_floats = 0;       // floats of one layer's state
    int max_snapshots = 8;          // per sequence, besides position 0
    int64_t snapshot_interval = 0;  // the model snapshots every this many decoded positions (0: never)
};

class KVCache {
  public:
    KVCache(int n_layers, int n_kv_heads, int head_dim, int64_t capacity_tokens, int block_tokens, Format dtype,
            std::vector<int64_t> layer_windows, RecurrentSpec recurrent = {});

    // ---- geometry ----
    int n_layers, n_kv_heads, head_dim, head_dim_padded, block_tokens;
    Format dtype;
    int64_t row_bytes;    // one head's row of one token
    int64_t half_bytes;   // K (or V) part of one block: n_kv_heads * block_tokens * row_bytes, rounded to 64
    int64_t block_bytes;  // K + V of one block
    int64_t n_blocks;
    std::vector<int64_t> windows;  // per layer, 0 = full attention
    RecurrentSpec recurrent;

    // ---- sequence operations (callers hold `mu` exclusively; reads take it shared) ----
    int64_t new_sequence();
    void extend(int64_t seq, int64_t n);
    // Validates extend(seq, n) as extend does (same exceptions, except capacity) and returns the
    // blocks it would take. `released`: blocks an earlier planned extend of the same batch gives
    // a reference up on (copy-on-write of a shared tail); read and updated, so summing the plans
    // of a batch of distinct sequences counts what their extends take (or a little more, when a
    // window layer's extend frees blocks a later one could reuse).
    int64_t plan_extend(int64_t seq, int64_t n, std::map<int32_t, int32_t>* released = nullptr) const;
    int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
    // k, v: (n, n_kv_heads, head_dim) float32 for the layer's n unwritten positions, stored in the
    // cache's format by q's quantizer.
    void write(const QuantKernels& q, int layer, int64_t seq, const float* k, const float* v, int64_t n);
    int64_t fork(int64_t seq);
    void truncate(int64_t seq, int64_t n);
    void free_sequence(int64_t seq);
    void evict(int64_t seq, int64_t n_sink, int64_t window);
    std::vector<uint8_t> save(int64_t seq) const;
    int64_t restore(const uint8_t* data, size_t size);

    // ---- recurrent state ----
    // The live state of recurrent layer `layer` of seq (state_floats floats), for the model's step.
    float* state(int64_t seq, int layer);
    // Keeps a snapshot of seq's live state at its current length (replacing one there).
    void snapshot(int64_t seq);
    // Keeps `state` (recurrent layers x state_floats) as seq's state after `pos` tokens,
    // 1 <= pos <= length (the model captured it during a step).
    void add_snapshot(int64_t seq, int64_t pos, const float* state);
    std::vector<int64_t> snapshot_positions(int64_t seq) const;  // ascending, 0 included

    // ---- inspection ----
    const KVSequence& sequence(int64_t seq) const;  // throws KVUnknownSequence
    int64_t stored(int layer, int64_t seq) const;   // written tokens kept in the layer
    // Dequantized copies (by q's dequantizer): k, v (stored, n_kv_heads, head_dim), pos (stored,).
    void read(const QuantKernels& q, int layer, int64_t seq, float* k, float* v, int64_t* pos) const;
    KVStats stats() const;
    std::vector<int64_t> sequence_ids() const;
    int32_t refcount(int32_t block) const { return refcount_[block]; }

    const uint8_t* k_row(int32_t block, int head, int slot) const {
        return pool_.ptr + block * block_bytes + (static_cast<int64_t>(head) * block_tokens + slot) * row_bytes;
    }
    const uint8_t* v_row(int32_t block, int head, int slot) const { return k_row(block, head, slot) + half_bytes; }

    mutable std::shared_mutex mu;

  private:
    static int64_t row_bytes_of(Format f, int64_t n);
    AlignedBytes pool_;
    std::vector<int32_t> refcount_;
    std::vector<int32_t> free_;  // stack of free blocks
    std::map<int64_t, KVSequence> seqs_;
    int64_t next_id_ = 0;

    KVSequence& seq_ref(int64_t seq);
    void check_layer(int layer) const;
    int32_t take_block();
    void release(int32_t block);
    void copy_slots(int32_t dst, int32_t src, int lo, int hi);
    void drop_below(KVSeqLayer& L, int64_t pos);           // remove positions < pos
    void drop_range(KVSeqLayer& L, int64_t a, int64_t b);  // remove positions [a, b)
    uint8_t* wk_row(int32_t block, int head, int slot) { return const_cast<uint8_t*>(k_row(block, head, slot)); }
    uint8_t* wv_row(int32_t block, int head, int slot) { return const_cast<uint8_t*>(v_row(block, head, slot)); }
};

Format kv_dtype_from_name(const std::string& name);  // throws std::invalid_argument

}  // namespace slmk
