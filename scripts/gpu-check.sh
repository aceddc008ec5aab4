#!/usr/bin/env bash
# gpu-check.sh (npm run gpu-check): the CUDA backend verified on a real GPU in one go. It builds the addon,
# runs every GPU check (benchmarks/gpu-checks.ts: ops against the CPU and float64, errors, memory, training on
# CUDA against the CPU) and the GPU benchmarks (benchmarks/gpu.ts: attention, GEMMs, mpt-1b training steps),
# and writes ONE JSON report: $OUT/gpu-report.json when OUT is set, else benchmarks/results/gpu-report.json
# (PAJAMA_GPU_REPORT overrides both). The attention checks run a second time with PAJAMA_CUDA_ATTENTION=fma (the
# kernels' FMA path at every shape). About 4 minutes on one H100 or H200; each phase has a time limit (8 minutes
# together) so the report is written whatever happens.
#
# Made for a bare GPU machine with nvcc, CMake and the Python nvidia-* wheels but no Node.js and no network:
#   here (with Node.js and npm ci done):  scripts/gpu-carry.sh      -> .gpu-carry/ (node, node_modules, dist)
#   there, from the repository root:      scripts/gpu-check.sh      (uses .gpu-carry/ when it is present)
# On a machine that has node and node_modules it uses those instead (and compiles dist/ when typescript is
# installed). `scripts/gpu-check.sh --build-only` stops after the build and a load of the compiled checks:
# it needs no GPU, to try a carry before spending GPU time.
#
# Environment:
#   PAJAMA_CUDA_ARCHITECTURES  CUDA architectures to build (default: the GPU's own, 90a on an H100/H200, where
#                              nvidia-smi answers; else 80;90a)
#   PAJAMA_CUBLAS_ROOT         the cuBLAS folder with include/ and lib/ (default: python3's nvidia-cublas wheel,
#                              site-packages/nvidia/cu13 for CUDA 13, nvidia/cublas for CUDA 12)
#   PAJAMA_CUDA                OFF builds without CUDA (with --build-only, to try the carry quickly)
#   PAJAMA_GPU_CHECK_STALE_OK  1 accepts a carried dist/ compiled from other sources than this tree's
# Exit status: 0 when the build, every check and the benchmarks passed; 2 without a GPU; 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD

BUILD_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --build-only) BUILD_ONLY=1 ;;
    *) echo "gpu-check: unknown argument '$arg' (usage: scripts/gpu-check.sh [--build-only])" >&2; exit 2 ;;
  esac
done

CARRY=$ROOT/.gpu-carry
WORK=$ROOT/build-gpu-check # logs, the unpacked node, the addon's build (build-*/ is ignored by git)
BUILD_DIR=$WORK/build
if [ -n "${PAJAMA_GPU_REPORT:-}" ]; then
  REPORT=$PAJAMA_GPU_REPORT
elif [ -n "${OUT:-}" ]; then
  REPORT=$OUT/gpu-report.json
else
  REPORT=$ROOT/benchmarks/results/gpu-report.json
fi
# Time limits (seconds) of the phases: 8 minutes together, so the report is always written in time. A run on an
# H100 or H200 takes about half of each.
BUILD_TIMEOUT=210
CHECKS_TIMEOUT=120
FMA_TIMEOUT=40
BENCH_TIMEOUT=110

rm -rf "$WORK/logs" "$WORK/checks.json" "$WORK/checks-fma.json" "$WORK/bench.json"
mkdir -p "$WORK/logs" "$WORK/bin"
PHASES=$WORK/logs/phases.tsv
: >"$PHASES"
START=$(date +%s)
note() { echo "[gpu-check] $*"; }

# phase NAME TIMEOUT COMMAND...: runs COMMAND with its output in logs/NAME.log (and echoed), records
# NAME, exit status and seconds in phases.tsv, returns the exit status.
phase() {
  local name=$1 limit=$2
  shift 2
  local t0 rc
  t0=$(date +%s)
  note "$name ..."
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$WORK/logs/$name.log"
  rc=${PIPESTATUS[0]}
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - t0))" >>"$PHASES"
  [ "$rc" -eq 124 ] && note "$name: stopped after ${limit} s"
  note "$name: exit status $rc in $(($(date +%s) - t0)) s"
  return "$rc"
}

# Unpacks a .tar.xz into ROOT, with python3's lzma where xz is missing.
untar_xz() {
  if command -v xz >/dev/null; then
    tar -xJf "$1" -C "$ROOT"
  else
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$1" "$ROOT"
  fi
}

source_hash() { # the same as gpu-carry.sh's
  find lib benchmarks test/helpers -type f -name '*.ts' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | cat - tsconfig.json | sha256sum | cut -d' ' -f1
}

