// attention.h: raw CPU entry points of causal multi-head attention with ALiBi (MPT), forward and backward.
// Layouts are MPT's: qkv is Wqkv's output (B, T, 3*C) viewed as (B, T, 3, H, D) with C = H*D; out is (B, T, C).
// Scores are s[i,j] = q_i.k_j / sqrt(D) + slopes[h] * (j - i) for j <= i; the only saved statistic is
// lse (B, H, T) f32, the natural-log sum of exp of each score row. dqkv is overwritten, never accumulated.
// Any B, T, H >= 1 and 1 <= D <= 256 (validation is the caller's job); they throw PtError only when scratch
// memory cannot be allocated. Implementation notes and limits: attention.cc.
#pragma once
#include "../common.h"

namespace pt {

// out (B, T, H, D), lse (B, H, T) f32, qkv (B, T, 3, H, D), slopes (H) f32
void AttentionForwardF32(float* out, float* lse, const float* qkv, const float* slopes, int B, int T, int H,
                         int D);
void AttentionForwardBf16(bf16* out, float* lse, const bf16* qkv, const float* slopes, int B, int T, int H,
                          int D);

// dqkv (B, T, 3, H, D) overwritten; dout, out (B, T, H, D); qkv (B, T, 3, H, D); lse (B, H, T); slopes (H)
void AttentionBackwardF32(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                          const float* slopes, int B, int T, int H, int D);
void AttentionBackwardBf16(bf16* dqkv, const bf16* dout, const bf16* qkv, const bf16* out, const float* lse,
                           const float* slopes, int B, int T, int H, int D);

// Engines: Tiles, our own flash-attention tiles (attention.cc; AVX512-BF16 dot products, AVX-512 FMA or
// portable code), and Gemm, whose score and value products are pt::Gemm calls so that oneDNN runs them on
// the machine's matrix unit, AMX included (attention_gemm.cc). The default is Gemm where the CPU has AMX-BF16
// and the build has oneDNN, Tiles elsewhere; PAJAMA_ATTENTION=tiles|gemm or SetAttentionEngine overrides it.
enum class AttentionEngine { Tiles, Gemm };
AttentionEngine ActiveAttentionEngine();
void SetAttentionEngine(AttentionEngine e);
const char* AttentionEngineName(AttentionEngine e);

template <class X>
void AttentionForwardGemm(X* out, float* lse, const X* qkv, const float* slopes, int B, int T, int H, int D);
template <class X>
void AttentionBackwardGemm(X* dqkv, const X* dout, const X* qkv, const X* out, const float* lse,
                           const float* slopes, int B, int T, int H, int D);

}  // namespace pt
