// evaluateTasks end to end: a stub model with a known distribution over bytes gives hand-computable
// log-likelihoods (acc vs acc_norm, MMLU's unweighted mean over subjects, TruthfulQA MC2, stderr), and a tiny
// MptModel's results match the float64 reference of the same rules; progress, --limit and bad inputs.
import t from 'tap';
import { MptModel } from '../../lib/model/mpt';
import { mptConfig } from '../../lib/model/config';
import { evaluateTasks, type EvalProgress, type TaskInput } from '../../lib/eval/harness';
import { encodePair, type ScoringModel } from '../../lib/eval/score';
import { buildTaskDocs, type TaskRow } from '../../lib/eval/tasks';
import { byteTokenizer } from '../helpers/byte-tokenizer';
import { mptLogitsRef, weightsOf } from '../helpers/mpt-reference';
import { seed } from '../helpers/reference';

t.comment(`seed ${seed}`);

// Every row predicts the same distribution over the 257 byte ids: logit 0 for all but a few bytes.
const LOGIT: Record<string, number> = { ' ': 2, A: 0, B: 3, C: 1, D: -1, x: 1, y: 0.5 };
const logitOf = (id: number) => LOGIT[String.fromCharCode(id)] ?? 0;
let lse = 0;
for (let v = 0; v < 257; v++) lse += Math.exp(logitOf(v));
lse = Math.log(lse);
/** log p of a text under the stub: the sum over its bytes. */
const lp = (s: string) => Array.from(new TextEncoder().encode(s)).reduce((a, b) => a + logitOf(b) - lse, 0);

function stubModel(): ScoringModel & { forwards: number } {
  const V = 264; // padded: rows 257..263 at -Infinity, never read
  const stub = {
    forwards: 0,
    config: { maxSeqLen: 4096, vocabSize: V, realVocabSize: 257 },
    async positionLogits(_ids: Int32Array, _B: number, _T: number, positions: Int32Array) {
      stub.forwards++;
      const out = new Float32Array(positions.length * V).fill(-Infinity);
      for (let r = 0; r < positions.length; r++) for (let v = 0; v < 257; v++) out[r * V + v] = logitOf(v);
      return out;
    },
  };
  return stub;
}

const arcRow = (q: string, texts: string[], key: string): TaskRow => ({
  question: q,
  choices: { text: texts, label: texts.map((_, i) => 'ABCDE'[i]) },
  answerKey: key,
});
const arcTrain = Array.from({ length: 25 }, (_, i) => arcRow(`train ${i}`, ['x', 'y'], 'A'));

const mmluRow = (subject: string, answer: number): TaskRow => ({ question: `q ${subject}`, subject, choices: ['w', 'x', 'y', 'z'], answer });
const mmluDev = ['anatomy', 'virology'].flatMap((s) => Array.from({ length: 5 }, () => mmluRow(s, 0)));

