#!/usr/bin/env node
// fuzz.js: coverage-guided fuzzing of the parsers a user feeds files to, with Jazzer.js (libFuzzer driving
// the instrumented JavaScript of lib/, compiled by tsc into build-fuzz/).
//
//   npm run fuzz -- [--seconds N] [--update-corpus] [--make-seeds] [target ...]
//
// Each target (test/fuzz/harness/targets.ts) runs for N seconds (default 30), one after another, starting
// from its committed corpus test/fuzz/corpus/<target>/. New interesting inputs go to a scratch folder and are
// merged into the committed corpus only with --update-corpus. A crash, hang (10 s per input) or memory blow-up
// (RSS over 2 GiB) is saved to test/fuzz/crashes/<target>/ and makes the run exit 1 (a hang only if it hangs
// again when replayed alone: see dropStalls); test/fuzz/replay.test.ts replays every stored input in the
// ordinary test suite. The last lines are one summary per target.
//
// @jazzer.js/fuzzer ships its Linux addon prebuilt against glibc 2.38 and libstdc++ 13. On older systems
// (Debian 12: glibc 2.36, GCC 12) the addon does not load; this script then builds
// scripts/fuzz-compat/glibc-compat.cc (the three symbols it needs from them), makes a copy of the addon in
// which the missing symbol versions are weak, and runs Jazzer.js with that copy and the library preloaded.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const outDir = path.join(root, 'build-fuzz');
const compatDir = path.join(outDir, 'compat');
const corpusRoot = path.join(root, 'test', 'fuzz', 'corpus');
const crashRoot = path.join(root, 'test', 'fuzz', 'crashes');
const HANG_MS = 10000;
const RSS_LIMIT_MB = 2048;

function usage(message) {
  if (message) console.error(`fuzz: ${message}`);
  console.error('usage: npm run fuzz -- [--seconds N] [--update-corpus] [--make-seeds] [target ...]');
  process.exit(2);
}

function parseArgs(argv) {
  const o = { seconds: 30, updateCorpus: false, makeSeeds: false, targets: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--seconds') {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) usage(`--seconds must be a positive integer, got ${argv[i]}`);
      o.seconds = v;
    } else if (a === '--update-corpus') o.updateCorpus = true;
    else if (a === '--make-seeds') o.makeSeeds = true;
    else if (a === '--help' || a === '-h') usage();
    else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else o.targets.push(a);
  }
  return o;
}

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', ...options });
  if (r.error) throw new Error(`fuzz: cannot run ${cmd}: ${r.error.message}`);
  return r;
}

/** Compiles lib/ and the harness into build-fuzz/ (tsc emits even when it reports type errors elsewhere). */
function compile() {
  const tsc = require.resolve('typescript/bin/tsc');
  const r = run(process.execPath, [tsc, '-p', path.join('test', 'fuzz', 'tsconfig.json')]);
  const entry = path.join(outDir, 'test', 'fuzz', 'harness', 'entry.js');
  if (r.status !== 0) {
    process.stderr.write(r.stdout + r.stderr);
    if (!fs.existsSync(entry)) throw new Error('fuzz: tsc failed to compile test/fuzz (errors above)');
    console.error('fuzz: tsc reported the type errors above; fuzzing the JavaScript it emitted');
  }
  return entry;
}

// ---------------------------------------------------------------------------------------------------------
// Loading the prebuilt addon on systems older than the one it was built on

const SHIMMED = new Set(['__isoc23_strtol', '__isoc23_strtoul', '_ZSt21ios_base_library_initv']);

/** Why `addon` does not load in a fresh node with `env`, or null when it loads. */
function loadError(addon, env) {
  const r = run(process.execPath, ['-e', `require(${JSON.stringify(addon)}).printVersion`], { env });
  return r.status === 0 ? null : r.stderr;
}

function cstring(buf, at) {
  let end = at;
  while (buf[end] !== 0) end++;
  return buf.toString('latin1', at, end);
}

/**
 * A copy of the ELF shared object `bytes` in which the required symbol versions named in `weaken` are marked
 * weak (VER_FLG_WEAK), so that the dynamic linker accepts a C library without them; the symbols that need
 * those versions must all be ones glibc-compat.cc defines.
 */
