// ---- _core.Transformer: the decoder step in C++, built by slmkernels/model/runtime.py ----
#include <pybind11/stl.h>

#include <mutex>

#include "bindings.h"
#include "gemm/gemm_driver.h"
#include "model/transformer.h"

namespace slmk {

namespace {

struct PyTransformer {
    Transformer t;
    py::list keep;  // the Python objects whose memory t points into (packed weights, the embedding map)
    // t's scratch buffers serve one step at a time: steps from several Python threads run one
    // after another. Taken after the GIL is released (a holder never needs the GIL).
    std::mutex step;
};

std::vector<float> f32_vector(py::handle a, const char* what) {
    auto arr = py::array_t<float, py::array::c_style | py::array::forcecast | kNpyAligned>::ensure(a);
    if (!arr || arr.ndim() != 1) throw py::value_error(std::string(what) + " must be a 1-D float array");
    return std::vector<float>(arr.data(), arr.data() + arr.shape(0));
}

std::vector<const PackedMatrix*> packed_list(py::handle seq, py::list& keep, const char* what) {
    std::vector<const PackedMatrix*> out;
    for (py::handle h : seq) {
        if (!py::isinstance<PackedWeights>(h)) throw py::type_error(std::string(what) + " must hold PackedWeights");
        out.push_back(h.cast<const PackedWeights&>().m.get());
        keep.append(h);
    }
    if (out.empty()) throw py::value_error(std::string(what) + " is empty");
    return out;
}

}  // namespace

void bind_model(py::module_& m) {
    py::class_<PyTransformer>(m, "Transformer",
                              "A Llama-family decoder whose whole step runs in C++ (built by slmkernels.Model).")
        .def(py::init([](py::dict cfg, py::list layers, py::handle out_norm, py::handle head, py::handle embd,
                         py::dict rope) {
            auto p = std::make_unique<PyTransformer>();
            Transformer& t = p->t;
            t.cfg.n_heads = cfg["n_heads"].cast<int>();
            t.cfg.n_kv_heads = cfg["n_kv_heads"].cast<int>();
            t.cfg.head_dim = cfg["head_dim"].cast<int>();
            t.cfg.hidden = cfg["hidden"].cast<int>();
            t.cfg.ffn = cfg["ffn"].cast<int>();
            t.cfg.vocab = cfg["vocab"].cast<int>();
            t.cfg.eps = cfg["eps"].cast<float>();
            t.cfg.embedding_scale = cfg["embedding_scale"].cast<float>();
            t.cfg.residual_scale = cfg["residual_scale"].cast<float>();
            t.cfg.attention_scale = cfg["attention_scale"].cast<float>();
            t.cfg.logit_scale = cfg["logit_scale"].cast<float>();
            t.cfg.window = cfg["window"].cast<int64_t>();
            for (py::handle lh : layers) {
                py::dict d = lh.cast<py::dict>();
                TransformerLayer L;
                L.attn_norm = f32_vector(d["attn_norm"], "attn_norm");
                L.ffn_norm = f32_vector(d["ffn_norm"], "ffn_norm");
                if (!d["qkv_bias"].is_none()) L.qkv_bias = f32_vector(d["qkv_bias"], "qkv_bias");
                L.qkv = packed_list(d["qkv"], p->keep, "qkv");
                L.wo = packed_list(py::make_tuple(d["wo"]), p->keep, "wo")[0];
                L.gate_up = packed_list(d["gate_up"], p->keep, "gate_up");
                L.down = packed_list(py::make_tuple(d["down"]), p->keep, "down")[0];
                t.layers.push_back(std::move(L));
            }
            t.out_norm = f32_vector(out_norm, "out_norm");
            t.head = packed_list(py::make_tuple(head), p->keep, "head")[0];
            const QuantizedTensor& e = embd.cast<const QuantizedTensor&>();
            if (e.rows != t.cfg.vocab || e.cols != t.cfg.hidden) throw py::value_error("embedding shape mismatch");
            t.embd = e.data;
            t.embd_format = e.format;
            p->keep.append(embd);
            RopeConfig rc;
            rc.theta_base = rope["theta"].cast<double>();
            rc.rotary_dim = rope["rotary_dim"].cast<int>();
            rc.mode = rope["mode"].cast<std::string>() == "neox" ? RopeMode::Neox : RopeMode::Normal;
            rc.freq_scale = rope["freq_scale"].cast<double>();
            rc.ext_factor = rope["ext_factor"].cast<double>();
            rc.attn_factor = rope["attn_factor"].cast<double>();
            rc.beta_fast = rope["beta_fast"].cast<double>();
            rc.beta_slow = rope["beta_slow"].cast<double>();
            rc.n_ctx_orig = rope["original_context"].cast<double>();
            if (!rope["freq_factors"].is_none())
                for (float f : f32_vector(rope["freq_factors"], "freq_factors")) rc.freq_factors.push_back(f);
            t.rope = rope_table(rc);
            return p;
        }))
        .def(
            "forward",
            [](PyTransformer& self, KVCache& cache, int64_t seq, py::handle ids, bool all_logits) {
                auto a = py::array_t<int64_t, py::array::c_style | py::array::forcecast | kNpyAligned>::ensure(ids);
                if (!a || a.ndim() != 1 || a.shape(0) == 0) throw py::value_error("ids must be a non-empty 1-D int array");
                const int64_t T = a.shape(0);
                for (int64_t i = 0; i < T; ++i)
                    if (a.at(i) < 0 || a.at(i) >= self.t.cfg.vocab)
                        throw py::value_error("token ids must be in 0.." + std::to_string(self.t.cfg.vocab - 1));
                py::array_t<float> out = all_logits ? py::array_t<float>({T, int64_t(self.t.cfg.vocab)})
                                                    : py::array_t<float>({int64_t(self.t.cfg.vocab)});
                float* o = out.mutable_data();
                const int64_t* idp = a.data();
                {
                    py::gil_scoped_release rel;
                    std::lock_guard<std::mutex> lk(self.step);
                    self.t.forward(cache, seq, idp, T, all_logits, o);
                }
                return out;
            },
            py::arg("cache"), py::arg("seq"), py::arg("ids"), py::arg("all_logits") = false)
        .def(
            "forward_batch",
            [](PyTransformer& self, KVCache& cache, py::handle seqs, py::handle ids) {
                auto s = py::array_t<int64_t, py::array::c_style | py::array::forcecast | kNpyAligned>::ensure(seqs);
                auto a = py::array_t<int64_t, py::array::c_style | py::array::forcecast | kNpyAligned>::ensure(ids);
                if (!s || !a || s.ndim() != 1 || a.ndim() != 1 || s.shape(0) != a.shape(0) || s.shape(0) == 0)
                    throw py::value_error("seqs and ids must be 1-D, non-empty and of the same length");
                const int64_t n = a.shape(0);
                for (int64_t i = 0; i < n; ++i) {
                    if (a.at(i) < 0 || a.at(i) >= self.t.cfg.vocab)
                        throw py::value_error("token ids must be in 0.." + std::to_string(self.t.cfg.vocab - 1));
                    for (int64_t j = 0; j < i; ++j)
                        if (s.at(i) == s.at(j)) throw py::value_error("seqs must be distinct");
                }
                py::array_t<float> out({n, int64_t(self.t.cfg.vocab)});
                float* o = out.mutable_data();
                const int64_t* sp = s.data();
                const int64_t* idp = a.data();
                {
                    py::gil_scoped_release rel;
                    std::lock_guard<std::mutex> lk(self.step);
                    self.t.forward_batch(cache, sp, idp, n, o);
                }
                return out;
            },
            py::arg("cache"), py::arg("seqs"), py::arg("ids"));
}

}  // namespace slmk