t.test('hand-computed metrics from a known distribution', async (t) => {
  const model = stubModel();
  // ARC: ' x' beats ' yyyy' on acc; per character of the choice (1 and 4) 'yyyy' wins: acc_norm differs.
  t.ok(lp(' x') > lp(' yyyy') && lp(' x') / 1 < lp(' yyyy') / 4, 'the case is what it claims');
  const arc: TaskInput = {
    name: 'arc_challenge',
    eval: [arcRow('one', ['x', 'yyyy'], 'B'), arcRow('two', ['x', 'yyyy'], 'A'), arcRow('three', ['x', 'yyyy', 'C'], 'C')],
    fewshot: arcTrain,
    where: 'arc files',
  };
  // MMLU: the stub always prefers ' B'; anatomy has 3 documents (1 with gold B), virology 1 (gold B).
  const mmlu: TaskInput = {
    name: 'mmlu',
    eval: [mmluRow('anatomy', 1), mmluRow('virology', 1), mmluRow('anatomy', 0), mmluRow('anatomy', 2)],
    fewshot: mmluDev,
    where: 'mmlu files',
  };
  const tqaRow = (choices: string[], labels: number[]): TaskRow => ({ question: 'q?', mc2_targets: { choices, labels } });
  const tqa: TaskInput = { name: 'truthfulqa_mc2', eval: [tqaRow(['x', 'y', 'B'], [1, 1, 0]), tqaRow(['B', 'C'], [1, 0])], fewshot: null, where: 'tqa files' };
  const progress: EvalProgress[] = [];
  const res = await evaluateTasks(model, byteTokenizer, [arc, mmlu, tqa], { onProgress: (p) => progress.push(p) });
  t.same(res.map((r) => [r.task, r.numFewshot, r.docs]), [['arc_challenge', 25, 3], ['mmlu', 5, 4], ['truthfulqa_mc2', 0, 2]]);

  // ARC: doc 1 gold B: acc 0 (x wins), acc_norm 1; doc 2 gold A: acc 1, acc_norm 0; doc 3 gold C: ' C' ties with
  // ' x' (the same logits), and the first index wins; acc_norm as computed here.
  const ll3 = [lp(' x'), lp(' yyyy'), lp(' C')];
  t.ok(ll3[2] === ll3[0], "'C' and 'x' tie on acc: the first index wins (x), so doc 3 acc is 0");
  const norm3 = [ll3[0], ll3[1] / 4, ll3[2]];
  const accNorm3 = norm3.indexOf(Math.max(...norm3)) === 2 ? 1 : 0;
  t.same(res[0].metrics, { acc: 1 / 3, acc_norm: (1 + accNorm3) / 3 });
  t.equal(res[0].primary.metric, 'acc_norm');
  t.equal(res[0].primary.value, res[0].metrics.acc_norm);
  const se = (xs: number[]) => {
    const m = xs.reduce((a, b) => a + b) / xs.length;
    return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1) / xs.length);
  };
  t.equal(res[0].stderr.acc, se([0, 1, 0]));

  // MMLU: anatomy 1/3, virology 1/1: the mean over subjects is 2/3 (the mean over documents would be 1/2).
  t.same(res[1].subjects, [
    { subject: 'anatomy', docs: 3, acc: 1 / 3 },
    { subject: 'virology', docs: 1, acc: 1 },
  ]);
  t.equal(res[1].metrics.acc, (1 / 3 + 1) / 2);
  t.same(res[1].primary, { metric: 'acc', value: (1 / 3 + 1) / 2 });
  t.ok(Number.isNaN(res[1].stderr.acc), 'a subject of one document has no stderr, nor the mean');

  // TruthfulQA MC2 by hand: p = exp(ll), true mass over all.
  const p = (s: string) => Math.exp(lp(' ' + s));
  const mc2a = (p('x') + p('y')) / (p('x') + p('y') + p('B'));
  const mc2b = p('B') / (p('B') + p('C'));
  t.ok(Math.abs(res[2].metrics.mc2 - (mc2a + mc2b) / 2) < 1e-12, `mc2 ${res[2].metrics.mc2} vs ${(mc2a + mc2b) / 2}`);
  t.ok(Math.abs(res[2].stderr.mc2 - se([mc2a, mc2b])) < 1e-12);
  t.equal(res[2].primary.metric, 'mc2');

  // Progress: per task, requests scored, reaching the total; MMLU's 16 requests share 4 forwards' inputs.
  const last = (task: string) => progress.filter((q) => q.task === task).at(-1);
  t.same(last('arc_challenge'), { task: 'arc_challenge', done: 7, total: 7 });
  t.same(last('mmlu'), { task: 'mmlu', done: 16, total: 16 });
  t.same(last('truthfulqa_mc2'), { task: 'truthfulqa_mc2', done: 5, total: 5 });

  // --limit: the first document per task, per subject for mmlu.
  model.forwards = 0;
  const lim = await evaluateTasks(model, byteTokenizer, [mmlu], { limit: 1 });
  t.same(lim[0].subjects, [
    { subject: 'anatomy', docs: 1, acc: 1 },
    { subject: 'virology', docs: 1, acc: 1 },
  ]);
  t.equal(model.forwards, 1, "two documents' four choices: two inputs, one batch");
});

