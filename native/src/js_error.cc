// js_error.cc: PtError -> JavaScript error (see js_error.h).
#include "js_error.h"

namespace pt {

Napi::Error MakeJsError(Napi::Env env, const PtError& e) {
  Napi::Error err = e.kind == ErrorKind::Argument ? Napi::Error(Napi::TypeError::New(env, e.what()))
                                                   : Napi::Error::New(env, e.what());
  err.Set("code", e.kind == ErrorKind::Argument   ? "ERR_PAJAMA_INVALID_ARG"
                  : e.kind == ErrorKind::Disposed ? "ERR_PAJAMA_DISPOSED"
                                                  : "ERR_PAJAMA_ENGINE");
  return err;
}

void ThrowJs(Napi::Env env, const PtError& e) { MakeJsError(env, e).ThrowAsJavaScriptException(); }

}  // namespace pt
