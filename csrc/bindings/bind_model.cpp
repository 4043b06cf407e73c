// ---- the model step: its typed description (spec.h) and _core.Transformer ----
// slmkernels/model/config.py builds a ModelSpec (one LayerSpec per layer) from the GGUF
// metadata; slmkernels/model/runtime.py adds each layer's LayerWeights and builds the
// Transformer. The classes are plain typed records: no string-keyed dicts are parsed here.
#include <pybind11/stl.h>
#include <pybind11/stl_bind.h>

#include <mutex>
#include <sstream>

#include "bindings.h"
#include "gemm/gemm_driver.h"
#include "model/transformer.h"

PYBIND11_MAKE_OPAQUE(std::vector<slmk::LayerSpec>);

namespace slmk {

namespace {

struct PyTransformer {
    std::unique_ptr<Transformer> t;
    py::object embd_owner;  // the QuantizedTensor whose memory (an mmap of the file) t reads
    // t's scratch buffers serve one step at a time: steps from several Python threads run one
    // after another. Taken after the GIL is released (a holder never needs the GIL).
    std::mutex step;
};

std::vector<float> f32_vector(py::handle a, const char* what) {
    if (a.is_none()) return {};
    auto arr = py::array_t<float, py::array::c_style | py::array::forcecast | kNpyAligned>::ensure(a);
    if (!arr || arr.ndim() != 1) throw py::value_error(std::string(what) + " must be a 1-D float array or None");
    return std::vector<float>(arr.data(), arr.data() + arr.shape(0));
}

py::object f32_array(const std::vector<float>& v) {
    if (v.empty()) return py::none();
    return py::array_t<float>(static_cast<py::ssize_t>(v.size()), v.data());
}

std::shared_ptr<const PackedMatrix> packed(py::handle h, const char* what) {
    if (h.is_none()) return nullptr;
    if (!py::isinstance<PackedWeights>(h)) throw py::type_error(std::string(what) + " must be PackedWeights");
    return h.cast<const PackedWeights&>().m;
}

std::vector<std::shared_ptr<const PackedMatrix>> packed_list(py::handle seq, const char* what) {
    std::vector<std::shared_ptr<const PackedMatrix>> out;
    if (py::isinstance<PackedWeights>(seq)) {
        out.push_back(packed(seq, what));
        return out;
    }
    if (!py::isinstance<py::sequence>(seq))
        throw py::type_error(std::string(what) + " must be PackedWeights or a list of them");
    for (py::handle h : seq) out.push_back(packed(h, what));
    return out;
}

py::object packed_or_none(const std::shared_ptr<const PackedMatrix>& m) {
    return m ? py::cast(PackedWeights{std::const_pointer_cast<PackedMatrix>(m)}) : py::none();
}

py::list packed_py(const std::vector<std::shared_ptr<const PackedMatrix>>& v) {
    py::list out;
    for (const auto& m : v) out.append(PackedWeights{std::const_pointer_cast<PackedMatrix>(m)});
    return out;
}

const char* scaling_name(RopeScaling s) {
    switch (s) {
        case RopeScaling::None: return "none";
        case RopeScaling::Linear: return "linear";
        case RopeScaling::Yarn: return "yarn";
        case RopeScaling::Llama3: return "llama3";
        case RopeScaling::LongRope: return "longrope";
    }
    return "?";
}

std::string repr(const Mamba2Spec& s) {
    return "Mamba2Spec(heads=" + std::to_string(s.n_heads) + ", head_dim=" + std::to_string(s.head_dim) +
           ", d_state=" + std::to_string(s.d_state) + ", groups=" + std::to_string(s.n_groups) +
           ", d_conv=" + std::to_string(s.d_conv) + ")";
}

std::string repr(const AttentionSpec& a) {
    std::ostringstream o;
    o << "AttentionSpec(heads=" << a.n_heads << ", kv_heads=" << a.n_kv_heads << ", head_dim=" << a.head_dim;
    if (a.rope)
        o << ", rope=(base=" << a.rope_spec.base << ", dims=" << a.rope_spec.rotary_dim << ", "
          << (a.rope_spec.mode == RopeMode::Neox ? "neox" : "normal") << ", " << scaling_name(a.rope_spec.scaling)
          << ")";
    else
        o << ", rope=None";
    if (a.window) o << ", window=" << a.window;
    o << ", scale=" << a.scale;
    if (a.softcap) o << ", softcap=" << a.softcap;
    return o.str() + ")";
}

// A typed float/int field of a record: rejects bool and non-numbers with a TypeError naming it.
template <typename C, typename T>
void num_field(py::class_<C>& cls, const char* name, T C::*member, const char* doc) {
    cls.def_property(
        name, [member](const C& c) { return c.*member; },
        [member, name](C& c, py::handle v) {
            if constexpr (std::is_integral_v<T>) c.*member = static_cast<T>(int_arg(v, name));
            else c.*member = static_cast<T>(float_arg(v, name));
        },
        doc);
}

}  // namespace

void bind_model(py::module_& m) {
    py::enum_<RopeMode>(m, "RopeMode", "Which dimensions RoPE rotates together")
        .value("normal", RopeMode::Normal, "pairs (2i, 2i+1): GGUF llama, granite, smollm3")
        .value("neox", RopeMode::Neox, "pairs (i, i + rotary_dim/2): qwen2/3, phi3, gemma3");
    py::enum_<RopeScaling>(m, "RopeScaling", "How a RoPE extends its context")
        .value("none", RopeScaling::None)
        .value("linear", RopeScaling::Linear)
        .value("yarn", RopeScaling::Yarn)
        .value("llama3", RopeScaling::Llama3)
        .value("longrope", RopeScaling::LongRope);
    py::enum_<LayerKind>(m, "LayerKind", "What mixes tokens in a layer")
        .value("attention", LayerKind::Attention, "attention over the KV cache")
        .value("mamba2", LayerKind::Mamba2, "a Mamba-2 state-space mixer over the cache's recurrent state");
    py::enum_<FfnActivation>(m, "FfnActivation", "The gated FFN's activation")
        .value("silu", FfnActivation::SiLU, "SwiGLU: silu(gate) * up")
        .value("gelu_tanh", FfnActivation::GeluTanh, "GeGLU: gelu_tanh(gate) * up")
        .value("relu", FfnActivation::ReLU, "ReGLU: relu(gate) * up");

    py::class_<RopeSpec> rope(m, "RopeSpec", "A layer's RoPE: base, rotary dims, pairing and context scaling");
    rope.def(py::init<>());
    num_field(rope, "base", &RopeSpec::base, "theta base");
    num_field(rope, "rotary_dim", &RopeSpec::rotary_dim, "rotated dims per head (even, <= head_dim)");
    rope.def_readwrite("mode", &RopeSpec::mode).def_readwrite("scaling", &RopeSpec::scaling);
    num_field(rope, "factor", &RopeSpec::factor, "linear / yarn / llama3 context factor");
    num_field(rope, "original_context", &RopeSpec::original_context, "yarn / llama3 / longrope original context");
    num_field(rope, "ext_factor", &RopeSpec::ext_factor, "yarn extrapolation mix");
    num_field(rope, "attn_factor", &RopeSpec::attn_factor, "cos/sin magnitude (rope.scaling.attn_factor)");
    num_field(rope, "beta_fast", &RopeSpec::beta_fast, "yarn ramp");
    num_field(rope, "beta_slow", &RopeSpec::beta_slow, "yarn ramp");
    num_field(rope, "low_freq_factor", &RopeSpec::low_freq_factor, "llama3 smoothing band");
    num_field(rope, "high_freq_factor", &RopeSpec::high_freq_factor, "llama3 smoothing band");
    rope.def_readwrite("freq_factors", &RopeSpec::freq_factors,
                       "per-pair divisors (rope_freqs.weight; longrope: the short factors)")
        .def_readwrite("long_factors", &RopeSpec::long_factors, "longrope: per-pair divisors past original_context")
        .def("__repr__", [](const RopeSpec& r) {
            std::ostringstream o;
            o << "RopeSpec(base=" << r.base << ", rotary_dim=" << r.rotary_dim << ", mode="
              << (r.mode == RopeMode::Neox ? "neox" : "normal") << ", scaling=" << scaling_name(r.scaling) << ")";
            return o.str();
        });

    py::class_<AttentionSpec> attn(m, "AttentionSpec", "A layer's attention: heads, RoPE (or NoPE), window, scale");
    attn.def(py::init<>());
    num_field(attn, "n_heads", &AttentionSpec::n_heads, "query heads");
    num_field(attn, "n_kv_heads", &AttentionSpec::n_kv_heads, "key/value heads");
    num_field(attn, "head_dim", &AttentionSpec::head_dim, "values per head");
    attn.def_readwrite("rope", &AttentionSpec::rope, "False: a NoPE layer")
        .def_readwrite("rope_spec", &AttentionSpec::rope_spec);
    num_field(attn, "window", &AttentionSpec::window, "sliding window (0: none)");
    num_field(attn, "scale", &AttentionSpec::scale, "q.k scale (0: 1/sqrt(head_dim))");
    num_field(attn, "softcap", &AttentionSpec::softcap, "attention logit soft-cap (0: none)");
    attn.def("__repr__", [](const AttentionSpec& a) { return repr(a); });

    py::class_<Mamba2Spec> mamba(m, "Mamba2Spec", "A layer's Mamba-2 mixer: SSM heads, state size, groups, conv taps");
    mamba.def(py::init<>());
    num_field(mamba, "n_heads", &Mamba2Spec::n_heads, "SSM heads (ssm.time_step_rank)");
    num_field(mamba, "head_dim", &Mamba2Spec::head_dim, "values per SSM head (ssm.inner_size / n_heads)");
    num_field(mamba, "d_state", &Mamba2Spec::d_state, "state size (ssm.state_size)");
    num_field(mamba, "n_groups", &Mamba2Spec::n_groups, "B/C groups (ssm.group_count)");
    num_field(mamba, "d_conv", &Mamba2Spec::d_conv, "conv taps (ssm.conv_kernel)");
    mamba.def_property_readonly("d_inner", &Mamba2Spec::d_inner)
        .def_property_readonly("conv_dim", &Mamba2Spec::conv_dim)
        .def_property_readonly("d_in_proj", &Mamba2Spec::d_in_proj)
        .def_property_readonly("state_floats", &Mamba2Spec::state_floats, "one sequence's conv + SSM state")
        .def("__repr__", [](const Mamba2Spec& s) { return repr(s); });

    py::class_<LayerSpec> layer(m, "LayerSpec", "One layer of the step: its kind and hyperparameters");
    layer.def(py::init<>())
        .def_readwrite("kind", &LayerSpec::kind)
        .def_readwrite("attention", &LayerSpec::attention, "attention layers")
        .def_readwrite("mamba2", &LayerSpec::mamba2, "Mamba-2 layers")
        .def_readwrite("activation", &LayerSpec::activation);
    num_field(layer, "ffn", &LayerSpec::ffn, "gated FFN inner size");
    layer.def("__repr__", [](const LayerSpec& l) {
        const char* act = l.activation == FfnActivation::SiLU       ? "silu"
                          : l.activation == FfnActivation::GeluTanh ? "gelu_tanh"
                                                                     : "relu";
        const std::string mixer =
            l.kind == LayerKind::Mamba2 ? "mamba2=" + repr(l.mamba2) : "attention=" + repr(l.attention);
        return "LayerSpec(" + mixer + ", ffn=" + std::to_string(l.ffn) + ", " + act + ")";
    });
    py::bind_vector<std::vector<LayerSpec>>(m, "LayerSpecList");
    py::implicitly_convertible<py::list, std::vector<LayerSpec>>();

    py::class_<ModelSpec> model(m, "ModelSpec", "The whole step: model-wide scales and one LayerSpec per layer");
    model.def(py::init<>());
    num_field(model, "hidden", &ModelSpec::hidden, "embedding width");
    num_field(model, "vocab", &ModelSpec::vocab, "vocabulary size");
    num_field(model, "eps", &ModelSpec::eps, "RMSNorm epsilon");
    num_field(model, "embedding_scale", &ModelSpec::embedding_scale, "x = embedding * embedding_scale");
    num_field(model, "residual_scale", &ModelSpec::residual_scale, "x += residual_scale * branch");
    num_field(model, "logit_scale", &ModelSpec::logit_scale, "logits = head(x) / logit_scale");
    num_field(model, "final_logit_softcap", &ModelSpec::final_logit_softcap, "logits = cap tanh(logits / cap)");
    model.def_readwrite("ssm_chunked_prefill", &ModelSpec::ssm_chunked_prefill,
                        "Mamba-2 layers: prompts run the chunked scan (off: the token-by-token recurrence)")
        .def_readwrite("layers", &ModelSpec::layers)
        .def("__repr__", [](const ModelSpec& s) {
            return "ModelSpec(hidden=" + std::to_string(s.hidden) + ", vocab=" + std::to_string(s.vocab) + ", " +
                   std::to_string(s.layers.size()) + " layers)";
        });

    // LayerWeights: float vectors as 1-D arrays (None: absent), matrices as PackedWeights.
    py::class_<LayerWeights> lw(m, "LayerWeights", "One layer's weights (None: the layer has no such tensor)");
    lw.def(py::init<>());
#define SLMK_VEC(name)                                                                                   \
    lw.def_property(                                                                                     \
        #name, [](const LayerWeights& w) { return f32_array(w.name); },                                  \
        [](LayerWeights& w, py::handle v) { w.name = f32_vector(v, #name); })
    SLMK_VEC(attn_norm);
    SLMK_VEC(q_norm);
    SLMK_VEC(k_norm);
    SLMK_VEC(qkv_bias);
    SLMK_VEC(wo_bias);
    SLMK_VEC(post_attention_norm);
    SLMK_VEC(ffn_norm);
    SLMK_VEC(gate_up_bias);
    SLMK_VEC(down_bias);
    SLMK_VEC(post_ffn_norm);
#undef SLMK_VEC
#define SLMK_MVEC(name, field, doc)                                                                      \
    lw.def_property(                                                                                     \
        name, [](const LayerWeights& w) { return f32_array(w.mamba2.field); },                           \
        [](LayerWeights& w, py::handle v) { w.mamba2.field = f32_vector(v, name); }, doc)
    SLMK_MVEC("ssm_conv1d", conv_w, "Mamba-2 conv taps (d_conv * conv_dim), tap-major: tap d_conv-1 the newest");
    SLMK_MVEC("ssm_conv1d_bias", conv_b, "Mamba-2 conv bias (conv_dim)");
    SLMK_MVEC("ssm_dt_bias", dt_bias, "Mamba-2 time-step bias (n_heads)");
    SLMK_MVEC("ssm_a", A, "Mamba-2 A = -exp(A_log) (n_heads)");
    SLMK_MVEC("ssm_d", D, "Mamba-2 skip D (n_heads)");
    SLMK_MVEC("ssm_norm", norm, "Mamba-2 gated RMSNorm weight (d_inner)");
#undef SLMK_MVEC
    lw.def_property(
          "qkv", [](const LayerWeights& w) { return packed_py(w.qkv); },
          [](LayerWeights& w, py::handle v) { w.qkv = packed_list(v, "qkv"); }, "[fused q;k;v] or [q, k, v]")
        .def_property(
            "gate_up", [](const LayerWeights& w) { return packed_py(w.gate_up); },
            [](LayerWeights& w, py::handle v) { w.gate_up = packed_list(v, "gate_up"); }, "[fused gate;up] or [gate, up]")
        .def_property(
            "wo", [](const LayerWeights& w) { return w.wo ? py::cast(PackedWeights{std::const_pointer_cast<PackedMatrix>(w.wo)}) : py::none(); },
            [](LayerWeights& w, py::handle v) { w.wo = packed(v, "wo"); })
        .def_property(
            "down", [](const LayerWeights& w) { return w.down ? py::cast(PackedWeights{std::const_pointer_cast<PackedMatrix>(w.down)}) : py::none(); },
            [](LayerWeights& w, py::handle v) { w.down = packed(v, "down"); })
        .def_property(
            "ssm_in", [](const LayerWeights& w) { return packed_or_none(w.mamba2.in_proj); },
            [](LayerWeights& w, py::handle v) { w.mamba2.in_proj = packed(v, "ssm_in"); }, "Mamba-2 in_proj (d_in_proj, hidden)")
        .def_property(
            "ssm_out", [](const LayerWeights& w) { return packed_or_none(w.mamba2.out_proj); },
            [](LayerWeights& w, py::handle v) { w.mamba2.out_proj = packed(v, "ssm_out"); }, "Mamba-2 out_proj (hidden, d_inner)");

    py::class_<PyTransformer>(m, "Transformer", "A decoder whose whole step runs in C++ (built by slmkernels.Model).")
        .def(py::init([](const ModelSpec& spec, py::sequence layers, py::handle out_norm, py::handle head,
                         py::handle head_bias, py::handle embd, int64_t n_ctx) {
                 std::vector<LayerWeights> lws;
                 for (py::handle h : layers) {
                     if (!py::isinstance<LayerWeights>(h)) throw py::type_error("layers must hold LayerWeights");
                     lws.push_back(h.cast<const LayerWeights&>());
                 }
                 if (!py::isinstance<QuantizedTensor>(embd)) throw py::type_error("embd must be a QuantizedTensor");
                 const QuantizedTensor& e = embd.cast<const QuantizedTensor&>();
                 if (e.rows != spec.vocab || e.cols != spec.hidden)
                     throw py::value_error("the embedding table must be (vocab, hidden) = (" +
                                           std::to_string(spec.vocab) + ", " + std::to_string(spec.hidden) + ")");
                 if (n_ctx < 1) throw py::value_error("n_ctx must be >= 1");
                 auto p = std::make_unique<PyTransformer>();
                 p->t = std::make_unique<Transformer>(spec, std::move(lws), f32_vector(out_norm, "out_norm"),
                                                      packed(head, "head"), f32_vector(head_bias, "head_bias"),
                                                      e.format, e.data, n_ctx);
                 p->embd_owner = py::reinterpret_borrow<py::object>(embd);
                 // the table's rows are read from an mmap of the file: their pages go again after use
                 p->t->set_embedding_release(file_page_ranges(e.data, e.nbytes));
                 return p;
             }),
             py::arg("spec"), py::arg("layers"), py::arg("out_norm"), py::arg("head"), py::arg("head_bias"),
             py::arg("embd"), py::arg("n_ctx"))
        .def_property_readonly("spec", [](const PyTransformer& self) { return self.t->spec(); })
        .def_property_readonly("n_attention_layers", [](const PyTransformer& self) { return self.t->n_attention_layers(); },
                               "layers of the KV cache it runs on")
        .def_property_readonly("n_recurrent_layers", [](const PyTransformer& self) { return self.t->n_recurrent_layers(); },
                               "recurrent (Mamba-2) layers of the KV cache it runs on")
        .def_property_readonly("state_floats", [](const PyTransformer& self) { return self.t->state_floats(); },
                               "floats of one recurrent layer's state (0: none)")
        .def(
            "forward",
            [](PyTransformer& self, KVCache& cache, int64_t seq, py::handle ids, bool all_logits) {
                auto a = py::array_t<int64_t, py::array::c_style | py::array::forcecast | kNpyAligned>::ensure(ids);
                if (!a || a.ndim() != 1 || a.shape(0) == 0) throw py::value_error("ids must be a non-empty 1-D int array");
                const int64_t T = a.shape(0);
                const int vocab = self.t->spec().vocab;
                for (int64_t i = 0; i < T; ++i)
                    if (a.at(i) < 0 || a.at(i) >= vocab)
                        throw py::value_error("token ids must be in 0.." + std::to_string(vocab - 1));
                self.t->check_cache(cache);
                py::array_t<float> out =
                    all_logits ? py::array_t<float>({T, int64_t(vocab)}) : py::array_t<float>({int64_t(vocab)});
                float* o = out.mutable_data();
                const int64_t* idp = a.data();
                {
                    py::gil_scoped_release rel;
                    std::lock_guard<std::mutex> lk(self.step);
                    self.t->forward(cache, seq, idp, T, all_logits, o);
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
                const int vocab = self.t->spec().vocab;
                for (int64_t i = 0; i < n; ++i) {
                    if (a.at(i) < 0 || a.at(i) >= vocab)
                        throw py::value_error("token ids must be in 0.." + std::to_string(vocab - 1));
                    for (int64_t j = 0; j < i; ++j)
                        if (s.at(i) == s.at(j)) throw py::value_error("seqs must be distinct");
                }
                self.t->check_cache(cache);
                py::array_t<float> out({n, int64_t(vocab)});
                float* o = out.mutable_data();
                const int64_t* sp = s.data();
                const int64_t* idp = a.data();
                {
                    py::gil_scoped_release rel;
                    std::lock_guard<std::mutex> lk(self.step);
                    self.t->forward_batch(cache, sp, idp, n, o);
                }
                return out;
            },
            py::arg("cache"), py::arg("seqs"), py::arg("ids"));
}

}  // namespace slmk
