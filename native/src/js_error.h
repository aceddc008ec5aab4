// js_error.h: a PtError (common.h) as a JavaScript error, the one place the three error kinds get their JS
// class and `code`. Below tensor.* and op.* so that both can throw without knowing about each other.
#pragma once
#include <napi.h>

#include "common.h"

namespace pt {

// Argument -> TypeError (code ERR_PAJAMA_INVALID_ARG); Disposed -> Error (ERR_PAJAMA_DISPOSED);
// Engine -> Error (ERR_PAJAMA_ENGINE).
Napi::Error MakeJsError(Napi::Env env, const PtError& e);
void ThrowJs(Napi::Env env, const PtError& e);

}  // namespace pt
