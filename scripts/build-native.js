#!/usr/bin/env node
// Builds the native addon into build/Release/pajama_native.node: with cmake-js when CMake is on the PATH,
// otherwise with node-gyp and binding.gyp (same CPU sources). PAJAMA_BUILD=gyp forces node-gyp;
// PAJAMA_BUILD_DIR puts a cmake-js build elsewhere (then load it with PAJAMA_ADDON).
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const bin = (name) => path.join(root, 'node_modules', '.bin', name);

function run(cmd, args) {
  console.log(`[pajama-train] ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.error) throw r.error;
  return r.status === 0;
}

const hasCmake = spawnSync('cmake', ['--version'], { stdio: 'ignore' }).status === 0;
const forced = process.env.PAJAMA_BUILD;
let ok;
if (forced === 'gyp' || (!hasCmake && forced !== 'cmake')) {
  if (!hasCmake) console.log('[pajama-train] cmake not found: building with node-gyp (binding.gyp)');
  // node-gyp downloads Node's headers unless told where they are: npm passes its nodedir setting when this
  // runs as an npm script; a system Node (Debian's nodejs) ships them under /usr.
  const fs = require('node:fs');
  const nodedir =
    process.env.npm_config_nodedir || (fs.existsSync('/usr/include/node/node_api.h') ? '/usr' : undefined);
  ok = run(bin('node-gyp'), ['rebuild', ...(nodedir ? [`--nodedir=${nodedir}`] : [])]);
} else {
  // PAJAMA_ONEDNN=OFF / PAJAMA_CUDA=OFF pass through to CMake (a portable-GEMM or CPU-only build), and so do
  // PAJAMA_SANITIZE=address,undefined (the sanitizer build, see npm run build:asan), PAJAMA_CUDA_ARCHITECTURES
  // (e.g. 90a; default 80;90a), PAJAMA_CUBLAS_ROOT (a directory with include/cublasLt.h and lib/libcublasLt.so*),
  // PAJAMA_NCCL=OFF and PAJAMA_NCCL_ROOT (a directory with include/nccl.h and lib/libnccl.so*).
  const defines = ['PAJAMA_ONEDNN', 'PAJAMA_CUDA', 'PAJAMA_MPI', 'PAJAMA_SANITIZE', 'PAJAMA_CUDA_ARCHITECTURES', 'PAJAMA_CUBLAS_ROOT',
    'PAJAMA_NCCL', 'PAJAMA_NCCL_ROOT']
    .filter((k) => process.env[k])
    .map((k) => `--CD${k}=${process.env[k]}`);
  const out = process.env.PAJAMA_BUILD_DIR ? ['--out', process.env.PAJAMA_BUILD_DIR] : [];
  ok = run(bin('cmake-js'), ['compile', ...out, ...defines]);
}
process.exit(ok ? 0 : 1);