function weakenVersions(bytes, weaken) {
  const b = Buffer.from(bytes);
  if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1) throw new Error('fuzz: the Jazzer.js addon is not a 64-bit little-endian ELF file');
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shentsize = b.readUInt16LE(0x3a);
  const shnum = b.readUInt16LE(0x3c);
  const sections = Array.from({ length: shnum }, (_, i) => {
    const o = shoff + i * shentsize;
    return { type: b.readUInt32LE(o + 4), offset: Number(b.readBigUInt64LE(o + 0x18)), size: Number(b.readBigUInt64LE(o + 0x20)), link: b.readUInt32LE(o + 0x28), info: b.readUInt32LE(o + 0x2c) };
  });
  const verneed = sections.find((s) => s.type === 0x6ffffffe);
  const versym = sections.find((s) => s.type === 0x6fffffff);
  const dynsym = sections.find((s) => s.type === 11);
  if (!verneed || !versym || !dynsym) throw new Error('fuzz: the Jazzer.js addon has no symbol versions to patch');
  const strtab = sections[verneed.link].offset;
  const weakIndex = new Map(); // version index -> version name
  let vn = verneed.offset;
  for (let n = 0; n < verneed.info; n++) {
    const count = b.readUInt16LE(vn + 2);
    let aux = vn + b.readUInt32LE(vn + 8);
    for (let k = 0; k < count; k++) {
      const name = cstring(b, strtab + b.readUInt32LE(aux + 8));
      if (weaken.has(name)) {
        b.writeUInt16LE(b.readUInt16LE(aux + 4) | 0x2, aux + 4);
        weakIndex.set(b.readUInt16LE(aux + 6), name);
      }
      aux += b.readUInt32LE(aux + 12);
    }
    vn += b.readUInt32LE(vn + 12);
  }
  const dynstr = sections[dynsym.link].offset;
  for (let i = 0; i < dynsym.size / 24; i++) {
    const version = weakIndex.get(b.readUInt16LE(versym.offset + 2 * i) & 0x7fff);
    if (version === undefined) continue;
    const sym = cstring(b, dynstr + b.readUInt32LE(dynsym.offset + 24 * i));
    if (!SHIMMED.has(sym)) throw new Error(`fuzz: the Jazzer.js addon needs ${sym}@${version}, which this system lacks and scripts/fuzz-compat does not provide`);
  }
  return b;
}

/**
 * The environment under which Jazzer.js's addon loads: the plain one where it loads as shipped, else one
 * that preloads glibc-compat and redirects the addon to a copy with weak symbol versions.
 */
function fuzzerEnv() {
  const addon = path.join(path.dirname(require.resolve('@jazzer.js/fuzzer/package.json')), 'prebuilds', `fuzzer-${process.platform}-${process.arch}.node`);
  let why = loadError(addon, process.env);
  if (why === null) return { env: { ...process.env }, compat: false };
  const missing = /version `((?:GLIBC|GLIBCXX)_[0-9.]+)' not found/;
  if (process.platform !== 'linux' || !missing.test(why)) throw new Error(`fuzz: the Jazzer.js addon does not load:\n${why}`);

  fs.mkdirSync(compatDir, { recursive: true });
  const shim = path.join(compatDir, 'libglibc-compat.so');
  const source = path.join(__dirname, 'fuzz-compat', 'glibc-compat.cc');
  if (!fs.existsSync(shim) || fs.statSync(shim).mtimeMs < fs.statSync(source).mtimeMs) {
    const cxx = process.env.CXX || 'g++';
    const r = run(cxx, ['-O2', '-shared', '-fPIC', '-o', shim, source]);
    if (r.status !== 0) throw new Error(`fuzz: building ${source} with ${cxx} failed:\n${r.stderr}`);
  }
  const patched = path.join(compatDir, path.basename(addon));
  const redirect = path.join(compatDir, 'redirect.js');
  fs.writeFileSync(
    redirect,
    `// Written by scripts/fuzz.js: loads the patched copy of Jazzer.js's addon in place of the shipped one.\n` +
      `const Module = require('module');\nconst resolve = Module._resolveFilename;\n` +
      `Module._resolveFilename = function (request, ...rest) {\n` +
      `  return request === ${JSON.stringify(addon)} ? ${JSON.stringify(patched)} : resolve.call(this, request, ...rest);\n};\n`,
  );
  const env = {
    ...process.env,
    LD_PRELOAD: [shim, process.env.LD_PRELOAD].filter(Boolean).join(':'),
    NODE_OPTIONS: [`--require=${redirect}`, process.env.NODE_OPTIONS].filter(Boolean).join(' '),
  };
  const weaken = new Set();
  for (let attempt = 0; attempt < 4; attempt++) {
    weaken.add(why.match(missing)[1]);
    fs.writeFileSync(patched, weakenVersions(fs.readFileSync(addon), weaken));
    why = loadError(patched, env);
    if (why === null) return { env, compat: true, weakened: [...weaken] };
    if (!missing.test(why)) break;
  }
  throw new Error(`fuzz: the patched Jazzer.js addon does not load either:\n${why}`);
}

