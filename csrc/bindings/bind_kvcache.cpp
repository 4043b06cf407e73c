// ---- KVCache and attention ----
// Locking: every mutation runs with the GIL held and takes the cache's lock exclusively;
// attention validates with the GIL held, then takes the lock shared *after* releasing the GIL
// (and drops it before re-taking the GIL), so a mutation waiting with the GIL never deadlocks
// against a running attention call.
#include <pybind11/stl.h>

#include <cmath>
#include <mutex>
#include <shared_mutex>

#include "attention/attention.h"
#include "bindings.h"
#include "kvcache/kvcache.h"

namespace slmk {

namespace {

using Arr = py::array_t<float, py::array::c_style>;

Arr require_kv(const py::handle& a, const char* name, const KVCache& c) {
    Arr x = require_f32(a, name);
    if (x.ndim() != 3 || x.shape(1) != c.n_kv_heads || x.shape(2) != c.head_dim)
        throw py::value_error(std::string(name) + " must have shape (n_tokens, n_kv_heads=" + std::to_string(c.n_kv_heads) +
                              ", head_dim=" + std::to_string(c.head_dim) + ")");
    if (x.shape(0) < 1) throw py::value_error(std::string(name) + " must hold at least one token");
    if (c.dtype == Format::Q8_0 || c.dtype == Format::Q4_0) {
        const float* p = x.data();
        for (int64_t i = 0; i < x.size(); ++i)
            if (!std::isfinite(p[i]))
                throw py::value_error(std::string(name) + " holds a non-finite value at flat index " + std::to_string(i) +
                                      " (a " + format_info(c.dtype).name + " cache cannot store it)");
    }
    return x;
}

void write_kv(KVCache& c, int layer, int64_t seq, const py::handle& k, const py::handle& v) {
    Arr ka = require_kv(k, "k", c), va = require_kv(v, "v", c);
    if (ka.shape(0) != va.shape(0)) throw py::value_error("k and v must have the same number of tokens");
    std::unique_lock<std::shared_mutex> lk(c.mu);
    c.write(kernels(), layer, seq, ka.data(), va.data(), ka.shape(0));
}

py::array_t<float> read_kv(const KVCache& c, int layer, int64_t seq, bool values) {
    std::shared_lock<std::shared_mutex> lk(c.mu);
    const int64_t n = c.stored(layer, seq);
    py::array_t<float> k({n, static_cast<int64_t>(c.n_kv_heads), static_cast<int64_t>(c.head_dim)});
    py::array_t<float> v({n, static_cast<int64_t>(c.n_kv_heads), static_cast<int64_t>(c.head_dim)});
    py::array_t<int64_t> pos(n);
    c.read(kernels(), layer, seq, k.mutable_data(), v.mutable_data(), pos.mutable_data());
    return values ? v : k;
}

struct AttnArgs {
    AttnOptions opt;
    py::array_t<float, py::array::c_style> sinks = null_array<py::array_t<float, py::array::c_style>>();
};

AttnArgs parse_options(int64_t n_heads, py::object scale, py::object window, py::object softcap, py::object sinks) {
    AttnArgs a;
    if (!scale.is_none()) {
        const double s = float_arg(scale, "scale");
        if (!(s > 0) || !std::isfinite(s)) throw py::value_error("scale must be a positive finite number");
        a.opt.scale = static_cast<float>(s);
    }
    if (!window.is_none()) {
        const int64_t w = int_arg(window, "window");
        if (w < 1) throw py::value_error("window must be >= 1 (or None for full attention)");
        a.opt.window = w;
    }
    if (!softcap.is_none()) {
        const double s = float_arg(softcap, "softcap");
        if (!(s > 0) || !std::isfinite(s)) throw py::value_error("softcap must be a positive finite number");
        a.opt.softcap = static_cast<float>(s);
    }
    if (!sinks.is_none()) {
        a.sinks = require_f32(sinks, "sinks");
        if (a.sinks.ndim() != 1 || a.sinks.shape(0) != n_heads)
            throw py::value_error("sinks must be 1-D with one logit per query head (" + std::to_string(n_heads) + ")");
        a.opt.sinks = a.sinks.data();
    }
    return a;
}

Arr query_array(const py::handle& q, const KVCache& c, ArrayKind* kind) {
    Arr qa = require_f32(q, "q", kind);
    if (qa.ndim() != 3) throw py::value_error("q must be 3-D (q_tokens, n_heads, head_dim)");
    if (qa.shape(2) != c.head_dim)
        throw py::value_error("q has head_dim " + std::to_string(qa.shape(2)) + ", the cache has " + std::to_string(c.head_dim));
    if (qa.shape(0) < 1 || qa.shape(1) < 1) throw py::value_error("q must not be empty");
    if (qa.shape(1) % c.n_kv_heads != 0)
        throw py::value_error("q has " + std::to_string(qa.shape(1)) + " heads, not a multiple of the cache's n_kv_heads (" +
                              std::to_string(c.n_kv_heads) + ")");
    return qa;
}

// attention_check under the cache's lock (shared): the state it reads may be changing under a
// Model.forward running without the GIL. Waiting for the lock with the GIL held is safe: no
// holder of the lock ever needs the GIL.
void checked_attention(const KVCache& cache, int layer, int64_t seq, int64_t q_tokens, int64_t n_heads,
                       const AttnOptions& opt) {
    std::shared_lock<std::shared_mutex> lk(cache.mu);
    attention_check(cache, layer, seq, q_tokens, n_heads, opt);
}

// A file path (str, bytes or os.PathLike); TypeError naming `path` otherwise.
py::object checked_path(const py::object& path) {
    if (py::isinstance<py::str>(path) || py::isinstance<py::bytes>(path) || py::hasattr(path, "__fspath__"))
        return path;
    throw py::type_error("path must be a str, bytes or os.PathLike, got " +
                         std::string(py::str(py::type::of(path).attr("__name__"))));
}

OutArg output_array(py::object out, const Arr& qa, const AttnArgs& a) {
    OutArg o;
    if (out.is_none()) {
        o.f32 = Arr({qa.shape(0), qa.shape(1), qa.shape(2)});
        return o;
    }
    o = take_out(out, "out");
    const Arr& oa = o.f32;
    if (oa.ndim() != 3 || oa.shape(0) != qa.shape(0) || oa.shape(1) != qa.shape(1) || oa.shape(2) != qa.shape(2))
        throw py::value_error("out must have the shape of q");
    if (!oa.writeable()) throw py::value_error("out must be writeable");
    const float *o0 = oa.data(), *q0 = qa.data();
    if (o0 < q0 + qa.size() && q0 < o0 + oa.size()) throw py::value_error("out must not overlap q");
    if (a.opt.sinks) {
        const float* s0 = a.opt.sinks;
        if (o0 < s0 + a.sinks.size() && s0 < o0 + oa.size()) throw py::value_error("out must not overlap sinks");
    }
    return o;
}

// A dense K or V of attention_dense: (kv_tokens, n_kv_heads, head_dim) float32 or float16, viewed
// in place when its last axis is contiguous, its other strides non-negative multiples of the
// element size and its data aligned (any numpy/torch layout of those axes, e.g. a transposed
// (n_kv_heads, kv_tokens, head_dim) one); otherwise a C-contiguous copy. bfloat16 (no attention
// kernel reads it) is widened to a float32 copy.
py::array dense_kv(const py::handle& a, const char* name, ElemType* e) {
    bool torch;
    py::array arr = as_array(a, name, e, &torch);
    if (*e == ElemType::Other)
        throw py::type_error(std::string(name) + " must have dtype float32, float16 or bfloat16, got " +
                             std::string(py::str(arr.dtype())));
    if (arr.ndim() != 3) throw py::value_error(std::string(name) + " must be 3-D (kv_tokens, n_kv_heads, head_dim)");
    if (arr.shape(0) < 1 || arr.shape(1) < 1 || arr.shape(2) < 1) throw py::value_error(std::string(name) + " must not be empty");
    if (*e == ElemType::BF16) {
        py::array c = py::array::ensure(arr, py::array::c_style | kNpyAligned);
        *e = ElemType::F32;
        return widen_rows(c, ElemType::BF16, 1, c.size(), c.size() * 2, {arr.shape(0), arr.shape(1), arr.shape(2)});
    }
    const int64_t item = *e == ElemType::F32 ? 4 : 2;
    const bool in_place = arr.strides(2) == item && arr.strides(0) >= 0 && arr.strides(1) >= 0 && arr.strides(0) % item == 0 &&
                          arr.strides(1) % item == 0 && reinterpret_cast<uintptr_t>(arr.data()) % item == 0;
    return in_place ? arr : py::array::ensure(arr, py::array::c_style | kNpyAligned);
}

// [first, last) bytes a strided 3-D array can touch.
std::pair<const char*, const char*> extent(const py::array& a) {
    const char* p = static_cast<const char*>(a.data());
    int64_t last = a.itemsize();
    for (int d = 0; d < a.ndim(); ++d) last += (a.shape(d) - 1) * a.strides(d);
    return {p, p + last};
}

// The attention result: the new array as q's kind, or the caller's out.
py::object attention_result(py::object out, OutArg& o, const ArrayKind& qk) {
    if (out.is_none()) return as_result(o.f32, qk);
    o.commit();
    return o.caller;
}

}  // namespace

void bind_kvcache(py::module_& m) {
    static py::exception<KVCapacityError> full_exc(m, "KVCacheFullError", PyExc_RuntimeError);
    static py::exception<KVFileError> file_exc(m, "KVCacheFileError", PyExc_ValueError);
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const KVCapacityError& e) {
            py::set_error(full_exc, e.what());
        } catch (const KVFileError& e) {
            py::set_error(file_exc, e.what());
        } catch (const KVUnknownSequence& e) {
            py::set_error(PyExc_KeyError, e.what());
        }
    });

    py::class_<KVCache>(m, "KVCache",
                        "Paged KV cache: a pool of blocks of block_tokens token slots per layer, a block table per\n"
                        "sequence and layer, refcounted blocks shared by fork (copy-on-write of the partial tail).\n"
                        "Keys are stored as written (rotated by the caller at their absolute positions) and never\n"
                        "re-rotated: eviction keeps positions, so attention over the kept tokens is exact.")
        .def(py::init([](int n_layers, int n_kv_heads, int head_dim, int64_t capacity_tokens, int block_tokens,
                         const std::string& dtype, py::object layer_windows, int recurrent_layers,
                         int64_t recurrent_state_floats, int max_snapshots, int64_t snapshot_interval) {
                 std::vector<int64_t> w;
                 if (!layer_windows.is_none()) {
                     if (!py::isinstance<py::sequence>(layer_windows) || py::isinstance<py::str>(layer_windows))
                         throw py::type_error("layer_windows must be a list of ints or None, one per layer");
                     for (py::handle x : layer_windows) w.push_back(x.is_none() ? 0 : int_arg(x, "layer_windows entry"));
                 }
                 RecurrentSpec r;
                 r.n_layers = recurrent_layers;
                 r.state_floats = recurrent_state_floats;
                 r.max_snapshots = max_snapshots;
                 r.snapshot_interval = snapshot_interval;
                 return new KVCache(n_layers, n_kv_heads, head_dim, capacity_tokens, block_tokens,
                                    kv_dtype_from_name(dtype), w, r);
             }),
             py::arg("n_layers"), py::arg("n_kv_heads"), py::arg("head_dim"), py::kw_only(), py::arg("capacity_tokens"),
             py::arg("block_tokens") = 32, py::arg("dtype") = "f16", py::arg("layer_windows") = py::none(),
             py::arg("recurrent_layers") = 0, py::arg("recurrent_state_floats") = 0, py::arg("max_snapshots") = 8,
             py::arg("snapshot_interval") = 0)
        .def_property_readonly("recurrent_layers", [](const KVCache& c) { return c.recurrent.n_layers; })
        .def_property_readonly("recurrent_state_floats", [](const KVCache& c) { return c.recurrent.state_floats; })
        .def_property_readonly("max_snapshots", [](const KVCache& c) { return c.recurrent.max_snapshots; })
        .def_property_readonly("snapshot_interval", [](const KVCache& c) { return c.recurrent.snapshot_interval; })
        .def("recurrent_state", [](KVCache& c, int64_t seq, int layer) {
            std::shared_lock<std::shared_mutex> lk(c.mu);
            const float* p = c.state(seq, layer);
            py::array_t<float> out(c.recurrent.state_floats);
            std::memcpy(out.mutable_data(), p, static_cast<size_t>(c.recurrent.state_floats) * sizeof(float));
            return out;
        }, py::arg("seq"), py::arg("layer"), "A copy of the live state of recurrent layer `layer` of seq.")
        .def("set_recurrent_state", [](KVCache& c, int64_t seq, int layer, py::handle value) {
            auto a = require_f32(value, "value");
            if (a.ndim() != 1 || a.shape(0) != c.recurrent.state_floats)
                throw py::value_error("value must be 1-D with recurrent_state_floats (" +
                                      std::to_string(c.recurrent.state_floats) + ") floats");
            std::unique_lock<std::shared_mutex> lk(c.mu);
            float* p = c.state(seq, layer);
            std::memcpy(p, a.data(), static_cast<size_t>(c.recurrent.state_floats) * sizeof(float));
        }, py::arg("seq"), py::arg("layer"), py::arg("value"), "Overwrites the live state of a recurrent layer of seq.")
        .def("snapshot", [](KVCache& c, int64_t seq) {
            std::unique_lock<std::shared_mutex> lk(c.mu);
            c.snapshot(seq);
        }, py::arg("seq"), "Keeps a snapshot of seq's recurrent state at its current length (truncate can go back to it).")
        .def("add_snapshot", [](KVCache& c, int64_t seq, int64_t pos, py::handle state) {
            auto a = require_f32(state, "state");
            if (a.ndim() != 1 || a.shape(0) != int64_t(c.recurrent.n_layers) * c.recurrent.state_floats)
                throw py::value_error("state must be 1-D with recurrent_layers * recurrent_state_floats (" +
                                      std::to_string(int64_t(c.recurrent.n_layers) * c.recurrent.state_floats) +
                                      ") floats");
            std::unique_lock<std::shared_mutex> lk(c.mu);
            c.add_snapshot(seq, pos, a.data());
        }, py::arg("seq"), py::arg("position"), py::arg("state"),
           "Keeps `state` as seq's recurrent state after `position` tokens (a snapshot truncate can go back to).")
        .def("snapshot_positions", [](const KVCache& c, int64_t seq) {
            std::shared_lock<std::shared_mutex> lk(c.mu);
            return c.snapshot_positions(seq);
        }, py::arg("seq"), "Positions truncate can go back to on a cache with recurrent layers (0 always).")
        .def_readonly("n_layers", &KVCache::n_layers)
        .def_readonly("n_kv_heads", &KVCache::n_kv_heads)
        .def_readonly("head_dim", &KVCache::head_dim)
        .def_readonly("block_tokens", &KVCache::block_tokens)
        .def_property_readonly("dtype", [](const KVCache& c) { return std::string(format_info(c.dtype).name); })
        .def_property_readonly("layer_windows", [](const KVCache& c) { return c.windows; })
        .def_property_readonly("capacity_tokens", [](const KVCache& c) { return c.n_blocks / c.n_layers * c.block_tokens; })
        .def("new_sequence", [](KVCache& c) {
            std::unique_lock<std::shared_mutex> lk(c.mu);
            return c.new_sequence();
        }, "A new empty sequence; returns its id.")
        .def("extend_batch", [](KVCache& c, std::vector<int64_t> seqs) {
            for (size_t i = 0; i < seqs.size(); ++i)
                for (size_t j = 0; j < i; ++j)
                    if (seqs[i] == seqs[j]) throw py::value_error("seqs must be distinct");
            std::unique_lock<std::shared_mutex> lk(c.mu);
            // all or nothing: every extend is planned (so validated) before the first one runs
            std::map<int32_t, int32_t> released;
            int64_t need = 0;
            for (int64_t s : seqs) need += c.plan_extend(s, 1, &released);
            if (need > c.free_blocks())
                throw KVCapacityError("KV cache is full: one token for each of " + std::to_string(seqs.size()) +
                                      " sequences needs " + std::to_string(need) + " blocks, " +
                                      std::to_string(c.free_blocks()) + " are free (nothing was changed)");
            for (int64_t s : seqs) c.extend(s, 1);
        }, py::arg("seqs"), "One more position for each of several distinct sequences, all or none.")
        .def("extend", [](KVCache& c, int64_t seq, int64_t n) {
            std::unique_lock<std::shared_mutex> lk(c.mu);
            c.extend(seq, n);
        }, py::arg("seq"), py::arg("n_tokens"),
           "Reserves the next n_tokens positions in every layer. The only operation that allocates: raises\n"
           "KVCacheFullError and changes nothing when the pool cannot hold them.")
        .def("write", &write_kv, py::arg("layer"), py::arg("seq"), py::arg("k"), py::arg("v"),
             "Fills the layer's reserved positions: k, v (n_tokens, n_kv_heads, head_dim) float32.")
        .def("append", [](KVCache& c, int layer, int64_t seq, py::handle k, py::handle v) {
            if (c.n_layers != 1) throw py::value_error("append is for single-layer caches; use extend + write per layer");
            Arr ka = require_kv(k, "k", c);
            Arr va = require_kv(v, "v", c);
            // every check write_kv makes comes before the reservation: undoing an extend by
            // truncation would not restore a copied-on-write tail or a window's freed tokens
            if (ka.shape(0) != va.shape(0)) throw py::value_error("k and v must have the same number of tokens");
            {
                std::unique_lock<std::shared_mutex> lk(c.mu);
                if (layer != 0) throw py::index_error("layer " + std::to_string(layer) + " is out of range (n_layers = 1)");
                c.extend(seq, ka.shape(0));
            }
            try {
                write_kv(c, layer, seq, k, v);
            } catch (...) {
                std::unique_lock<std::shared_mutex> lk(c.mu);
                c.truncate(seq, c.sequence(seq).length - ka.shape(0));  // undo the reservation
                throw;
            }
        }, py::arg("layer"), py::arg("seq"), py::arg("k"), py::arg("v"), "extend + write, for a single-layer cache.")
        .def("fork", [](KVCache& c, int64_t seq) {
            std::unique_lock<std::shared_mutex> lk(c.mu);
            return c.fork(seq);
        }, py::arg("seq"), "A new sequence sharing every block of seq (copy-on-write); returns its id.")
        .def("truncate", [](KVCache& c, int64_t seq, int64_t n) {
            std::unique_lock<std::shared_mutex> lk(c.mu);
            c.truncate(seq, n);
        }, py::arg("seq"), py::arg("n_tokens"), "Rolls seq back to its first n_tokens positions.")
        .def("free", [](KVCache& c, int64_t seq) {
            std::unique_lock<std::shared_mutex> lk(c.mu);
            c.free_sequence(seq);
        }, py::arg("seq"))
        .def("evict", [](KVCache& c, int64_t seq, int64_t n_sink, int64_t window) {
            std::unique_lock<std::shared_mutex> lk(c.mu);
            c.evict(seq, n_sink, window);
        }, py::arg("seq"), py::kw_only(), py::arg("n_sink"), py::arg("window"),
           "StreamingLLM eviction: keeps positions < n_sink and the newest `window` positions, in every layer.")
        .def("length", [](const KVCache& c, int64_t seq) {
            std::shared_lock<std::shared_mutex> lk(c.mu);
            return c.sequence(seq).length;
        }, py::arg("seq"), "Positions of seq (the next token's position).")
        .def("keys", [](const KVCache& c, int layer, int64_t seq) { return read_kv(c, layer, seq, false); },
             py::arg("layer"), py::arg("seq"), "Dequantized copy of the stored keys (n_stored, n_kv_heads, head_dim).")
        .def("values", [](const KVCache& c, int layer, int64_t seq) { return read_kv(c, layer, seq, true); },
             py::arg("layer"), py::arg("seq"), "Dequantized copy of the stored values.")
        .def("positions", [](const KVCache& c, int layer, int64_t seq) {
            std::shared_lock<std::shared_mutex> lk(c.mu);
            const int64_t n = c.stored(layer, seq);
            std::vector<float> k(n * c.n_kv_heads * c.head_dim), v(k.size());
            py::array_t<int64_t> pos(n);
            c.read(kernels(), layer, seq, k.data(), v.data(), pos.mutable_data());
            return pos;
        }, py::arg("layer"), py::arg("seq"), "Positions of the stored tokens (int64), in order.")
        .def("sequences", [](const KVCache& c) {
            std::shared_lock<std::shared_mutex> lk(c.mu);
            return c.sequence_ids();
        })
        .def("stats", [](const KVCache& c) {
            std::shared_lock<std::shared_mutex> lk(c.mu);
            const KVStats s = c.stats();
            py::dict d;
            d["blocks_total"] = s.blocks_total;
            d["blocks_used"] = s.blocks_used;
            d["blocks_free"] = s.blocks_free;
            d["block_bytes"] = s.block_bytes;
            d["block_tokens"] = c.block_tokens;
            d["bytes_total"] = s.blocks_total * s.block_bytes;
            d["bytes_used"] = s.blocks_used * s.block_bytes;
            d["bytes_per_token"] = s.bytes_per_token;
            d["sequences"] = s.sequences;
            d["state_bytes_per_sequence"] = s.state_bytes_per_sequence;
            d["snapshots"] = s.snapshots;
            d["snapshot_bytes"] = s.snapshot_bytes;
            return d;
        }, "Blocks used/free, bytes, bytes per cached token (all layers, K and V); recurrent state bytes of "
           "one sequence, snapshots kept and their bytes.")
        .def("save", [](const KVCache& c, int64_t seq, py::object path) {
            std::vector<uint8_t> buf;
            {
                std::shared_lock<std::shared_mutex> lk(c.mu);
                buf = c.save(seq);
            }
            py::bytes b(reinterpret_cast<const char*>(buf.data()), buf.size());
            py::object f = py::module_::import("builtins").attr("open")(checked_path(path), "wb");
            try {
                f.attr("write")(b);
            } catch (...) {
                f.attr("close")();
                throw;
            }
            f.attr("close")();
        }, py::arg("seq"), py::arg("path"), "Writes seq to a versioned, checksummed file.")
        .def("restore", [](KVCache& c, py::object path) {
            py::object f = py::module_::import("builtins").attr("open")(checked_path(path), "rb");
            py::bytes b;
            try {
                b = f.attr("read")();
            } catch (...) {
                f.attr("close")();
                throw;
            }
            f.attr("close")();
            std::string_view sv = b;
            std::unique_lock<std::shared_mutex> lk(c.mu);
            return c.restore(reinterpret_cast<const uint8_t*>(sv.data()), sv.size());
        }, py::arg("path"),
           "A new sequence read from a file written by save(). The file is validated whole (magic, version,\n"
           "geometry, checksum, sizes, capacity) before anything changes; raises KVCacheFileError otherwise.")
        .def("_block_table", [](const KVCache& c, int layer, int64_t seq) {
            std::shared_lock<std::shared_mutex> lk(c.mu);
            if (layer < 0 || layer >= c.n_layers) throw py::index_error("layer out of range");
            py::list out;
            for (const KVEntry& e : c.sequence(seq).layers[layer].entries)
                out.append(py::make_tuple(e.block, e.lo, e.hi, e.pos0));
            return out;
        }, py::arg("layer"), py::arg("seq"), "(block, lo, hi, pos0) entries (for tests).")
        .def("_refcount", [](const KVCache& c, int32_t block) {
            std::shared_lock<std::shared_mutex> lk(c.mu);
            if (block < 0 || block >= c.n_blocks) throw py::index_error("block out of range");
            return c.refcount(block);
        }, py::arg("block"));

    m.def(
        "attention",
        [](py::handle q, KVCache& cache, int layer, int64_t seq, py::object scale, py::object window, py::object softcap,
           py::object sinks, py::object out) {
            ArrayKind qk;
            Arr qa = query_array(q, cache, &qk);
            AttnArgs a = parse_options(qa.shape(1), scale, window, softcap, sinks);
            checked_attention(cache, layer, seq, qa.shape(0), qa.shape(1), a.opt);
            OutArg oa = output_array(out, qa, a);
            const float* qp = qa.data();
            float* op = oa.f32.mutable_data();
            const int64_t T = qa.shape(0), H = qa.shape(1);
            {
                py::gil_scoped_release rel;
                std::shared_lock<std::shared_mutex> lk(cache.mu);
                attention(kernels(), cache, layer, seq, qp, T, H, a.opt, op);
            }
            return attention_result(out, oa, qk);
        },
        py::arg("q"), py::arg("cache"), py::arg("layer"), py::arg("seq"), py::kw_only(), py::arg("scale") = py::none(),
        py::arg("window") = py::none(), py::arg("softcap") = py::none(), py::arg("sinks") = py::none(),
        py::arg("out") = py::none(),
        "Causal attention of q (q_tokens, n_heads, head_dim) float32, the newest q_tokens positions of seq,\n"
        "over the cached tokens of `layer` (GQA: n_heads a multiple of n_kv_heads).\n"
        "scale: default 1/sqrt(head_dim). window: key visible iff q_pos - k_pos < window (default: the layer's).\n"
        "softcap: s = softcap*tanh(s/softcap). sinks: (n_heads,) learned sink logits (gpt-oss): an extra\n"
        "logit in each head's softmax denominator with a zero value. StreamingLLM sink *tokens* are\n"
        "KVCache.evict(n_sink=...). A row that sees nothing gives zeros.");
    m.def(
        "attention_dense",
        [](py::handle q, py::handle k, py::handle v, py::object scale, py::object window, py::object softcap,
           py::object sinks, py::object out) {
            ArrayKind qk;
            Arr qa = require_f32(q, "q", &qk);
            if (qa.ndim() != 3) throw py::value_error("q must be 3-D (q_tokens, n_heads, head_dim)");
            ElemType ke, ve;
            py::array ka = dense_kv(k, "k", &ke), va = dense_kv(v, "v", &ve);
            for (int d = 0; d < 3; ++d)
                if (ka.shape(d) != va.shape(d)) throw py::value_error("k and v must have the same shape (kv_tokens, n_kv_heads, head_dim)");
            if (ke != ve) throw py::type_error("k and v must have the same dtype");
            if (ka.strides(0) != va.strides(0) || ka.strides(1) != va.strides(1)) {  // one row stride for both
                ka = py::array::ensure(ka, py::array::c_style | kNpyAligned);
                va = py::array::ensure(va, py::array::c_style | kNpyAligned);
            }
            const int64_t S = ka.shape(0), G = ka.shape(1), D = ka.shape(2), T = qa.shape(0), H = qa.shape(1);
            if (qa.shape(2) != D) throw py::value_error("q has head_dim " + std::to_string(qa.shape(2)) + ", k and v have " + std::to_string(D));
            if (T < 1 || H < 1) throw py::value_error("q must not be empty");
            if (H % G != 0)
                throw py::value_error("q has " + std::to_string(H) + " heads, not a multiple of k's n_kv_heads (" + std::to_string(G) + ")");
            if (T > S)
                throw py::value_error("q has " + std::to_string(T) + " tokens but k holds " + std::to_string(S) +
                                      " (q is for the newest positions)");
            AttnArgs a = parse_options(H, scale, window, softcap, sinks);
            OutArg oa = output_array(out, qa, a);
            float* op = oa.f32.mutable_data();
            for (const py::array* kv : {&ka, &va}) {
                const auto [lo, hi] = extent(*kv);
                const char* o0 = reinterpret_cast<const char*>(op);
                if (o0 < hi && lo < o0 + oa.f32.nbytes()) throw py::value_error("out must not overlap k or v");
            }
            DenseKV d;
            d.format = ke == ElemType::F32 ? Format::F32 : Format::F16;
            d.k = static_cast<const uint8_t*>(ka.data());
            d.v = static_cast<const uint8_t*>(va.data());
            d.tokens = S;
            d.n_kv_heads = G;
            d.head_dim = D;
            d.token_stride = ka.strides(0);
            d.head_stride = ka.strides(1);
            const float* qp = qa.data();
            {
                py::gil_scoped_release rel;
                attention_dense(kernels(), d, qp, T, H, a.opt, op);
            }
            return attention_result(out, oa, qk);
        },
        py::arg("q"), py::arg("k"), py::arg("v"), py::kw_only(), py::arg("scale") = py::none(),
        py::arg("window") = py::none(), py::arg("softcap") = py::none(), py::arg("sinks") = py::none(),
        py::arg("out") = py::none(),
        "Causal attention of q (q_tokens, n_heads, head_dim) over caller-owned dense k, v (kv_tokens,\n"
        "n_kv_heads, head_dim) at positions 0..kv_tokens-1, q the newest q_tokens of them (GQA: n_heads a\n"
        "multiple of n_kv_heads). k and v are read in place (float32 or float16, any strides with a\n"
        "contiguous last axis, e.g. a transposed (n_kv_heads, kv_tokens, head_dim) array); bfloat16 is\n"
        "widened to a float32 copy. Options as attention(); the same bits as attention() over a KVCache\n"
        "of the same dtype holding k and v.");
    m.def(
        "attention_batch",
        [](py::handle q, KVCache& cache, int layer, std::vector<int64_t> seqs, py::object scale, py::object window,
           py::object softcap, py::object sinks, py::object out) {
            ArrayKind qk;
            Arr qa = query_array(q, cache, &qk);
            if (static_cast<int64_t>(seqs.size()) != qa.shape(0))
                throw py::value_error("q must have one token per sequence: q_tokens " + std::to_string(qa.shape(0)) +
                                      " != len(seqs) " + std::to_string(seqs.size()));
            AttnArgs a = parse_options(qa.shape(1), scale, window, softcap, sinks);
            for (int64_t s : seqs) checked_attention(cache, layer, s, 1, qa.shape(1), a.opt);
            OutArg oa = output_array(out, qa, a);
            const float* qp = qa.data();
            float* op = oa.f32.mutable_data();
            const int64_t H = qa.shape(1);
            {
                py::gil_scoped_release rel;
                std::shared_lock<std::shared_mutex> lk(cache.mu);
                attention_batch(kernels(), cache, layer, seqs.data(), static_cast<int64_t>(seqs.size()), qp, H, a.opt, op);
            }
            return attention_result(out, oa, qk);
        },
        py::arg("q"), py::arg("cache"), py::arg("layer"), py::arg("seqs"), py::kw_only(), py::arg("scale") = py::none(),
        py::arg("window") = py::none(), py::arg("softcap") = py::none(), py::arg("sinks") = py::none(),
        py::arg("out") = py::none(),
        "Batched decode: q (n_seqs, n_heads, head_dim), one newest-position query per sequence in seqs.\n"
        "Each row equals attention(q[i:i+1], cache, layer, seqs[i]) bit for bit.");
}

}  // namespace slmk
