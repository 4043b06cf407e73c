// ---- token sampling (see sample.h for the chain and its order) ----
// Candidates are kept as a list of token ids in increasing order: sums and the final draw walk
// them in id order, which gives the same float64 sums as walking the whole vocabulary (a zero
// probability adds exactly 0.0), so the filters that leave few candidates (top-k, top-p)
// make every later pass short.
#include "sample/sample.h"

#include "core/thread_pool.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

namespace slmk {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// The candidates become the first n_keep entries of `order` (a ranking of them), back in id
// order, renormalized (q / sum q, the sum in id order). Tokens dropped from the list are never
// read again, so their p is left as it is.
void keep_prefix(std::vector<int32_t>& cand, std::vector<int32_t>& order, int64_t n_keep, std::vector<double>& p) {
    order.resize(n_keep);
    std::sort(order.begin(), order.end());
    cand.swap(order);
    double sum = 0.0;
    for (int32_t i : cand) sum += p[i];
    for (int32_t i : cand) p[i] /= sum;
}

// The number of leading entries of `order` whose cumulative probability first reaches `mass`
// (all of them if it never does: rounding can leave the total a hair under 1).
int64_t prefix_reaching(const std::vector<int32_t>& order, double mass, const std::vector<double>& p) {
    double cum = 0.0;
    const int64_t n = static_cast<int64_t>(order.size());
    for (int64_t j = 0; j < n; ++j) {
        cum += p[order[j]];
        if (cum >= mass) return j + 1;
    }
    return n;
}

// Keeps the shortest prefix of `order` ranked by `before` (a total order: ties by id) whose
// cumulative probability reaches `mass`. Sorts only as far as needed: the first k (nth_element,
// then a sort of those k), k growing 4x until they hold `mass`; the first k are the same tokens
// in the same order as a full sort's.
template <class Before>
void keep_ranked_prefix(std::vector<int32_t>& cand, std::vector<int32_t>& order, double mass, std::vector<double>& p,
                        Before before) {
    const int64_t n = static_cast<int64_t>(order.size());
    for (int64_t k = 64;; k *= 4) {
        if (k >= n) {
            std::sort(order.begin(), order.end(), before);
            break;
        }
        std::nth_element(order.begin(), order.begin() + k, order.end(), before);
        std::sort(order.begin(), order.begin() + k, before);
        double cum = 0.0;
        for (int64_t j = 0; j < k; ++j) cum += p[order[j]];
        if (cum >= mass) break;
    }
    keep_prefix(cand, order, prefix_reaching(order, mass, p), p);
}

// Nucleus (Holtzman et al. 2020): sorted by probability, largest first (ties: lower id first),
// the shortest prefix whose cumulative probability reaches `mass`. Only tokens at or above a
// threshold are sorted: it starts at p_max / 1000 and drops by 1000x until the tokens above it
// hold `mass`; they are the largest ones, so they contain the whole prefix.
void top_p_filter(std::vector<int32_t>& cand, std::vector<int32_t>& order, double mass, std::vector<double>& p) {
    double pmax = 0.0;
    for (int32_t i : cand) pmax = std::max(pmax, p[i]);
    for (double thr = pmax * 1e-3;; thr *= 1e-3) {
        if (thr < 1e-300) thr = 0.0;
        order.clear();
        double held = 0.0;
        for (int32_t i : cand)
            if (p[i] >= thr && p[i] > 0.0) {
                order.push_back(i);
                held += p[i];
            }
        if (held >= mass || thr == 0.0) break;
    }
    keep_ranked_prefix(cand, order, mass, p,
                       [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
}

// Locally typical sampling (Meister et al. 2022): sorted by |-log p - H| (H the entropy of the
// candidates), smallest first (ties: lower id first), the shortest prefix reaching `mass`.
void typical_filter(std::vector<int32_t>& cand, std::vector<int32_t>& order, std::vector<double>& key, double mass,
                    std::vector<double>& p) {
    double h = 0.0;
    order.clear();
    key.resize(p.size());
    for (int32_t i : cand)
        if (p[i] > 0.0) {
            key[i] = -std::log(p[i]);  // surprisal, one log per token
            h += p[i] * key[i];
            order.push_back(i);
        }
    for (int32_t i : order) key[i] = std::fabs(key[i] - h);
    keep_ranked_prefix(cand, order, mass, p,
                       [&](int32_t a, int32_t b) { return key[a] < key[b] || (key[a] == key[b] && a < b); });
}

// The k-th largest of z (1 <= k <= z.size()): a min-heap of the k largest so far, whose top is
// the bar a new value must clear (most of a vocabulary fails that one comparison).
double kth_largest(const std::vector<double>& z, int64_t k, std::vector<double>& heap) {
    heap.assign(z.begin(), z.begin() + k);
    std::make_heap(heap.begin(), heap.end(), std::greater<double>());
    const int64_t n = static_cast<int64_t>(z.size());
    for (int64_t i = k; i < n; ++i) {
        if (z[i] > heap.front()) {
            std::pop_heap(heap.begin(), heap.end(), std::greater<double>());
            heap.back() = z[i];
            std::push_heap(heap.begin(), heap.end(), std::greater<double>());
        }
    }
    return heap.front();
}

}  // namespace

int64_t sample_token(const float* logits, int64_t vocab, const SampleParams& prm, const SampleContext& ctx, double u,
                     SampleScratch& s) {
    if (prm.temperature <= 0.0 && ctx.n_bias == 0 && (prm.repetition_penalty == 1.0 || ctx.n_rep == 0) &&
        ((prm.presence_penalty == 0.0 && prm.frequency_penalty == 0.0) || ctx.n_count == 0)) {
        // greedy on the raw logits: the first maximum, NaN never chosen
        int64_t best = -1;
        float bv = -std::numeric_limits<float>::infinity();
        for (int64_t i = 0; i < vocab; ++i)
            if (logits[i] > bv) {
                bv = logits[i];
                best = i;
            }
        return best;
    }
    std::vector<double>& z = s.z;
    z.resize(vocab);
    // ---- on the logits ----
    for (int64_t i = 0; i < vocab; ++i) {
        double v = logits[i];
        z[i] = std::isnan(v) ? kNegInf : v;
    }
    for (int64_t j = 0; j < ctx.n_bias; ++j) z[ctx.bias_ids[j]] += static_cast<double>(ctx.bias_values[j]);
    if (prm.repetition_penalty != 1.0) {
        const double r = prm.repetition_penalty;
        for (int64_t j = 0; j < ctx.n_rep; ++j) {
            double& v = z[ctx.rep_ids[j]];
            v = v > 0 ? v / r : v * r;
        }
    }
    if (prm.presence_penalty != 0.0 || prm.frequency_penalty != 0.0) {
        for (int64_t j = 0; j < ctx.n_count; ++j)
            z[ctx.count_ids[j]] -= ctx.counts[j] * prm.frequency_penalty + prm.presence_penalty;
    }
    int64_t best = 0;
    for (int64_t i = 1; i < vocab; ++i)
        if (z[i] > z[best]) best = i;
    if (z[best] == kNegInf) return -1;  // no token left to choose
    if (prm.temperature <= 0.0) return best;

    // ---- on the distribution ----
    std::vector<int32_t>& cand = s.idx;
    std::vector<int32_t> order;
    cand.clear();
    for (int64_t i = 0; i < vocab; ++i) z[i] /= prm.temperature;
    double zmax = z[best];
    if (prm.top_k > 0 && prm.top_k < vocab) {
        const double kth = kth_largest(z, prm.top_k, s.tmp);
        for (int64_t i = 0; i < vocab; ++i)
            if (z[i] >= kth && z[i] != kNegInf) cand.push_back(static_cast<int32_t>(i));
    } else {
        for (int64_t i = 0; i < vocab; ++i)
            if (z[i] != kNegInf) cand.push_back(static_cast<int32_t>(i));
    }
    // z becomes p: exp(z - max) / sum, zero outside the candidates
    double sum = 0.0;
    if (zmax == std::numeric_limits<double>::infinity()) {
        std::vector<int32_t> inf;
        for (int32_t i : cand)
            if (z[i] == zmax) inf.push_back(i);
        cand.swap(inf);
        std::fill(z.begin(), z.end(), 0.0);
        for (int32_t i : cand) z[i] = 1.0;
        sum = static_cast<double>(cand.size());
    } else {
        // exp of every candidate, elementwise over the pool (the same bits for any thread count:
        // most of a full-vocabulary draw's time is here); the sum stays sequential, in id order.
        // Tokens outside `cand` are never read again.
        const int32_t* ci = cand.data();
        double* zp = z.data();
        parallel_for(static_cast<int64_t>(cand.size()), 8192, [=](int64_t b, int64_t e) {
            for (int64_t j = b; j < e; ++j) zp[ci[j]] = std::exp(zp[ci[j]] - zmax);
        });
        for (int32_t i : cand) sum += z[i];
    }
    for (int32_t i : cand) z[i] /= sum;
    if (prm.typical_p < 1.0) typical_filter(cand, order, s.tmp, prm.typical_p, z);
    if (prm.top_p < 1.0) top_p_filter(cand, order, prm.top_p, z);
    if (prm.min_p > 0.0) {
        double pmax = 0.0;
        for (int32_t i : cand) pmax = std::max(pmax, z[i]);
        const double floor = prm.min_p * pmax;
        order.clear();
        double kept = 0.0;
        for (int32_t i : cand) {
            if (z[i] >= floor) {
                order.push_back(i);
                kept += z[i];
            } else {
                z[i] = 0.0;
            }
        }
        cand.swap(order);
        for (int32_t i : cand) z[i] /= kept;
    }
    // ---- the draw: numpy's Generator.choice(p=p): cdf = cumsum(p); cdf /= cdf[-1]; the first
    // index whose cdf exceeds u (searchsorted side='right'). Cumulative sums in id order over the
    // candidates (zeros add nothing), then a binary search for the first cdf/total > u.
    std::vector<double>& cdf = s.tmp;
    cdf.resize(cand.size());
    double cum = 0.0;
    for (size_t j = 0; j < cand.size(); ++j) {
        cum += z[cand[j]];
        cdf[j] = cum;
    }
    const double total = cum;
    size_t lo = 0, hi = cand.size();  // first j with cdf[j] / total > u
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cdf[mid] / total > u) hi = mid;
        else lo = mid + 1;
    }
    if (lo == cand.size()) lo = cand.size() - 1;
    return cand[lo];
}

