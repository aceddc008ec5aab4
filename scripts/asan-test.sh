#!/usr/bin/env bash
# asan-test.sh: the native tests under AddressSanitizer + UndefinedBehaviorSanitizer, and a dispose/GC stress
# under LeakSanitizer, against the sanitizer build in build-asan/ (npm run build:asan builds it; --build here
# builds it first). Node itself is not instrumented, so the ASan runtime is preloaded (LD_PRELOAD) and the
# addon is loaded from build-asan/ through PAJAMA_ADDON. Every finding is fatal (halt_on_error, and the build
# has -fno-sanitize-recover=all); the script exits non-zero on any failure.
#
#   scripts/asan-test.sh [--build]
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "${1:-}" = "--build" ]; then
  PAJAMA_BUILD_DIR=build-asan PAJAMA_SANITIZE=address,undefined node scripts/build-native.js || exit 1
fi
ADDON="$ROOT/build-asan/Release/pajama_native.node"
[ -f "$ADDON" ] || { echo "asan-test: $ADDON is missing; run npm run build:asan first"; exit 1; }
LIBASAN=$(gcc -print-file-name=libasan.so)
[ -f "$LIBASAN" ] || { echo "asan-test: the ASan runtime (libasan.so) was not found: apt-get install gcc"; exit 1; }

export PAJAMA_ADDON="$ADDON"
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# Node frees much of its own memory only at exit or never (V8's isolate, the inspector): leak checking is off
# for the op tests and on for the stress, which exits after freeing everything it made.
ASAN_COMMON=halt_on_error=1:abort_on_error=0:exitcode=86:detect_odr_violation=0:allocator_may_return_null=1

status=0
echo "[asan] native op tests (AddressSanitizer + UndefinedBehaviorSanitizer)"
if ! LD_PRELOAD="$LIBASAN" ASAN_OPTIONS="$ASAN_COMMON:detect_leaks=0" \
  npx tap --disable-coverage -j1 test/native.test.ts test/ops/*.test.ts test/core/*.test.ts \
  test/reliability/native-shapes.test.ts test/reliability/native-denormals.test.ts; then
  echo "[asan] native op tests FAILED"
  status=1
fi

echo "[asan] dispose/GC stress (LeakSanitizer)"
if ! LD_PRELOAD="$LIBASAN" ASAN_OPTIONS="$ASAN_COMMON:detect_leaks=1" \
  LSAN_OPTIONS="suppressions=$ROOT/scripts/asan-lsan.supp:print_suppressions=0" \
  node --expose-gc scripts/asan-stress.js; then
  echo "[asan] dispose/GC stress FAILED"
  status=1
fi

[ $status -eq 0 ] && echo "[asan] clean" || echo "[asan] FAILED"
exit $status
