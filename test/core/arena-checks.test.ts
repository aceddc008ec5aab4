// The shared arena checks: sameLayout compares names, offsets, shapes and order; checkArena words its
// errors as each caller asks (a ", got ..." suffix; a DisposedError or a TypeError for a disposed arena).
import t from 'tap';
import { Arena, DisposedError } from '../../lib/index';
import { checkArena, sameLayout } from '../../lib/core/arena-checks';

const layout: [string, number[]][] = [
  ['a', [2, 3]],
  ['b', [4]],
];

t.test('sameLayout: same entries in the same order, whatever the dtype', async (t) => {
  const x = new Arena('f32', layout);
  const arenas = [
    x,
    new Arena('bf16', layout),
    new Arena('f32', [['a', [3, 2]], ['b', [4]]]),
    new Arena('f32', [['b', [4]], ['a', [2, 3]]]),
    new Arena('f32', [['a', [2, 3]], ['c', [4]]]),
    new Arena('f32', [['a', [2, 3]]]),
    new Arena('f32', [['a', [6]], ['b', [4]]]),
  ];
  t.teardown(() => arenas.forEach((a) => a.dispose()));
  t.same(arenas.map((a) => sameLayout(x, a)), [true, true, false, false, false, false, false]);
});

t.test('checkArena: the arena itself, or an error worded for the caller', async (t) => {
  const live = new Arena('f32', layout);
  const dead = new Arena('f32', layout);
  dead.dispose();
  t.teardown(() => live.dispose());
  t.equal(checkArena(live, 'm', 'load'), live);
  t.throws(() => checkArena(new Float32Array(2), 'm', 'load'), { name: 'TypeError', code: 'ERR_PAJAMA_INVALID_ARG', message: 'load: m must be an Arena' });
  t.throws(() => checkArena(7, 'grads', 'AdamW', { show: (v) => `the number ${v}` }), { message: 'AdamW: grads must be an Arena, got the number 7' });
  const e = t.throws(() => checkArena(dead, 'grads', 'AdamW'), { message: 'AdamW: grads was disposed' });
  t.ok(e instanceof DisposedError, 'a DisposedError by default');
  t.throws(() => checkArena(dead, 'params', 'save', { disposedAs: 'invalid' }), { name: 'TypeError', code: 'ERR_PAJAMA_INVALID_ARG', message: 'save: params was disposed' });
});