double token_logprobs(const float* logits, int64_t vocab, int64_t token, int64_t k, int32_t* out_ids,
                      double* out_lp) {
    double m = kNegInf;
    for (int64_t i = 0; i < vocab; ++i) m = std::max(m, static_cast<double>(logits[i]));
    double sum = 0.0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - m);
    const double lse = m + std::log(sum);
    // the k largest by (logit desc, id asc): a min-heap of size k whose top is the weakest kept
    auto weaker = [&](int32_t a, int32_t b) {  // a ranks below b
        return logits[a] < logits[b] || (logits[a] == logits[b] && a > b);
    };
    auto heap_cmp = [&](int32_t a, int32_t b) { return weaker(b, a); };  // top = weakest
    std::vector<int32_t> heap;
    heap.reserve(k);
    for (int64_t i = 0; i < vocab && k > 0; ++i) {
        int32_t id = static_cast<int32_t>(i);
        if (static_cast<int64_t>(heap.size()) < k) {
            heap.push_back(id);
            std::push_heap(heap.begin(), heap.end(), heap_cmp);
        } else if (weaker(heap.front(), id)) {
            std::pop_heap(heap.begin(), heap.end(), heap_cmp);
            heap.back() = id;
            std::push_heap(heap.begin(), heap.end(), heap_cmp);
        }
    }
    std::sort(heap.begin(), heap.end(), [&](int32_t a, int32_t b) { return weaker(b, a); });
    for (size_t j = 0; j < heap.size(); ++j) {
        out_ids[j] = heap[j];
        out_lp[j] = static_cast<double>(logits[heap[j]]) - lse;
    }
    return static_cast<double>(logits[token]) - lse;
}

}  // namespace slmk