FAILED=() # what went wrong, for the report and the exit status
GPU_CSV=""
ARCHS=""
CUBLAS_ROOT=""

write_report() {
  local mode=$1
  local args=(--out "$REPORT" --mode "$mode" --phases "$PHASES" --logs "$WORK/logs" --started "$START"
    --gpu-csv "$GPU_CSV" --archs "$ARCHS" --cublas-root "$CUBLAS_ROOT")
  [ -f "$CARRY/manifest.txt" ] && args+=(--manifest "$CARRY/manifest.txt")
  [ -f "$WORK/checks.json" ] && args+=(--checks "$WORK/checks.json")
  [ -f "$WORK/checks-fma.json" ] && args+=(--checks-fma "$WORK/checks-fma.json")
  [ -f "$WORK/bench.json" ] && args+=(--bench "$WORK/bench.json")
  for f in "${FAILED[@]}"; do args+=(--failed "$f"); done
  if command -v node >/dev/null && [ -f "$ROOT/scripts/gpu-report.js" ]; then
    node "$ROOT/scripts/gpu-report.js" "${args[@]}" && note "report: $REPORT" && return 0
  fi
  # no node at all: a minimal report by hand, so the run still leaves its reason behind
  mkdir -p "$(dirname "$REPORT")"
  printf '{\n  "report": "gpu-check",\n  "ok": false,\n  "failed": ["%s"]\n}\n' "$(IFS='|'; echo "${FAILED[*]}" | sed 's/"/\\"/g; s/|/", "/g')" >"$REPORT"
  note "report (minimal, node is missing): $REPORT"
}

finish() { # finish MODE EXIT_STATUS
  write_report "$1"
  note "done in $(($(date +%s) - START)) s: ${#FAILED[@]} problem(s)${FAILED[*]:+: ${FAILED[*]}}"
  exit "$2"
}

# ---- 1. node ----
if [ -f "$CARRY/node.xz" ]; then
  if command -v xz >/dev/null; then
    xz -dc "$CARRY/node.xz" >"$WORK/bin/node"
  else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$CARRY/node.xz" "$WORK/bin/node"
  fi
  chmod +x "$WORK/bin/node"
  export PATH="$WORK/bin:$PATH"
  note "node $(node --version) from $CARRY/node.xz"
elif command -v node >/dev/null; then
  note "node $(node --version) from $(command -v node)"
else
  FAILED+=("no node: run scripts/gpu-carry.sh on a machine with Node.js and bring .gpu-carry/ along")
  finish failed 1
fi
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || {
  FAILED+=("node $(node --version) is too old: pajama-train needs node >= 20")
  finish failed 1
}

# ---- 2. node_modules and dist ----
if [ -f "$CARRY/node_modules.tar.xz" ]; then
  untar_xz "$CARRY/node_modules.tar.xz" || { FAILED+=("could not unpack $CARRY/node_modules.tar.xz"); finish failed 1; }
fi
[ -f node_modules/cmake-js/bin/cmake-js ] || { FAILED+=("node_modules/cmake-js is missing: npm ci, or carry .gpu-carry/"); finish failed 1; }

if [ -f "$CARRY/dist.tar.xz" ]; then
  want=$(sed -n 's/^sourceHash=//p' "$CARRY/manifest.txt" 2>/dev/null)
  have=$(source_hash)
  if [ "$want" != "$have" ] && [ "${PAJAMA_GPU_CHECK_STALE_OK:-}" != 1 ]; then
    FAILED+=("the carried dist/ was compiled from other sources (hash $want, this tree $have): rerun scripts/gpu-carry.sh after the last change, or set PAJAMA_GPU_CHECK_STALE_OK=1")
    finish failed 1
  fi
  untar_xz "$CARRY/dist.tar.xz" || { FAILED+=("could not unpack $CARRY/dist.tar.xz"); finish failed 1; }
elif [ -x node_modules/typescript/bin/tsc ]; then
  phase tsc 120 node node_modules/typescript/bin/tsc -p tsconfig.json || { FAILED+=("tsc failed"); finish failed 1; }
fi
[ -f dist/benchmarks/gpu-checks.js ] || { FAILED+=("dist/benchmarks/gpu-checks.js is missing: carry .gpu-carry/ or install typescript"); finish failed 1; }

# ---- 3. the GPU, the architectures, cuBLAS ----
if command -v nvidia-smi >/dev/null; then
  GPU_CSV=$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>/dev/null | head -n 1)
fi
if [ -z "$GPU_CSV" ] && [ "$BUILD_ONLY" = 0 ]; then
  FAILED+=("no GPU: nvidia-smi is missing or lists no device")
  finish failed 2
