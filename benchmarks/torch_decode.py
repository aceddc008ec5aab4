#!/usr/bin/env python3
# torch_decode.py: the decode side of `npm run bench:decode` (benchmarks/decode.ts) in plain PyTorch: the same
# MPT (the weights decode.ts writes, under their Hugging Face names), the same prompt ids, greedy decoding with
# a key/value cache, eagerly, on the same number of threads.
#
# The model is the block of benchmarks/torch_mpt.py (llm-foundry's MPT: pre-LayerNorm without bias, fused Wqkv,
# ALiBi with MPT's slopes, softmax attention, exact GELU, no biases, final LayerNorm, LM head tied to the
# embedding over the real vocabulary). The cache is preallocated (B, H, maxLen, D) tensors per block, as ours:
# a step writes its keys and values at its positions and attends over the prefix (the bias slope * (j - i), the
# causal mask inside a prefill). Precision: fp32, or bf16 weights and activations (the softmax in f32), the
# way a bf16 checkpoint is served. Logits are f32.
#
# Timing: the prefill of the prompt once, then `--new-tokens` greedy steps (the first from the prefill's
# logits); the decode rate counts the tokens of the steps after the prefill. `--repeats` runs it again from a
# fresh cache and reports every run. The JSON report on stdout also has the generated ids (decode.ts compares
# them with its own).
#
#   python3 benchmarks/torch_decode.py --weights W.f32 --layout L.json --prompt-ids P.json --precision bf16 ...
import argparse
import json
import math
import sys
import time

TORCH_MISSING_EXIT = 3


def parse_args():
    p = argparse.ArgumentParser(description='greedy decoding with a KV cache in plain PyTorch (MPT)')
    p.add_argument('--check', action='store_true', help='print the torch version and BLAS as JSON and exit')
    p.add_argument('--weights', help='raw little-endian f32 parameters (the arena of decode.ts)')
    p.add_argument('--layout', help='JSON: { config: {...}, entries: [[name, shape, offset], ...] }')
    p.add_argument('--prompt-ids', help='JSON array of prompt token ids')
    p.add_argument('--precision', choices=['fp32', 'bf16'], default='fp32')
    p.add_argument('--new-tokens', type=int, default=64)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--threads', type=int, default=0)
    return p.parse_args()


try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the caller reads the exit status
    sys.stderr.write(f'torch_decode.py: {e}\n')
    sys.exit(TORCH_MISSING_EXIT)


# The BLAS check and MPT's ALiBi slopes are torch_mpt.py's (this script's folder is on sys.path).
from torch_mpt import alibi_slopes, check_blas  # noqa: E402


class Mpt:
    def __init__(self, weights, cfg, dtype):
        self.cfg = cfg
        self.dtype = dtype
        self.w = {k: v.to(dtype) for k, v in weights.items()}
        self.wte_real = self.w['transformer.wte.weight'][: cfg['realVocabSize']]
        self.slopes = alibi_slopes(cfg['nHeads'], cfg['alibiBiasMax']).view(1, -1, 1, 1)
        self.eps = cfg['layerNormEps']

    def new_cache(self, batch):
        c = self.cfg
        shape = (batch, c['nHeads'], c['maxSeqLen'], c['dModel'] // c['nHeads'])
        return [(torch.zeros(shape, dtype=self.dtype), torch.zeros(shape, dtype=self.dtype)) for _ in range(c['nLayers'])]

    def ln(self, x, name):
        return F.layer_norm(x, (x.shape[-1],), self.w[name], None, self.eps)

    @torch.no_grad()
    def step(self, ids, cache, past):
        """ids (B, T) at positions [past, past + T): appends to the cache, returns (B, V) f32 logits of the last."""
        c = self.cfg
        B, T = ids.shape
        H, C = c['nHeads'], c['dModel']
        D = C // H
        n = past + T
        x = self.w['transformer.wte.weight'][ids]
        # bias[i, j] = slope * (j - (past + i)) for j <= past + i, -inf after
        qpos = torch.arange(past, n, dtype=torch.float32).view(T, 1)
        kpos = torch.arange(0, n, dtype=torch.float32).view(1, n)
        rel = kpos - qpos
        bias = self.slopes * rel.view(1, 1, T, n)
        bias = bias.masked_fill(rel.view(1, 1, T, n) > 0, float('-inf'))
        for l, (kc, vc) in enumerate(cache):
            p = f'transformer.blocks.{l}'
            h = self.ln(x, f'{p}.norm_1.weight')
            qkv = h @ self.w[f'{p}.attn.Wqkv.weight'].t()
            q, k, v = qkv.view(B, T, 3, H, D).permute(2, 0, 3, 1, 4)
            kc[:, :, past:n] = k
            vc[:, :, past:n] = v
            s = (q @ kc[:, :, :n].transpose(-1, -2)).float() / math.sqrt(D) + bias
            a = torch.softmax(s, dim=-1).to(self.dtype) @ vc[:, :, :n]
            a = a.transpose(1, 2).reshape(B, T, C)
            x = x + a @ self.w[f'{p}.attn.out_proj.weight'].t()
            h = self.ln(x, f'{p}.norm_2.weight')
            f = F.gelu(h @ self.w[f'{p}.ffn.up_proj.weight'].t())
            x = x + f @ self.w[f'{p}.ffn.down_proj.weight'].t()
        h = self.ln(x[:, -1], 'transformer.norm_f.weight')
        return (h @ self.wte_real.t()).float()


def main():
    a = parse_args()
    if a.check:
        print(json.dumps({'torchVersion': torch.__version__, 'blas': check_blas()}))
        return
    blas = check_blas()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    with open(a.layout) as f:
        layout = json.load(f)
    cfg = layout['config']
    flat = torch.from_numpy(np.fromfile(a.weights, dtype='<f4'))
    weights = {}
    for name, shape, offset in layout['entries']:
        numel = math.prod(shape)
        weights[name] = flat[offset: offset + numel].view(*shape)
    with open(a.prompt_ids) as f:
        prompt = json.load(f)
    dtype = torch.bfloat16 if a.precision == 'bf16' else torch.float32
    model = Mpt(weights, cfg, dtype)
    del flat, weights
    ids = torch.tensor([prompt], dtype=torch.long)
    runs = []
    tokens = []
    for r in range(a.repeats):
        cache = model.new_cache(1)
        t0 = time.perf_counter()
        logits = model.step(ids, cache, 0)
        t1 = time.perf_counter()
        out = [int(logits[0].argmax())]
        pos = len(prompt)
        for _ in range(a.new_tokens - 1):
            logits = model.step(torch.tensor([[out[-1]]], dtype=torch.long), cache, pos)
            pos += 1
            out.append(int(logits[0].argmax()))
        t2 = time.perf_counter()
        runs.append({'prefillMs': (t1 - t0) * 1e3, 'decodeTokensPerS': (a.new_tokens - 1) / (t2 - t1)})
        tokens = out
        sys.stderr.write(f'torch_decode.py: {a.precision} run {r + 1}: prefill {runs[-1]["prefillMs"]:.1f} ms, '
                         f'decode {runs[-1]["decodeTokensPerS"]:.1f} tokens/s\n')
    print(json.dumps({'torchVersion': torch.__version__, 'threads': torch.get_num_threads(), 'blas': blas,
                      'precision': a.precision, 'runs': runs, 'tokens': tokens}))


if __name__ == '__main__':
    main()
