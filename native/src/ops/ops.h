// ops.h: one Register function per op file; addon.cc calls them all. Each op file keeps its forward and
// backward side by side and follows one accumulation rule, stated at its top:
//   parameter gradients accumulate (+=), activation gradients are overwritten (=).
#pragma once
#include <napi.h>

namespace pt {
void RegisterEmbedding(Napi::Env env, Napi::Object exports);
void RegisterLayerNorm(Napi::Env env, Napi::Object exports);
void RegisterLinear(Napi::Env env, Napi::Object exports);
void RegisterAttention(Napi::Env env, Napi::Object exports);
void RegisterAttentionCached(Napi::Env env, Napi::Object exports);
void RegisterGelu(Napi::Env env, Napi::Object exports);
void RegisterResidual(Napi::Env env, Napi::Object exports);
void RegisterCrossEntropy(Napi::Env env, Napi::Object exports);
void RegisterAdamW(Napi::Env env, Napi::Object exports);
void RegisterReduce(Napi::Env env, Napi::Object exports);
void RegisterCast(Napi::Env env, Napi::Object exports);
void RegisterMinHash(Napi::Env env, Napi::Object exports);
}  // namespace pt