fi
[ -n "$GPU_CSV" ] && note "GPU: $GPU_CSV"

if [ -n "${PAJAMA_CUDA_ARCHITECTURES:-}" ]; then
  ARCHS=$PAJAMA_CUDA_ARCHITECTURES
else
  cap=$(awk -F', *' '{print $4}' <<<"$GPU_CSV" | tr -d ' ')
  case "$cap" in
    9.0) ARCHS=90a ;; # H100, H200: the wgmma/TMA kernels need the arch-specific target
    [0-9]*.[0-9]*) ARCHS=${cap/./} ;;
    *) ARCHS="80;90a" ;;
  esac
fi

if [ -n "${PAJAMA_CUBLAS_ROOT:-}" ]; then
  CUBLAS_ROOT=$PAJAMA_CUBLAS_ROOT
elif command -v python3 >/dev/null; then
  # the CUDA 13 wheels share site-packages/nvidia/cu13; the CUDA 12 wheel has site-packages/nvidia/cublas
  CUBLAS_ROOT=$(python3 - 2>/dev/null <<'EOF'
import os, nvidia
for base in nvidia.__path__:
    for sub in ('cu13', 'cublas', 'cu12'):
        d = os.path.join(base, sub)
        if os.path.isfile(os.path.join(d, 'include', 'cublasLt.h')):
            print(d)
            raise SystemExit
EOF
  )
fi
if [ -n "$CUBLAS_ROOT" ] && [ -f "$CUBLAS_ROOT/include/cublasLt.h" ]; then
  note "cuBLAS: $CUBLAS_ROOT"
  export LD_LIBRARY_PATH="$CUBLAS_ROOT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  note "cuBLAS: not found (${CUBLAS_ROOT:-no nvidia-cublas wheel for python3}); the build says what it leaves out"
  CUBLAS_ROOT=""
fi
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH="/usr/local/cuda/bin:$PATH"; fi

# ---- 4. build ----
cmake_args=(compile --out "$BUILD_DIR" --parallel "$(nproc)" "--CDPAJAMA_CUDA_ARCHITECTURES=${ARCHS//;/,}")
[ -n "$CUBLAS_ROOT" ] && cmake_args+=("--CDPAJAMA_CUBLAS_ROOT=$CUBLAS_ROOT")
[ -n "${PAJAMA_CUDA:-}" ] && cmake_args+=("--CDPAJAMA_CUDA=$PAJAMA_CUDA")
note "building for CUDA architectures $ARCHS into $BUILD_DIR"
if ! phase build "$BUILD_TIMEOUT" node node_modules/cmake-js/bin/cmake-js "${cmake_args[@]}"; then
  FAILED+=("the native build failed (logs/build.log)")
  finish failed 1
fi
export PAJAMA_ADDON=$BUILD_DIR/Release/pajama_native.node
[ -f "$PAJAMA_ADDON" ] || { FAILED+=("the build left no $PAJAMA_ADDON"); finish failed 1; }

# ---- 5. checks and benchmarks ----
if [ "$BUILD_ONLY" = 1 ]; then
  phase load 60 node -e '
    const { GPU_CHECKS, cudaUnavailable } = require("./dist/benchmarks/gpu-checks.js");
    const { backendInfo } = require("./dist/lib/index.js");
    console.log(JSON.stringify(backendInfo().cuda));
    console.log(`${GPU_CHECKS.length} checks load; CUDA: ${cudaUnavailable() ?? "available"}`);' || FAILED+=("the compiled checks do not load (logs/load.log)")
  finish build-only "$([ ${#FAILED[@]} -eq 0 ] && echo 0 || echo 1)"
fi

phase checks "$CHECKS_TIMEOUT" node dist/benchmarks/gpu-checks.js --out "$WORK/checks.json"
rc=$?
[ "$rc" -eq 0 ] || FAILED+=("checks: exit status $rc (logs/checks.log)")
# attention once more on its FMA path only (bf16 with D 64 and 128 otherwise takes the tensor-core path)
PAJAMA_CUDA_ATTENTION=fma phase checks-fma "$FMA_TIMEOUT" node dist/benchmarks/gpu-checks.js --only attention --out "$WORK/checks-fma.json"
rc=$?
[ "$rc" -eq 0 ] || FAILED+=("checks with PAJAMA_CUDA_ATTENTION=fma: exit status $rc (logs/checks-fma.log)")
phase bench "$BENCH_TIMEOUT" node dist/benchmarks/gpu.js --out "$WORK/bench.json"
rc=$?
[ "$rc" -eq 0 ] || FAILED+=("benchmarks: exit status $rc (logs/bench.log)")
finish full "$([ ${#FAILED[@]} -eq 0 ] && echo 0 || echo 1)"
