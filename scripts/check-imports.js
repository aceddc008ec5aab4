#!/usr/bin/env node
// check-imports.js: the import-layer check over lib/. It parses every lib/**/*.ts with the TypeScript compiler
// (already a dev dependency; parsing, not regexes, so comments and strings never count), builds the graph of
// relative imports, and fails when
//   (a) modules import each other in a cycle (a strongly connected component of more than one file, or a file
//       importing itself), or
//   (b) a file imports a file of a higher layer. The layers, lowest first:
//         0  native.ts                 the typed native surface
//         1  core/                     tensors, ops, errors, file-system helpers, atomic writes
//         2  model/, optim/, data/     siblings: they may import each other (cycles are still reported)
//            inside data/, three stages, lowest first: training data (data/*.ts: shards, manifest,
//            mixture, loader), data/tokenizers/, data/corpus/ (the prepare pipeline); data/index.ts
//            re-exports all three
//         3  train/, eval/, dist/ (data parallelism across processes: the cluster planner, the communicator)
//         4  cli/
//       index.ts (the public API) may import anything; nothing may import it.
// Every kind of import counts, `import type` included: a type-only arrow is still coupling between layers.
// Counted forms: import ... from, export ... from, import '...', import('...'), typeof import('...'),
// require('...'), import x = require('...'). Imports of packages (not starting with '.') are ignored.
//
// Usage: node scripts/check-imports.js [dir]   (dir defaults to lib/ next to this script's folder)
// Exit 0 with a one-line summary when clean, 1 with the list of problems, 2 when it cannot run.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const ts = require('typescript');

/** Layer of a file by its path relative to the root (posix separators); null when undeclared. */
function layerOf(rel) {
  if (rel === 'index.ts') return 5;
  if (rel === 'native.ts') return 0;
  const top = rel.split('/')[0];
  const layers = { core: 1, model: 2, optim: 2, data: 2, train: 3, eval: 3, dist: 3, cli: 4 };
  return rel.includes('/') && Object.hasOwn(layers, top) ? layers[top] : null;
}

/** Rank of a data/ file among data's stages (0 training data, 1 tokenizers, 2 corpus, 3 the index); null outside data/. */
function dataStageOf(rel) {
  const parts = rel.split('/');
  if (parts[0] !== 'data') return null;
  if (rel === 'data/index.ts') return 3; // data's public surface re-exports all three stages
  if (parts.length === 2) return 0;
  return { tokenizers: 1, corpus: 2 }[parts[1]] ?? null;
}

const DATA_STAGES = ['training data (data/*.ts)', 'data/tokenizers', 'data/corpus', 'data/index.ts'];

function listTs(dir, root, out) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) listTs(p, root, out);
    else if (e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(path.relative(root, p).split(path.sep).join('/'));
  }
  return out;
}

/** Every module specifier in `file`'s source, with whether the import is type-only. */
function specifiersOf(file) {
  const text = fs.readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found = [];
  const add = (node, typeOnly) => {
    if (node && ts.isStringLiteralLike(node)) found.push({ spec: node.text, typeOnly, line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1 });
  };
  const visit = (node) => {
    if (ts.isImportDeclaration(node)) add(node.moduleSpecifier, !!node.importClause?.isTypeOnly);
    else if (ts.isExportDeclaration(node)) add(node.moduleSpecifier, node.isTypeOnly);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) add(node.moduleReference.expression, node.isTypeOnly);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal, true);
    else if (ts.isCallExpression(node) && node.arguments.length >= 1) {
      const callee = node.expression;
      if (callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require')) add(node.arguments[0], false);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

/** The root-relative file a relative specifier names, or null when it leaves the root or names no .ts file. */
function resolve(root, fromRel, spec) {
  const base = path.resolve(root, path.dirname(fromRel), spec);
  const stem = base.replace(/\.(js|ts)$/, '');
  for (const cand of [`${stem}.ts`, path.join(stem, 'index.ts')]) {
    const rel = path.relative(root, cand);
    if (rel.startsWith('..') || path.isAbsolute(rel)) return null;
    if (fs.existsSync(cand)) return rel.split(path.sep).join('/');
  }
  return null;
}

/** Strongly connected components (Tarjan), each sorted; only those that are cycles. */
function cyclesOf(nodes, edges) {
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const onStack = new Set();
  const stack = [];
  const out = [];
  const strong = (v) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const comp = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (edges.get(v) ?? new Set()).has(v)) out.push(comp.sort());
    }
  };
  for (const v of nodes) if (!idx.has(v)) strong(v);
  return out;
}