// ---------------------------------------------------------------------------------------------------------
// Running

function listFiles(dir) {
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => !f.startsWith('.')) : [];
}

function jazzerArgs(entry, target, corpora, libFuzzerArgs) {
  const cli = path.join(path.dirname(require.resolve('@jazzer.js/core/package.json')), 'dist', 'cli.js');
  const args = [cli, entry, ...corpora, '-i', 'build-fuzz/lib/', '-i', 'node_modules/fzstd/', '-e', 'build-fuzz/test/'];
  args.push('--disable_bug_detectors=.*', `--timeout=${HANG_MS}`);
  if (target.sync) args.push('--sync');
  const dict = target.dict ? [`-dict=${path.join(root, 'test', 'fuzz', 'dict', target.dict)}`] : [];
  return [...args, '--', `-max_len=${target.maxLen}`, `-rss_limit_mb=${RSS_LIMIT_MB}`, ...dict, ...libFuzzerArgs];
}

/** Runs `node args` with a hard wall-clock limit, echoing its output; resolves to its exit code and output. */
function runFuzzer(args, env, limitSeconds, echo = true) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const take = (stream) => (d) => {
      output += d;
      if (output.length > 1 << 20) output = output.slice(-(1 << 19));
      if (echo) stream.write(d);
    };
    child.stdout.on('data', take(process.stdout));
    child.stderr.on('data', take(process.stderr));
    const timer = setTimeout(() => child.kill('SIGKILL'), limitSeconds * 1000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), signal, output });
    });
  });
}

function lastNumber(output, re) {
  let m;
  let v;
  while ((m = re.exec(output)) !== null) v = Number(m[1]);
  return v;
}

/**
 * A known, open limitation, tracked rather than found again: fzstd (the zstd decompressor of the jsonl.zst
 * reader) executes every sequence of a compressed block as the block's bits say, without stopping at the
 * block's size: a corrupt block whose match lengths decode huge (read from past its bitstream) runs billions of
 * byte copies that land out of range (ignored by typed arrays), tens of seconds or more for a 140-byte input.
 * The frame scan refuses what it can see without decoding (a sequence count that cannot fit the block), not
 * match lengths. So a jsonl-zst timeout input whose data (after the harness's flag byte) also takes longer than
 * KNOWN_FZSTD_MS in fzstd alone, in one push, is this limitation: it is moved to test/fuzz/known/jsonl-zst/
 * (kept, not replayed by the test suite) with a warning, and does not fail the run. The fix is a decompressor
 * that stops at the block's size (libzstd through the addon).
 */
const KNOWN_FZSTD_MS = 5000;
const knownRoot = path.join(root, 'test', 'fuzz', 'known');

function hangsFzstdAlone(file) {
  const script =
    "const { Decompress } = require('fzstd'); const d = require('node:fs').readFileSync(process.argv[1]).subarray(1);" +
    'try { new Decompress(() => {}).push(d, true); } catch {}';
  const r = spawnSync(process.execPath, ['-e', script, file], { cwd: root, timeout: KNOWN_FZSTD_MS });
  return r.error?.code === 'ETIMEDOUT' || r.signal === 'SIGTERM';
}

/**
 * libFuzzer calls an input a hang when one run of it passes HANG_MS, and on a loaded machine a stall of the
 * whole process can do that to an input that takes milliseconds (CI once saved a 140-byte jsonl.zst input at
 * 41 executions/s; it replays in 7 ms). Each new timeout-* input is therefore run again, alone, in a fresh
 * fuzzer process with the same limit, three times: if every replay finishes, it was the machine, and the
 * input is dropped with a warning; if any replay times out or crashes, it stays and fails the run.
 */
async function dropStalls(name, found, crashes, entry, target, env) {
  const stalls = [];
  for (const f of found.filter((n) => n.startsWith('timeout-'))) {
    const file = path.join(crashes, f);
    let replays = 0;
    const started = Date.now();
    for (; replays < 3; replays++) {
      const r = await runFuzzer(jazzerArgs(entry, target, [file], ['-runs=1']), env, HANG_MS / 1000 + 120, false);
      if (r.code !== 0) break;
    }
    if (replays < 3) {
      if (name === 'jsonl-zst' && hangsFzstdAlone(file)) {
        const known = path.join(knownRoot, name);
        fs.mkdirSync(known, { recursive: true });
        fs.renameSync(file, path.join(known, f));
        console.error(
          `fuzz: warning: ${f} hangs fzstd itself (more than ${KNOWN_FZSTD_MS} ms for its data in one push): the known ` +
            `limitation of fzstd's sequence execution (see KNOWN_FZSTD_MS), moved to ${path.relative(root, known)}/, not a new finding`,
        );
        stalls.push(f);
      }
      continue;
    }
    const ms = (Date.now() - started) / replays;
    console.error(`fuzz: warning: ${f} timed out while fuzzing but ran to the end in each of 3 replays (${ms.toFixed(0)} ms per fuzzer process); counted as a stall of the machine and dropped`);
    fs.rmSync(file, { force: true });
    stalls.push(f);
  }
  return stalls;
}

