#!/usr/bin/env node
// gpu-report.js: writes the one JSON report of scripts/gpu-check.sh from what its phases left: the machine
// (nvidia-smi), the carry's manifest, each phase's exit status and time, the build's settings, every check's
// result (benchmarks/gpu-checks.ts --out) and the benchmark numbers (benchmarks/gpu.ts --out), with the end of
// the log of every phase that failed. Called by gpu-check.sh; plain node, no dependencies.
//
//   node scripts/gpu-report.js --out FILE --mode full|build-only|failed --phases TSV --logs DIR --started EPOCH
//        [--gpu-csv "name, driver, memory, cc"] [--archs A] [--cublas-root DIR] [--manifest FILE]
//        [--checks JSON] [--checks-fma JSON] [--bench JSON] [--failed MESSAGE]...
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const opts = { failed: [] };
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i += 2) {
  const key = args[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
  if (!args[i].startsWith('--') || i + 1 >= args.length) {
    process.stderr.write(`gpu-report: bad arguments near '${args[i]}'\n`);
    process.exit(2);
  }
  if (key === 'failed') opts.failed.push(args[i + 1]);
  else opts[key] = args[i + 1];
}
if (!opts.out) {
  process.stderr.write('gpu-report: --out FILE is required\n');
  process.exit(2);
}

function readJson(file, what) {
  if (!file) return null;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    opts.failed.push(`${what}: cannot read ${file}: ${e.message}`);
    return null;
  }
}

function tail(file, lines = 60) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return null;
  }
}

const phases = [];
if (opts.phases && fs.existsSync(opts.phases)) {
  for (const line of fs.readFileSync(opts.phases, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const [name, status, seconds] = line.split('\t');
    const p = { name, exitStatus: Number(status), seconds: Number(seconds) };
    if (p.exitStatus === 124) p.timedOut = true;
    if (p.exitStatus !== 0 && opts.logs) p.logTail = tail(path.join(opts.logs, `${name}.log`));
    phases.push(p);
  }
}

let gpu = null;
if (opts.gpuCsv) {
  const [name, driver, memory, computeCapability] = opts.gpuCsv.split(',').map((s) => s.trim());
  gpu = { name, driver, memory, computeCapability };
}

const manifest = {};
if (opts.manifest && fs.existsSync(opts.manifest)) {
  for (const line of fs.readFileSync(opts.manifest, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) manifest[line.slice(0, eq)] = line.slice(eq + 1);
  }
}

const checks = readJson(opts.checks, 'checks');
// The attention checks again with PAJAMA_CUDA_ATTENTION=fma: their results join the others under that prefix.
const fma = readJson(opts.checksFma, 'checks (PAJAMA_CUDA_ATTENTION=fma)');
if (checks && fma) {
  for (const r of fma.results) checks.results.push({ ...r, name: `${r.name} [PAJAMA_CUDA_ATTENTION=fma]` });
  checks.passed += fma.passed;
  checks.failed += fma.failed;
}
const bench = readJson(opts.bench, 'benchmarks');
const buildLog = opts.logs ? tail(path.join(opts.logs, 'build.log'), 400) : null;
// The configure step's own lines about CUDA and cuBLAS (what the build compiled and why not).
const buildNotes = buildLog ? buildLog.split('\n').filter((l) => /^\s*(-- )?pajama:/.test(l) && l.length < 400).slice(0, 20) : [];

const report = {
  report: 'gpu-check',
  mode: opts.mode,
  date: new Date().toISOString(),
  ok: opts.failed.length === 0 && (opts.mode !== 'full' || (checks !== null && checks.failed === 0 && bench !== null)),
  problems: opts.failed,
  totalSeconds: opts.started ? Math.round(Date.now() / 1000 - Number(opts.started)) : null,
  machine: { gpu, cpu: os.cpus()[0]?.model ?? null, cores: os.cpus().length, memoryBytes: os.totalmem(), kernel: os.release(), node: process.version },
  build: { cudaArchitectures: opts.archs || null, cublasRoot: opts.cublasRoot || null, notes: buildNotes },
  carry: Object.keys(manifest).length ? manifest : null,
  phases,
  checks: checks && {
    seed: checks.seed,
    passed: checks.passed,
    failed: checks.failed,
    cuda: checks.cuda,
    results: checks.results,
  },
  benchmarks: bench,
};

fs.mkdirSync(path.dirname(path.resolve(opts.out)), { recursive: true });
fs.writeFileSync(opts.out, JSON.stringify(report, null, 2) + '\n');
const summary = checks ? `${checks.passed} checks passed, ${checks.failed} failed` : 'no check results';
process.stdout.write(`gpu-report: ${report.ok ? 'OK' : 'NOT OK'}: ${summary}${bench ? ', benchmarks recorded' : ''} -> ${opts.out}\n`);
