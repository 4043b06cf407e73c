// ---- _core.Sampler and _core.token_logprobs: the C++ sampler (csrc/sample) ----
#include <cmath>
#include <string>
#include <vector>

#include "bindings.h"
#include "sample/sample.h"

namespace slmk {

namespace {

// One generation's sampler: its parameters, the token history the penalties read (kept here
// so a step passes only the logits), the logit bias, and reusable scratch.
struct PySampler {
    int64_t vocab;
    SampleParams p;
    std::vector<uint8_t> seen;      // (vocab,) 1 if the token is in rep_ids
    std::vector<int32_t> rep_ids;   // distinct ids of prompt + generated tokens
    std::vector<int32_t> count_of;  // (vocab,) generated-token counts
    std::vector<int32_t> count_ids; // distinct generated ids
    std::vector<int32_t> counts;    // their counts (filled per step)
    std::vector<int32_t> bias_ids;
    std::vector<float> bias_values;
    SampleScratch scratch;
};

void check_token(int64_t t, int64_t vocab, const char* what) {
    if (t < 0 || t >= vocab)
        throw py::value_error(std::string(what) + " " + std::to_string(t) + " is outside the vocabulary (0.." +
                              std::to_string(vocab - 1) + ")");
}

void check_finite(double v, const char* name) {
    if (!std::isfinite(v)) throw py::value_error(std::string(name) + " must be a finite number");
}

const float* logits_row(const py::array_t<float, py::array::c_style>& a, int64_t vocab) {
    if (a.ndim() != 1 || a.shape(0) != vocab)
        throw py::value_error("logits must have shape (" + std::to_string(vocab) + ",)");
    return a.data();
}

}  // namespace

void bind_sample(py::module_& m) {
    py::class_<PySampler>(m, "Sampler",
                          "The next-token sampler of one generation (chain and order: csrc/sample/sample.h).")
        .def(py::init([](int64_t vocab, double temperature, int64_t top_k, double top_p, double min_p,
                         double typical_p, double repetition_penalty, double presence_penalty,
                         double frequency_penalty, py::dict logit_bias) {
                 if (vocab < 1) throw py::value_error("vocab must be >= 1");
                 auto s = std::make_unique<PySampler>();
                 s->vocab = vocab;
                 check_finite(temperature, "temperature");
                 check_finite(top_p, "top_p");
                 check_finite(min_p, "min_p");
                 check_finite(typical_p, "typical_p");
                 check_finite(repetition_penalty, "repetition_penalty");
                 check_finite(presence_penalty, "presence_penalty");
                 check_finite(frequency_penalty, "frequency_penalty");
                 if (temperature < 0) throw py::value_error("temperature must be >= 0");
                 if (top_k < 0) throw py::value_error("top_k must be >= 0");
                 if (!(top_p > 0 && top_p <= 1)) throw py::value_error("top_p must be in (0, 1]");
                 if (!(min_p >= 0 && min_p <= 1)) throw py::value_error("min_p must be in [0, 1]");
                 if (!(typical_p > 0 && typical_p <= 1)) throw py::value_error("typical_p must be in (0, 1]");
                 if (!(repetition_penalty > 0)) throw py::value_error("repetition_penalty must be > 0");
                 s->p = SampleParams{temperature, top_k, top_p, min_p, typical_p, repetition_penalty,
                                     presence_penalty, frequency_penalty};
                 for (auto kv : logit_bias) {
                     int64_t id = int_arg(kv.first, "logit_bias key");
                     check_token(id, vocab, "logit_bias token");
                     double b = kv.second.cast<double>();
                     if (std::isnan(b)) throw py::value_error("logit_bias values must not be NaN");
                     s->bias_ids.push_back(static_cast<int32_t>(id));
                     s->bias_values.push_back(static_cast<float>(b));
                 }
                 return s;
             }),
             py::arg("vocab"), py::kw_only(), py::arg("temperature") = 0.0, py::arg("top_k") = 0,
             py::arg("top_p") = 1.0, py::arg("min_p") = 0.0, py::arg("typical_p") = 1.0,
             py::arg("repetition_penalty") = 1.0, py::arg("presence_penalty") = 0.0,
             py::arg("frequency_penalty") = 0.0, py::arg("logit_bias") = py::dict())
        .def_readonly("vocab", &PySampler::vocab)
        .def(
            "add_context",
            [](PySampler& s, py::array_t<int64_t, py::array::c_style | py::array::forcecast> ids) {
                const int64_t* d = ids.data();
                for (py::ssize_t j = 0; j < ids.size(); ++j) check_token(d[j], s.vocab, "token");
                if (s.seen.empty()) s.seen.assign(s.vocab, 0);
                for (py::ssize_t j = 0; j < ids.size(); ++j)
                    if (!s.seen[d[j]]) {
                        s.seen[d[j]] = 1;
                        s.rep_ids.push_back(static_cast<int32_t>(d[j]));
                    }
            },
            py::arg("ids"), "Tokens the repetition penalty looks at (the prompt).")
        .def(
            "accept",
            [](PySampler& s, int64_t t) {
                check_token(t, s.vocab, "token");
                if (s.seen.empty()) s.seen.assign(s.vocab, 0);
                if (s.count_of.empty()) s.count_of.assign(s.vocab, 0);
                if (!s.seen[t]) {
                    s.seen[t] = 1;
                    s.rep_ids.push_back(static_cast<int32_t>(t));
                }
                if (s.count_of[t]++ == 0) s.count_ids.push_back(static_cast<int32_t>(t));
            },
            py::arg("token"), "A generated token: counted by every penalty from the next step on.")
        .def(
            "sample",
            [](PySampler& s, py::array_t<float, py::array::c_style | py::array::forcecast> logits, double u) {
                const float* row = logits_row(logits, s.vocab);
                if (!(u >= 0.0 && u < 1.0)) throw py::value_error("u must be in [0, 1)");
                s.counts.resize(s.count_ids.size());
                for (size_t j = 0; j < s.count_ids.size(); ++j) s.counts[j] = s.count_of[s.count_ids[j]];
                SampleContext ctx;
                ctx.rep_ids = s.rep_ids.data();
                ctx.n_rep = static_cast<int64_t>(s.rep_ids.size());
                ctx.count_ids = s.count_ids.data();
                ctx.counts = s.counts.data();
                ctx.n_count = static_cast<int64_t>(s.count_ids.size());
                ctx.bias_ids = s.bias_ids.data();
                ctx.bias_values = s.bias_values.data();
                ctx.n_bias = static_cast<int64_t>(s.bias_ids.size());
                int64_t t;
                {
                    py::gil_scoped_release nogil;
                    t = sample_token(row, s.vocab, s.p, ctx, u, s.scratch);
                }
                if (t < 0) throw py::value_error("no token can be sampled: every logit is -inf or NaN");
                return t;
            },
            py::arg("logits"), py::arg("u") = 0.0,
            "The next token for these logits; u is the uniform draw in [0, 1) (unused when greedy).");

    m.def(
        "token_logprobs",
        [](py::array_t<float, py::array::c_style | py::array::forcecast> logits, int64_t token, int64_t k) {
            if (logits.ndim() != 1 || logits.shape(0) < 1) throw py::value_error("logits must be a non-empty 1-D array");
            const int64_t vocab = logits.shape(0);
            check_token(token, vocab, "token");
            if (k < 0) throw py::value_error("k must be >= 0");
            k = std::min(k, vocab);
            std::vector<int32_t> ids(k);
            std::vector<double> lp(k);
            double t;
            {
                py::gil_scoped_release nogil;
                t = token_logprobs(logits.data(), vocab, token, k, ids.data(), lp.data());
            }
            py::list top;
            for (int64_t j = 0; j < k; ++j) top.append(py::make_tuple(ids[j], lp[j]));
            return py::make_tuple(t, top);
        },
        py::arg("logits"), py::arg("token"), py::arg("k") = 0,
        "(log-softmax of logits at token, [(id, logprob)] of the k most likely tokens, most likely first).");
}

}  // namespace slmk