t.test('a tiny MptModel against the float64 reference of the same rules', async (t) => {
  const cfg = mptConfig({ dModel: 32, nHeads: 2, nLayers: 2, maxSeqLen: 48, vocabSize: 264, realVocabSize: 257 });
  const model = new MptModel(cfg, { seed: seed ^ 0x4a, inference: true });
  const w = weightsOf(model);
  const tasks: TaskInput[] = [
    { name: 'arc_challenge', eval: [arcRow('Which?', ['red', 'a blue one'], 'B'), arcRow('Why?', ['x', 'because', 'so'], 'C')], fewshot: arcTrain, where: 'arc' },
    {
      name: 'hellaswag',
      eval: [{ activity_label: 'Cooking', ctx_a: 'He stirs the pot.', ctx_b: 'he', endings: [' adds salt.', ' leaves [the] room.'], label: '0' }],
      fewshot: Array.from({ length: 10 }, (_, i) => ({ activity_label: 'Walk', ctx_a: `Step ${i}.`, ctx_b: 'she', endings: ['goes.', 'stops.'], label: i % 2 })),
      where: 'hs',
    },
    { name: 'mmlu', eval: [mmluRow('anatomy', 2), mmluRow('virology', 3)], fewshot: mmluDev, where: 'mmlu' },
    { name: 'truthfulqa_mc2', eval: [{ question: 'Is it?', mc2_targets: { choices: ['Yes.', 'No.', 'Maybe.'], labels: [1, 0, 0] } }], fewshot: null, where: 'tqa' },
  ];
  const res = await evaluateTasks(model, byteTokenizer, tasks, { batchTokens: 100 });
  for (const [k, input] of tasks.entries()) {
    const docs = buildTaskDocs(input.name, input.eval, input.fewshot, input.where);
    // Reference log-likelihoods: encode, cut to maxSeqLen + 1 from the left, float64 forward, log-softmax.
    const lls = docs.map((d) =>
      d.choices.map((c) => {
        const pair = encodePair(byteTokenizer, d.context, ' ' + c);
        const inp = [...pair.context, ...pair.continuation].slice(-(cfg.maxSeqLen + 1)).slice(0, -1);
        const logits = mptLogitsRef(cfg, w, inp, 1, inp.length);
        const V = cfg.realVocabSize;
        return pair.continuation.reduce((sum, tok, j) => {
          const row = logits.subarray((inp.length - pair.continuation.length + j) * V, (inp.length - pair.continuation.length + j + 1) * V);
          const mx = Math.max(...row);
          return sum + row[tok] - mx - Math.log(row.reduce((a, x) => a + Math.exp(x - mx), 0));
        }, 0);
      }),
    );
    const r = res[k];
    if (input.name === 'truthfulqa_mc2') {
      const e = lls[0].map(Math.exp);
      t.ok(Math.abs(r.metrics.mc2 - e[0] / (e[0] + e[1] + e[2])) < 1e-5, `mc2 ${r.metrics.mc2}`);
      continue;
    }
    // Decisions with margins clearer than f32 rounding must agree.
    const pick = (xs: number[]) => xs.indexOf(Math.max(...xs));
    const acc = docs.map((d, i) => (pick(lls[i]) === d.gold ? 1 : 0));
    const margin = Math.min(...lls.map((xs) => Math.min(...xs.flatMap((a, i) => xs.map((b, j) => (i === j ? Infinity : Math.abs(a - b)))))));
    if (margin < 1e-4) continue;
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    // (mmlu: one document per subject, so the mean over subjects is the mean over documents)
    t.equal(r.metrics.acc, mean(acc), `${input.name} acc against the reference`);
    if (input.name !== 'mmlu') {
      const accNorm = docs.map((d, i) => (pick(lls[i].map((ll, j) => ll / [...d.choices[j]].length)) === d.gold ? 1 : 0));
      t.equal(r.metrics.acc_norm, mean(accNorm), `${input.name} acc_norm against the reference`);
    }
  }
  model.dispose();
});

t.test('bad inputs', async (t) => {
  const model = stubModel();
  const arc: TaskInput = { name: 'arc_challenge', eval: [arcRow('q', ['x', 'y'], 'A')], fewshot: arcTrain, where: 'arc/test.parquet' };
  await t.rejects(evaluateTasks(model, byteTokenizer, [{ ...arc, name: 'gsm8k' as never }]), /tasks\[0\]\.name 'gsm8k' is not a task/);
  await t.rejects(evaluateTasks(model, byteTokenizer, [arc, arc]), /task 'arc_challenge' is given twice/);
  await t.rejects(evaluateTasks(model, byteTokenizer, [{ ...arc, eval: [] }]), /arc_challenge \(arc\/test.parquet\): the 'test' split has no rows/);
  await t.rejects(evaluateTasks(model, byteTokenizer, [arc], { limit: 0 }), /limit must be an integer >= 1, got 0/);
  await t.rejects(evaluateTasks(model, byteTokenizer, [arc], { shots: 5 } as never), /unknown option 'shots'/);
  model.forwards = 0;
  await t.rejects(
    evaluateTasks(model, byteTokenizer, [arc, { name: 'truthfulqa_mc2', eval: [{ question: 'q' }], fewshot: null, where: 'tqa/validation.jsonl' }]),
    /truthfulqa_mc2 \(tqa\/validation.jsonl\): validation row 0: field 'mc2_targets' is missing/,
  );
  t.equal(model.forwards, 0, 'rows are checked before any forward');
});
