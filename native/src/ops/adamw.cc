// adamw.cc: the fused AdamW step over whole arenas, with torch.optim.AdamW's semantics:
//   g = grad * gradScale                                  (gradScale carries global-norm clipping)
//   m = beta1 m + (1 - beta1) g,   v = beta2 v + (1 - beta2) g^2
//   p = p * (1 - lr * weightDecay)                        (decoupled decay, only in segments with decay = 1)
//   p = p - lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
// and, in the same pass, paramsBf16 = bf16(p) (round to nearest even) when a bf16 compute copy is given.
// params, grads, m and v are f32 arenas of the same layout; grads are only read. `segments` lists
// [offset, length, decay] triples (in elements) that must tile the arena exactly: every element belongs to
// exactly one segment, so a layout change that forgets a tensor is an error, not a silently frozen weight.
// One pass over memory, parallel over fixed blocks of elements.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../cpu.h"
#include "../op.h"
#include "../vecmath.h"
#include "ops.h"

namespace pt {

namespace {

struct Segment {
  int64_t offset, length;
  bool decay;
  size_t index;  // position in the caller's list, for error messages
};

struct AdamWScalars {
  float beta1, beta2, oneMinusBeta1, oneMinusBeta2;
  float decayFactor;     // 1 - lr * weightDecay
  float stepSize;        // lr / (1 - beta1^step)
  float invSqrtBc2;      // 1 / sqrt(1 - beta2^step)
  float eps, gradScale;
};

// One element's step; returns the new parameter. decayFactor is 1 outside decayed segments.
inline float AdamWElement(float param, float grad, float& m, float& v, const AdamWScalars& s, float decayFactor) {
  float g = grad * s.gradScale;
  m = s.beta1 * m + s.oneMinusBeta1 * g;
  v = s.beta2 * v + s.oneMinusBeta2 * g * g;
  float p = param * decayFactor;
  return p - s.stepSize * m / (std::sqrt(v) * s.invSqrtBc2 + s.eps);
}

// The step on n elements of one segment (pointers already offset; the builder checked that no two buffers
// overlap), multiversioned (see vecmath.h); the second form also writes the bf16 copy.
PT_CLONES void AdamWSpan(float* __restrict params, const float* __restrict grads, float* __restrict m,
                         float* __restrict v, int64_t n, const AdamWScalars& s, float decayFactor) {
  for (int64_t i = 0; i < n; i++) params[i] = AdamWElement(params[i], grads[i], m[i], v[i], s, decayFactor);
}
PT_CLONES void AdamWSpan(float* __restrict params, const float* __restrict grads, float* __restrict m,
                         float* __restrict v, bf16* __restrict paramsBf16, int64_t n, const AdamWScalars& s,
                         float decayFactor) {
  for (int64_t i = 0; i < n; i++) {
    float p = AdamWElement(params[i], grads[i], m[i], v[i], s, decayFactor);
    params[i] = p;
    paramsBf16[i] = F32ToBf16(p);
  }
}

constexpr int64_t kBlock = int64_t(1) << 16;

// segs: sorted, tiling [0, P), without empty segments.
void AdamW(float* params, const float* grads, float* m, float* v, bf16* paramsBf16, int64_t P,
           const std::vector<Segment>& segs, const AdamWScalars& s) {
  const int64_t nBlocks = (P + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(Threads()) schedule(static)
  for (int64_t b = 0; b < nBlocks; b++) {
    int64_t lo = b * kBlock, hi = std::min(P, lo + kBlock);
    // The last segment starting at or before lo holds lo.
    size_t k = size_t(std::upper_bound(segs.begin(), segs.end(), lo,
                                       [](int64_t x, const Segment& sg) { return x < sg.offset; }) -
                      segs.begin()) - 1;
    while (lo < hi) {
      const Segment& sg = segs[k++];
      int64_t end = std::min(hi, sg.offset + sg.length);
      const float decayFactor = sg.decay ? s.decayFactor : 1.0f;
      if (paramsBf16) AdamWSpan(params + lo, grads + lo, m + lo, v + lo, paramsBf16 + lo, end - lo, s, decayFactor);
      else AdamWSpan(params + lo, grads + lo, m + lo, v + lo, end - lo, s, decayFactor);
      lo = end;
    }
  }
}

// Sorted, checked segments; throws naming the op and the offending triple(s).
std::vector<Segment> ReadSegments(const std::string& op, const std::vector<int32_t>& raw, int64_t P) {
  PT_CHECK_ARG(raw.size() % 3 == 0, op, ": 'segments' must hold [offset, length, decay] triples, got ",
               raw.size(), " numbers");
  std::vector<Segment> segs;
  for (size_t i = 0; i < raw.size() / 3; i++) {
    int64_t off = raw[3 * i], len = raw[3 * i + 1], decay = raw[3 * i + 2];
    PT_CHECK_ARG(off >= 0 && len >= 0 && off + len <= P, op, ": segment ", i, " [offset ", off, ", length ", len,
                 "] is outside the arena of ", P, " elements");
    PT_CHECK_ARG(decay == 0 || decay == 1, op, ": segment ", i, " has decay ", decay, "; it must be 0 or 1");
    if (len > 0) segs.push_back({off, len, decay == 1, i});
  }
  std::sort(segs.begin(), segs.end(), [](const Segment& a, const Segment& b) { return a.offset < b.offset; });
  int64_t covered = 0;  // segments before sg tile [0, covered)
  for (size_t k = 0; k < segs.size(); k++) {
    const Segment& sg = segs[k];
    PT_CHECK_ARG(sg.offset >= covered, op, ": segment ", sg.index, " [", sg.offset, ", ", sg.offset + sg.length,
                 ") overlaps segment ", segs[k - 1].index, " [", segs[k - 1].offset, ", ", covered, ")");
    PT_CHECK_ARG(sg.offset == covered, op, ": elements [", covered, ", ", sg.offset,
                 ") are not covered by any segment");
    covered = sg.offset + sg.length;
  }
  PT_CHECK_ARG(covered == P, op, ": elements [", covered, ", ", P, ") are not covered by any segment");
  return segs;
}

// adamwUpdate(params, grads, m, v, paramsBf16 | null, segments, lr, beta1, beta2, eps, weightDecay, step,
//             gradScale)
Kernel BuildAdamWUpdate(OpArgs& a) {
  const std::string& op = a.op();
  Tensor params = a.tensor(0, "params"), grads = a.tensor(1, "grads"), m = a.tensor(2, "m"), v = a.tensor(3, "v");
  std::optional<Tensor> pb = a.optTensor(4, "paramsBf16");
  std::vector<int32_t> raw = a.int32s(5, "segments");
  double lr = a.number(6, "lr"), beta1 = a.number(7, "beta1"), beta2 = a.number(8, "beta2");
  double eps = a.number(9, "eps"), wd = a.number(10, "weightDecay");
  int64_t step = a.integer(11, "step");
  double gradScale = a.number(12, "gradScale");

  const int64_t P = params.numel;
  const std::pair<const char*, const Tensor*> f32s[] = {{"params", &params}, {"grads", &grads}, {"m", &m}, {"v", &v}};
  for (auto& [name, t] : f32s) {
    ExpectDType(op, name, *t, DType::F32);
    ExpectNumel(op, name, *t, P);
  }
  if (pb) {
    ExpectDType(op, "paramsBf16", *pb, DType::BF16);
    ExpectNumel(op, "paramsBf16", *pb, P);
  }
  for (size_t i = 0; i < 4; i++) {
    for (size_t j = i + 1; j < 4; j++)
      ExpectNoOverlap(op, f32s[i].first, *f32s[i].second, f32s[j].first, *f32s[j].second);
    if (pb) ExpectNoOverlap(op, f32s[i].first, *f32s[i].second, "paramsBf16", *pb);
  }
  PT_CHECK_ARG(std::isfinite(lr) && lr >= 0, op, ": lr must be finite and >= 0, got ", lr);
  PT_CHECK_ARG(beta1 >= 0 && beta1 < 1, op, ": beta1 must be in [0, 1), got ", beta1);
  PT_CHECK_ARG(beta2 >= 0 && beta2 < 1, op, ": beta2 must be in [0, 1), got ", beta2);
  PT_CHECK_ARG(std::isfinite(eps) && eps >= 0, op, ": eps must be finite and >= 0, got ", eps);
  PT_CHECK_ARG(std::isfinite(wd) && wd >= 0, op, ": weightDecay must be finite and >= 0, got ", wd);
  PT_CHECK_ARG(step >= 1, op, ": step must be >= 1 (it counts from 1 for bias correction), got ", step);
  PT_CHECK_ARG(std::isfinite(gradScale), op, ": gradScale must be finite, got ", gradScale);
  std::vector<Segment> segs = ReadSegments(op, raw, P);

  AdamWArgs s;
  s.params = params.ptr<float>(), s.grads = grads.ptr<float>(), s.m = m.ptr<float>(), s.v = v.ptr<float>();
  s.paramsBf16 = pb ? pb->ptr<bf16>() : nullptr;
  s.p = P;
  for (const Segment& sg : segs) s.segments.push_back({sg.offset, sg.length, sg.decay});
  s.beta1 = float(beta1);
  s.beta2 = float(beta2);
  s.oneMinusBeta1 = float(1.0 - beta1);
  s.oneMinusBeta2 = float(1.0 - beta2);
  s.decayFactor = float(1.0 - lr * wd);
  s.stepSize = float(lr / (1.0 - std::pow(beta1, double(step))));
  s.invSqrtBc2 = float(1.0 / std::sqrt(1.0 - std::pow(beta2, double(step))));
  s.eps = float(eps);
  s.gradScale = float(gradScale);
  return LaunchOn(a, s, &cpu::AdamWUpdate, PT_CUDA_FN(AdamWUpdate));
}

}  // namespace

void cpu::AdamWUpdate(const AdamWArgs& a) {
  AdamWScalars s;
  s.beta1 = a.beta1, s.beta2 = a.beta2, s.oneMinusBeta1 = a.oneMinusBeta1, s.oneMinusBeta2 = a.oneMinusBeta2;
  s.decayFactor = a.decayFactor, s.stepSize = a.stepSize, s.invSqrtBc2 = a.invSqrtBc2;
  s.eps = a.eps, s.gradScale = a.gradScale;
  std::vector<Segment> segs;
  for (size_t i = 0; i < a.segments.size(); i++)
    segs.push_back({a.segments[i].offset, a.segments[i].length, a.segments[i].decay, i});
  AdamW(a.params, a.grads, a.m, a.v, a.paramsBf16, a.p, segs, s);
}

void RegisterAdamW(Napi::Env env, Napi::Object exports) { RegisterOp(env, exports, "adamwUpdate", BuildAdamWUpdate); }

}  // namespace pt
