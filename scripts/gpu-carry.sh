#!/usr/bin/env bash
# gpu-carry.sh: prepares .gpu-carry/, what scripts/gpu-check.sh needs on a GPU machine that has nvcc, CMake and
# the Python nvidia-* wheels but no Node.js and no network. Run it here, on a machine with Node.js and this
# checkout's node_modules (npm ci), after the last source change; then take .gpu-carry/ along with the working
# tree and run scripts/gpu-check.sh there.
#
#   .gpu-carry/node.xz              this machine's `node` binary, xz -9 (x86-64 Linux, glibc >= 2.28)
#   .gpu-carry/node_modules.tar.xz  what the build and the run load: cmake-js and its dependencies,
#                                   node-addon-api, node-api-headers (Node-API headers, so nothing is
#                                   downloaded), and fzstd (lib/ loads it); not tap, not typescript
#   .gpu-carry/dist.tar.xz          dist/ compiled now (lib, benchmarks, the test helpers the checks use),
#                                   without source maps and declarations
#   .gpu-carry/manifest.txt         when, from which sources (a hash gpu-check.sh recomputes: it refuses a
#                                   dist older than the sources), which node
#
# Prints each part's size and the total with the working tree: the device machine takes at most 64 MiB of
# tree and carry together, and the script fails when they exceed it.
set -euo pipefail
cd "$(dirname "$0")/.."

CARRY=.gpu-carry
LIMIT=$((64 * 1024 * 1024))
ROOT_PACKAGES=(cmake-js node-addon-api node-api-headers fzstd)

die() {
  echo "gpu-carry: $*" >&2
  exit 1
}
command -v node >/dev/null || die "node is not on the PATH"
command -v xz >/dev/null || die "xz is not installed (apt-get install xz-utils)"
[ -x node_modules/typescript/bin/tsc ] || die "node_modules/typescript is missing: run npm ci first"

# The hash of every source dist/ is compiled from; gpu-check.sh computes the same.
source_hash() {
  find lib benchmarks test/helpers -type f -name '*.ts' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | cat - tsconfig.json | sha256sum | cut -d' ' -f1
}

rm -rf "$CARRY"
mkdir -p "$CARRY"

echo "[gpu-carry] compiling the TypeScript (tsc -p tsconfig.json)"
node node_modules/typescript/bin/tsc -p tsconfig.json
for f in dist/benchmarks/gpu-checks.js dist/benchmarks/gpu.js dist/lib/index.js; do
  [ -f "$f" ] || die "$f is missing after tsc"
done

NODE_BIN=$(readlink -f "$(command -v node)")
echo "[gpu-carry] node $(node --version) from $NODE_BIN -> $CARRY/node.xz (xz -9, about a minute)"
xz -9 -T0 -c "$NODE_BIN" >"$CARRY/node.xz"

# The packages and their dependency closure, resolved as Node resolves them (nested node_modules first).
mapfile -t PACKAGES < <(node - "${ROOT_PACKAGES[@]}" <<'EOF'
const fs = require('node:fs');
const path = require('node:path');
const root = process.cwd();
const found = new Set();
function locate(name, fromDir) {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (dir === root || dir === path.dirname(dir)) return null;
  }
}
function add(name, fromDir) {
  const dir = locate(name, fromDir);
  if (!dir) throw new Error(`gpu-carry: package ${name} (needed from ${path.relative(root, fromDir) || '.'}) is not installed`);
  const rel = path.relative(root, dir);
  if (found.has(rel)) return;
  found.add(rel);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
    if (pkg.optionalDependencies?.[dep] && !locate(dep, dir)) continue;
    add(dep, dir);
  }
}
for (const name of process.argv.slice(2)) add(name, root);
// nested packages are inside their parents' folders: list only the outermost
const all = [...found].sort();
for (const p of all) if (!all.some((q) => q !== p && p.startsWith(q + path.sep))) console.log(p);
EOF
)
echo "[gpu-carry] node_modules: ${#PACKAGES[@]} packages (${ROOT_PACKAGES[*]} and their dependencies)"
tar -cf - "${PACKAGES[@]}" | xz -9 -T0 >"$CARRY/node_modules.tar.xz"

echo "[gpu-carry] dist -> $CARRY/dist.tar.xz"
tar -cf - --exclude='*.map' --exclude='*.d.ts' dist/lib dist/benchmarks dist/test | xz -9 -T0 >"$CARRY/dist.tar.xz"

{
  echo "created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "sourceHash=$(source_hash)"
  echo "node=$(node --version)"
  echo "gitHead=$(git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "gitDirty=$(git status --porcelain 2>/dev/null | wc -l | tr -d ' ') files"
  echo "packages=${PACKAGES[*]}"
} >"$CARRY/manifest.txt"

# What the device machine receives: tracked and untracked-not-ignored files, plus the carry.
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
carry_bytes=$(du -cb "$CARRY"/* | tail -n 1 | cut -f1)
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "[gpu-carry] sizes:"
for f in "$CARRY"/*; do printf '  %-32s %s\n' "$f" "$(mib "$(stat -c %s "$f")")"; done
printf '  %-32s %s\n' "carry total" "$(mib "$carry_bytes")"
printf '  %-32s %s\n' "working tree (what travels)" "$(mib "$tree_bytes")"
printf '  %-32s %s of %s\n' "together" "$(mib $((carry_bytes + tree_bytes)))" "$(mib $LIMIT)"
[ $((carry_bytes + tree_bytes)) -le $LIMIT ] || die "the carry and the working tree exceed 64 MiB together"
echo "[gpu-carry] done: take $CARRY/ along (the device tool: carry [\"$CARRY\"]) and run scripts/gpu-check.sh there"
