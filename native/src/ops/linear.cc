// linear.cc: bias-free linear layers (PyTorch Linear layout: weight (OC, C), out = inp @ weight^T), their
// backward, and the general 2-D `gemm` op the benchmarks use. All products go through pt::Gemm (gemm.h),
// so they run on oneDNN or the portable engine, with f32 accumulation either way.
// Accumulation rule: parameter gradients accumulate (dweight +=, always f32, a beta = 1 GEMM into it);
// activation gradients are overwritten (dinp =, in the activation dtype).
// Activations and weights share a dtype: f32, or bf16 under autocast (the bf16 copy of the weights).
// Activations may be N-D: the leading dims are flattened into rows, the last dim is the feature dim.
#include <cmath>
#include <vector>

#include "../gemm.h"
#include "../op.h"
#include "ops.h"

namespace pt {

namespace {

// Rows of an activation (..., cols): its last dim must be `cols`; the leading dims are flattened.
int64_t Rows(const std::string& op, const char* name, const Tensor& t, int64_t cols) {
  PT_CHECK_ARG(t.ndim() >= 1 && t.dim(-1) == cols, op, ": '", name, "' ", t.Describe(), " must end in ", cols);
  return ShapeNumel(std::vector<int64_t>(t.shape.begin(), t.shape.end() - 1));
}

// out (N, OC) = inp (N, C) @ weight (OC, C)^T
void MatmulForward(void* out, const void* inp, const void* weight, DType dtype, int64_t n, int64_t c, int64_t oc) {
  GemmArgs g;
  g.transB = true;
  g.M = n, g.N = oc, g.K = c;
  g.A = inp, g.lda = c;
  g.B = weight, g.ldb = c;
  g.C = out, g.ldc = oc;
  g.abType = g.cType = dtype;
  Gemm(g);
}

// dinp (N, C) = dout (N, OC) @ weight (OC, C); either output may be null (skipped).
// dweight (OC, C) += dout (N, OC)^T @ inp (N, C)
void MatmulBackward(void* dinp, float* dweight, const void* dout, const void* inp, const void* weight, DType dtype,
                    int64_t n, int64_t c, int64_t oc) {
  if (dweight) {
    GemmArgs g;
    g.transA = true;
    g.M = oc, g.N = c, g.K = n;
    g.A = dout, g.lda = oc;
    g.B = inp, g.ldb = c;
    g.abType = dtype;
    g.C = dweight, g.ldc = c, g.cType = DType::F32;
    g.beta = 1.0f;
    Gemm(g);
  }
  if (dinp) {
    GemmArgs g;
    g.M = n, g.N = c, g.K = oc;
    g.A = dout, g.lda = oc;
    g.B = weight, g.ldb = c;
    g.abType = g.cType = dtype;
    g.C = dinp, g.ldc = c;
    Gemm(g);
  }
}

// Checks shared by both directions: inp (N, C) and weight (OC, C) of one float dtype, and `out` (the forward
// output or the backward's dout) holding N rows of OC in that dtype. Sets n, c, oc.
void LinearShapes(const std::string& op, const Tensor& inp, const Tensor& weight, const char* outName,
                  const Tensor& out, int64_t* n, int64_t* c, int64_t* oc) {
  ExpectFloat(op, "inp", inp);
  ExpectSameDType(op, "weight", weight, "inp", inp);
  ExpectSameDType(op, outName, out, "inp", inp);
  PT_CHECK_ARG(weight.ndim() == 2, op, ": 'weight' must be 2-D (OC, C), got ", weight.Describe());
  *oc = weight.dim(0);
  *c = weight.dim(1);
  *n = Rows(op, "inp", inp, *c);
  PT_CHECK_ARG(Rows(op, outName, out, *oc) == *n, op, ": '", outName, "' ", out.Describe(), " must hold ", *n,
               " rows of ", *oc, " for 'inp' ", inp.Describe());
}

// matmulForward(out, inp, weight)
Kernel BuildMatmulForward(OpArgs& a) {
  Tensor out = a.tensor(0, "out"), inp = a.tensor(1, "inp"), weight = a.tensor(2, "weight");
  const std::string& op = a.op();
  int64_t n, c, oc;
  LinearShapes(op, inp, weight, "out", out, &n, &c, &oc);
  ExpectNoOverlap(op, "out", out, "inp", inp);
  ExpectNoOverlap(op, "out", out, "weight", weight);
  ExpectCublas(a);
  MatmulArgs m;
  m.out = out.raw(), m.inp = inp.raw(), m.weight = weight.raw(), m.dtype = inp.dtype, m.n = n, m.c = c, m.oc = oc;
  return LaunchOn(a, m, &cpu::MatmulForward, PT_CUDA_FN(MatmulForward));
}

// matmulBackward(dinp | null, dweight | null, dout, inp, weight)
Kernel BuildMatmulBackward(OpArgs& a) {
  std::optional<Tensor> dinp = a.optTensor(0, "dinp"), dweight = a.optTensor(1, "dweight");
  Tensor dout = a.tensor(2, "dout"), inp = a.tensor(3, "inp"), weight = a.tensor(4, "weight");
  const std::string& op = a.op();
  int64_t n, c, oc;
  LinearShapes(op, inp, weight, "dout", dout, &n, &c, &oc);
  const std::pair<const char*, const Tensor*> inputs[] = {{"dout", &dout}, {"inp", &inp}, {"weight", &weight}};
  if (dinp) {
    ExpectSameDType(op, "dinp", *dinp, "inp", inp);
    ExpectNumel(op, "dinp", *dinp, inp.numel);
    Rows(op, "dinp", *dinp, c);
    for (const auto& [name, t] : inputs) ExpectNoOverlap(op, "dinp", *dinp, name, *t);
  }
  if (dweight) {
    ExpectDType(op, "dweight", *dweight, DType::F32);
    ExpectShape(op, "dweight", *dweight, {oc, c});
    for (const auto& [name, t] : inputs) ExpectNoOverlap(op, "dweight", *dweight, name, *t);
    if (dinp) ExpectNoOverlap(op, "dweight", *dweight, "dinp", *dinp);
  }
  ExpectCublas(a);
  MatmulArgs m;
  m.out = dinp ? dinp->raw() : nullptr, m.dweight = dweight ? dweight->ptr<float>() : nullptr;
  m.inp = inp.raw(), m.weight = weight.raw(), m.dout = dout.raw(), m.dtype = inp.dtype, m.n = n, m.c = c, m.oc = oc;
  return LaunchOn(a, m, &cpu::MatmulBackward, PT_CUDA_FN(MatmulBackward));
}

// gemm(c, a, b, transA, transB, alpha, beta): c (M, N) = alpha * op(a) (M, K) @ op(b) (K, N) + beta * c,
// where a is (M, K), or (K, M) when transA, and b is (K, N), or (N, K) when transB.
Kernel BuildGemm(OpArgs& a) {
  Tensor c = a.tensor(0, "c"), ta = a.tensor(1, "a"), tb = a.tensor(2, "b");
  const bool transA = a.boolean(3, "transA", false), transB = a.boolean(4, "transB", false);
  const double alpha = a.number(5, "alpha", 1.0), beta = a.number(6, "beta", 0.0);
  const std::string& op = a.op();
  ExpectFloat(op, "a", ta);
  ExpectSameDType(op, "b", tb, "a", ta);
  ExpectFloat(op, "c", c);
  PT_CHECK_ARG(ta.ndim() == 2 && tb.ndim() == 2 && c.ndim() == 2, op, ": 'c', 'a' and 'b' must be 2-D, got ",
               c.Describe(), ", ", ta.Describe(), ", ", tb.Describe());
  PT_CHECK_ARG(std::isfinite(alpha) && std::isfinite(beta), op, ": alpha and beta must be finite, got ", alpha,
               " and ", beta);
  const int64_t m = transA ? ta.dim(1) : ta.dim(0), k = transA ? ta.dim(0) : ta.dim(1);
  const int64_t kb = transB ? tb.dim(1) : tb.dim(0), nn = transB ? tb.dim(0) : tb.dim(1);
  PT_CHECK_ARG(k == kb, op, ": op(a) ", ShapeStr({m, k}), " and op(b) ", ShapeStr({kb, nn}),
               " do not chain (transA=", transA, ", transB=", transB, ")");
  PT_CHECK_ARG(c.shape == std::vector<int64_t>({m, nn}), op, ": 'c' must have shape ", ShapeStr({m, nn}), ", got ",
               c.Describe());
  ExpectNoOverlap(op, "c", c, "a", ta);
  ExpectNoOverlap(op, "c", c, "b", tb);
  GemmArgs g;
  g.transA = transA, g.transB = transB;
  g.M = m, g.N = nn, g.K = k;
  g.alpha = float(alpha), g.beta = float(beta);
  g.lda = ta.dim(1), g.ldb = tb.dim(1), g.ldc = nn;
  g.abType = ta.dtype, g.cType = c.dtype;
  g.A = ta.raw(), g.B = tb.raw(), g.C = c.raw();
  ExpectCublas(a);
  return ForDevice(
      a,
      [g]() {
        Gemm(g);
        return OpResult{};
      },
      PT_CUDA_LAUNCH(cuda::Gemm(g, stream); return OpResult{};));
}

}  // namespace

void cpu::MatmulForward(const MatmulArgs& m) { pt::MatmulForward(m.out, m.inp, m.weight, m.dtype, m.n, m.c, m.oc); }

void cpu::MatmulBackward(const MatmulArgs& m) {
  pt::MatmulBackward(m.out, m.dweight, m.dout, m.inp, m.weight, m.dtype, m.n, m.c, m.oc);
}

void RegisterLinear(Napi::Env env, Napi::Object exports) {
  RegisterOp(env, exports, "matmulForward", BuildMatmulForward);
  RegisterOp(env, exports, "matmulBackward", BuildMatmulBackward);
  RegisterOp(env, exports, "gemm", BuildGemm);
}

}  // namespace pt