function check(root) {
  const files = listTs(root, root, []);
  const edges = new Map(files.map((f) => [f, new Set()]));
  const where = new Map(); // "from\0to" -> first import's line and kind
  const problems = [];
  let edgeCount = 0;
  for (const from of files) {
    if (layerOf(from) === null) problems.push(`${from}: not in a declared layer (native.ts, core/, model/, optim/, data/, train/, eval/, dist/, cli/, index.ts)`);
    else if (from.startsWith('data/') && dataStageOf(from) === null) problems.push(`${from}: not in a declared stage of data/ (data/*.ts, data/tokenizers/, data/corpus/)`);
    for (const { spec, typeOnly, line } of specifiersOf(path.join(root, from))) {
      if (!spec.startsWith('.')) continue;
      const to = resolve(root, from, spec);
      if (to === null) continue; // outside the root (e.g. the native addon's build folder) or not TypeScript
      if (!edges.get(from).has(to)) {
        edges.get(from).add(to);
        where.set(`${from}\0${to}`, { line, typeOnly });
        edgeCount++;
      }
    }
  }
  for (const [from, tos] of edges) {
    const lf = layerOf(from);
    for (const to of tos) {
      const lt = layerOf(to);
      if (lf === null || lt === null) continue;
      const w = where.get(`${from}\0${to}`);
      if (to === 'index.ts' || lt > lf) {
        problems.push(`${from}:${w.line}: upward import of ${to}${w.typeOnly ? ' (type-only)' : ''}: layer ${lf} may not import layer ${lt}`);
      } else {
        const sf = dataStageOf(from);
        const st = dataStageOf(to);
        if (sf !== null && st !== null && st > sf) {
          problems.push(`${from}:${w.line}: upward import of ${to}${w.typeOnly ? ' (type-only)' : ''}: ${DATA_STAGES[sf]} may not import ${DATA_STAGES[st]}`);
        }
      }
    }
  }
  for (const comp of cyclesOf(files, edges)) {
    const arrows = [];
    for (const f of comp) for (const t of edges.get(f)) if (comp.includes(t)) arrows.push(`${f} -> ${t}`);
    problems.push(`import cycle through ${comp.length} file${comp.length > 1 ? 's' : ''}: ${comp.join(', ')} (${arrows.join('; ')})`);
  }
  return { files: files.length, edges: edgeCount, problems };
}

function main() {
  const root = path.resolve(process.argv[2] ?? path.join(__dirname, '..', 'lib'));
  let st;
  try {
    st = fs.statSync(root);
  } catch (e) {
    console.error(`check-imports: cannot read '${root}': ${e.message}`);
    process.exit(2);
  }
  if (!st.isDirectory()) {
    console.error(`check-imports: '${root}' is not a directory`);
    process.exit(2);
  }
  const { files, edges, problems } = check(root);
  const shown = path.relative(process.cwd(), root) || '.';
  if (problems.length > 0) {
    console.error(`check-imports: ${problems.length} problem${problems.length > 1 ? 's' : ''} in ${shown} (${files} files, ${edges} imports):`);
    for (const p of problems) console.error(`  ${p}`);
    process.exit(1);
  }
  console.log(`check-imports: OK: ${files} files, ${edges} imports in ${shown}, no cycles, no upward imports`);
}

if (require.main === module) main();
module.exports = { check, layerOf, dataStageOf };