async function fuzzTarget(name, target, entry, env, o) {
  const corpus = path.join(corpusRoot, name);
  const crashes = path.join(crashRoot, name);
  fs.mkdirSync(crashes, { recursive: true });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `pajama-fuzz-${name}-`));
  const before = new Set(listFiles(crashes));
  const scratch = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), `pajama-fuzz-${name}-`));
  const targetEnv = { ...env, PAJAMA_FUZZ_TARGET: name, PAJAMA_FUZZ_SCRATCH: scratch };
  const started = Date.now();
  try {
    console.log(`\nfuzz: ${name} for ${o.seconds} s (corpus ${path.relative(root, corpus)}, ${listFiles(corpus).length} inputs)`);
    const libFuzzerArgs = [`-max_total_time=${o.seconds}`, `-artifact_prefix=${crashes}${path.sep}`, '-print_final_stats=1'];
    const r = await runFuzzer(jazzerArgs(entry, target, [work, corpus], libFuzzerArgs), targetEnv, o.seconds + 120);
    let found = listFiles(crashes).filter((f) => !before.has(f));
    const execs = lastNumber(r.output, /stat::number_of_executed_units:\s*(\d+)/g) ?? lastNumber(r.output, /^#(\d+)\s/gm) ?? 0;
    const seconds = (Date.now() - started) / 1000;
    const newInputs = listFiles(work).length;
    let corpusSize = listFiles(corpus).length;
    if (o.updateCorpus && r.code === 0 && newInputs > 0) {
      const m = await runFuzzer(jazzerArgs(entry, target, [corpus, work], ['-merge=1']), targetEnv, 600);
      if (m.code !== 0) throw new Error(`fuzz: merging the new inputs of ${name} into ${corpus} failed`);
      corpusSize = listFiles(corpus).length;
      const bytes = listFiles(corpus).reduce((s, f) => s + fs.statSync(path.join(corpus, f)).size, 0);
      if (corpusSize > 100 || bytes > 1 << 20) console.error(`fuzz: warning: ${name}'s corpus has ${corpusSize} files, ${bytes} bytes (keep it under 100 files, 1 MiB)`);
    }
    const stalls = await dropStalls(name, found, crashes, entry, target, targetEnv);
    found = found.filter((f) => !stalls.includes(f));
    const failed = (r.code !== 0 && stalls.length === 0) || found.length > 0;
    if (failed && found.length === 0) console.error(`fuzz: ${name}: the fuzzer exited with ${r.signal ?? `status ${r.code}`} without saving an input`);
    return { name, execs, seconds, corpusSize, newInputs, crashes: found.map((f) => path.relative(root, path.join(crashes, f))), failed };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const entry = compile();
  if (o.makeSeeds) {
    const r = run(process.execPath, [path.join(outDir, 'test', 'fuzz', 'make-seeds.js'), corpusRoot], { stdio: 'inherit' });
    process.exit(r.status ?? 1);
  }
  const { targets } = require(path.join(outDir, 'test', 'fuzz', 'harness', 'targets.js'));
  const names = o.targets.length > 0 ? o.targets : Object.keys(targets);
  for (const n of names) if (!(n in targets)) usage(`unknown target ${n} (targets: ${Object.keys(targets).join(', ')})`);
  const { env, compat, weakened } = fuzzerEnv();
  if (compat) console.log(`fuzz: this system lacks ${weakened.join(', ')}; using the Jazzer.js addon with scripts/fuzz-compat (see scripts/fuzz.js)`);

  const results = [];
  for (const n of names) results.push(await fuzzTarget(n, targets[n], entry, env, o));
  console.log('\nfuzz summary (Jazzer.js):');
  for (const r of results) {
    const rate = r.seconds > 0 ? Math.round(r.execs / r.seconds) : 0;
    const crashes = r.crashes.length > 0 ? `${r.crashes.length} (${r.crashes.join(', ')})` : r.failed ? 'fuzzer failed' : '0';
    console.log(`fuzz ${r.name}: ${r.execs} executions in ${r.seconds.toFixed(0)} s (${rate}/s), corpus ${r.corpusSize} inputs (${r.newInputs} new this run), crashes ${crashes}`);
  }
  process.exit(results.some((r) => r.failed) ? 1 : 0);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
