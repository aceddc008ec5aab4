#!/usr/bin/env python3
# torch_mpt.py: the training benchmark's model (`bench-45m` by default) in plain PyTorch, for the side-by-side
# run of `npm run bench:train -- --torch` (benchmarks/train.ts), which passes every shape and setting of its
# own run so that both sides time the same model; it can also be run alone.
#
# The model is MPT's block as llm-foundry writes it: pre-LayerNorm (no bias; llm-foundry's default
# low-precision LayerNorm, which runs in the autocast dtype), fused Wqkv, ALiBi with MPT's slopes
# (alibi_bias_max 8, the key-position form of the bias), causal softmax attention, an exact-GELU MLP of ratio
# 4, no biases, a final LayerNorm and an LM head tied to the embedding. Attention goes through
# torch.nn.functional.scaled_dot_product_attention with the ALiBi + causal bias as attn_mask when the
# installed torch has it (2.0 and later), else through llm-foundry's explicit matmul + softmax. The LM head
# multiplies by the first realVocabSize rows of the embedding only (padding rows are never predicted), as
# pajama-train's fused LM head does, so both count the same FLOPs. Initialisation is MPT's (and ours):
# kaiming-normal fan_in, the residual output projections divided by sqrt(2 * layers), LayerNorm weights 1.
#
# One step: zero the gradients, forward + backward of the mean cross-entropy over a micro-batch of random
# tokens (bf16: under torch.autocast('cpu', dtype=torch.bfloat16), f32 master weights; fp32: no autocast),
# clip the global gradient norm, torch.optim.AdamW (weight decay on matrices only). The JSON report on stdout
# has the median step time over the timed steps, tokens/s, the torch version and threads, the parameter count
# and the first and last losses; progress lines go to stderr.
#
#   python3 benchmarks/torch_mpt.py --precision bf16 [--threads 2] [--warmup 2] [--steps 5] [--count-flops]
#
# train.ts runs it with GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 (see
# TORCH_MALLOC_TUNABLES there): without it glibc maps and unmaps torch's large activations every step, and
# the page faults take most of a step on a small machine.
#
# Needs PyTorch for this interpreter, with an optimized BLAS (Debian's python3-torch multiplies fp32 through
# libblas.so.3, which is netlib's reference BLAS unless another is installed; the script refuses that one):
#   apt-get install -y python3-torch libopenblas0-pthread      (for /usr/bin/python3)
import argparse
import json
import math
import resource
import statistics
import sys
import time

TORCH_MISSING_EXIT = 3  # what benchmarks/train.ts reads as "PyTorch is not installed here"
REFERENCE_BLAS_EXIT = 4  # ... and as "this PyTorch multiplies fp32 with the reference BLAS"
INSTALL = 'apt-get install -y python3-torch libopenblas0-pthread'


def parse_args():
    p = argparse.ArgumentParser(description='bench-45m training steps in plain PyTorch (MPT as in llm-foundry)')
    p.add_argument('--precision', choices=['fp32', 'bf16'], default='bf16')
    p.add_argument('--checkpoint-every', type=int, default=0, help='activation checkpointing of every Nth block (0: none)')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--steps', type=int, default=5, help='timed steps')
    p.add_argument('--threads', type=int, default=0, help='torch.set_num_threads (0: torch default)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--micro-batch', type=int, default=8)
    p.add_argument('--seq-len', type=int, default=512)
    p.add_argument('--d-model', type=int, default=512)
    p.add_argument('--n-heads', type=int, default=8)
    p.add_argument('--n-layers', type=int, default=6)
    p.add_argument('--expansion-ratio', type=int, default=4)
    p.add_argument('--vocab-size', type=int, default=50304, help='embedding rows (padded vocabulary)')
    p.add_argument('--real-vocab-size', type=int, default=50257, help='tokens drawn and predicted')
    p.add_argument('--alibi-bias-max', type=float, default=8.0)
    p.add_argument('--layer-norm-eps', type=float, default=1e-5)
    p.add_argument('--lr', type=float, default=3e-4)
    p.add_argument('--weight-decay', type=float, default=0.1)
    p.add_argument('--max-norm', type=float, default=1.0)
    p.add_argument('--attention', choices=['auto', 'sdpa', 'explicit'], default='auto',
                   help='auto: scaled_dot_product_attention where torch has it, else explicit matmul + softmax')
    p.add_argument('--expect-params', type=int, help='fail unless the model has exactly this many parameters')
    p.add_argument('--expect-flops-per-token', type=int,
                   help="fail unless llm-foundry's count (6N + 12 L d T) of this model is exactly this")
    p.add_argument('--count-flops', action='store_true',
                   help="after the timed steps, count one step's matrix-product FLOPs with torch.profiler")
    p.add_argument('--check', action='store_true',
                   help='only check that torch imports and has an optimized BLAS; print its version and BLAS as JSON')
    a = p.parse_args()
    for name in ['warmup', 'checkpoint_every', 'threads', 'seed']:
        if getattr(a, name) < 0:
            p.error(f'--{name.replace("_", "-")} must be >= 0, got {getattr(a, name)}')
    for name in ['steps', 'micro_batch', 'seq_len', 'd_model', 'n_heads', 'n_layers', 'expansion_ratio',
                 'vocab_size', 'real_vocab_size']:
        if getattr(a, name) < 1:
            p.error(f'--{name.replace("_", "-")} must be >= 1, got {getattr(a, name)}')
    if a.d_model % a.n_heads:
        p.error(f'--d-model {a.d_model} is not divisible by --n-heads {a.n_heads}')
    if a.real_vocab_size > a.vocab_size:
        p.error(f'--real-vocab-size {a.real_vocab_size} exceeds --vocab-size {a.vocab_size}')
    return a


args = parse_args()

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch.utils.checkpoint
except ImportError as e:
    sys.stderr.write(
        f'torch_mpt.py: PyTorch is not installed for {sys.executable} ({e}). On Debian or Ubuntu install it '
        f'with `{INSTALL}` (it installs for /usr/bin/python3).\n')
    sys.exit(TORCH_MISSING_EXIT)


def blas_libraries():
    """The BLAS libraries mapped into this process (Debian's torch calls libblas.so.3 for fp32 products; which
    library that is depends on the system's alternatives), or [] where /proc/self/maps is not readable."""
    try:
        with open('/proc/self/maps') as maps:
            paths = {line.split()[-1] for line in maps if '/' in line}
    except OSError:
        return []
    return sorted(p for p in paths if any(k in p.rsplit('/', 1)[-1] for k in ('blas', 'blis', 'mkl')))


def check_blas():
    """Debian's python3-torch depends on any libblas.so.3, and on its own apt installs netlib's reference
    BLAS (/usr/lib/<arch>/blas/libblas.so.3), which multiplies fp32 at a few GFLOP/s: no baseline at all."""
    libs = blas_libraries()
    reference = [p for p in libs if '/blas/libblas.so' in p]
    if reference:
        sys.stderr.write(
            f'torch_mpt.py: this PyTorch computes fp32 products with the reference BLAS ({reference[0]}), '
            f'a few GFLOP/s, which is no fair baseline. Install an optimized BLAS, which Debian then selects '
            f'for libblas.so.3: `apt-get install -y libopenblas0-pthread`.\n')
        sys.exit(REFERENCE_BLAS_EXIT)
    return libs


def alibi_slopes(n_heads, alibi_bias_max):
    """MPT's gen_slopes (as lib/model/alibi.ts): 2^(-max * i / n) over the next power of two n, interleaved."""
    n = 1 << math.ceil(math.log2(n_heads))
    slopes = [1 / 2 ** ((i + 1) * alibi_bias_max / n) for i in range(n)]
    if n != n_heads:
        slopes = slopes[1::2] + slopes[0::2]
    return torch.tensor(slopes[:n_heads], dtype=torch.float32)


def attention_bias(n_heads, seq_len, alibi_bias_max):
    """(1, H, T, T) f32: MPT's ALiBi bias slope_h * (j - (T - 1)) plus the causal mask (the dtype's minimum)."""
    slopes = alibi_slopes(n_heads, alibi_bias_max).view(1, n_heads, 1, 1)
    key_pos = torch.arange(1 - seq_len, 1, dtype=torch.float32).view(1, 1, 1, seq_len)
    bias = slopes * key_pos
    causal = torch.ones(seq_len, seq_len, dtype=torch.bool).triu(1)  # True above the diagonal: future keys
    return bias.masked_fill(causal.view(1, 1, seq_len, seq_len), torch.finfo(torch.float32).min).contiguous()


class LowPrecisionLayerNorm(nn.Module):
    """llm-foundry's LPLayerNorm without bias: under autocast, input and weight go to the autocast dtype and
    the norm runs there (plain fp32 otherwise)."""

    def __init__(self, dim, eps):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        if torch.is_autocast_cpu_enabled():
            dt = torch.get_autocast_cpu_dtype()
            with torch.autocast('cpu', enabled=False):
                return F.layer_norm(x.to(dt), (self.dim,), self.weight.to(dt), None, self.eps)
        return F.layer_norm(x, (self.dim,), self.weight, None, self.eps)


class MptAttention(nn.Module):
    def __init__(self, d_model, n_heads, use_sdpa):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.use_sdpa = use_sdpa
        self.Wqkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x, bias):
        B, T, C = x.shape
        H, D = self.n_heads, self.head_dim
        qkv = self.Wqkv(x)  # (B, T, 3C)
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in qkv.chunk(3, dim=2))  # (B, H, T, D) each
        if self.use_sdpa:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        else:  # llm-foundry's scaled_multihead_dot_product_attention
            scores = q.matmul(k.transpose(-2, -1)) * (1.0 / math.sqrt(D)) + bias  # (B, H, T, T)
            y = torch.softmax(scores, dim=-1).to(v.dtype).matmul(v)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))


class MptMlp(nn.Module):
    def __init__(self, d_model, expansion_ratio):
        super().__init__()
        self.up_proj = nn.Linear(d_model, expansion_ratio * d_model, bias=False)
        self.down_proj = nn.Linear(expansion_ratio * d_model, d_model, bias=False)

    def forward(self, x):
        return self.down_proj(F.gelu(self.up_proj(x)))  # exact GELU (approximate='none')


class MptBlock(nn.Module):
    def __init__(self, a, use_sdpa):
        super().__init__()
        self.norm_1 = LowPrecisionLayerNorm(a.d_model, a.layer_norm_eps)
        self.attn = MptAttention(a.d_model, a.n_heads, use_sdpa)
        self.norm_2 = LowPrecisionLayerNorm(a.d_model, a.layer_norm_eps)
        self.ffn = MptMlp(a.d_model, a.expansion_ratio)

    def forward(self, x, bias):
        x = x + self.attn(self.norm_1(x), bias)
        return x + self.ffn(self.norm_2(x))


class MptForCausalLM(nn.Module):
    def __init__(self, a, use_sdpa):
        super().__init__()
        self.real_vocab_size = a.real_vocab_size
        self.checkpoint_every = a.checkpoint_every
        self.wte = nn.Embedding(a.vocab_size, a.d_model)
        self.blocks = nn.ModuleList(MptBlock(a, use_sdpa) for _ in range(a.n_layers))
        self.norm_f = LowPrecisionLayerNorm(a.d_model, a.layer_norm_eps)
        self.register_buffer('attn_bias', attention_bias(a.n_heads, a.seq_len, a.alibi_bias_max), persistent=False)
        # MPT's init: kaiming_normal_ (fan_in, ReLU gain) of every matrix, the embedding included; the residual
        # output projections divided by sqrt(2 * layers); LayerNorm weights stay 1.
        for name, p in self.named_parameters():
            if p.dim() < 2:
                continue
            std = math.sqrt(2 / p.shape[1])
            if name.endswith('attn.out_proj.weight') or name.endswith('ffn.down_proj.weight'):
                std /= math.sqrt(2 * a.n_layers)
            nn.init.normal_(p, 0.0, std)

    def forward(self, ids, targets):
        T = ids.shape[1]
        bias = self.attn_bias[:, :, :T, :T]
        x = self.wte(ids)  # (B, T, C) f32
        for i, block in enumerate(self.blocks):
            if self.checkpoint_every and i % self.checkpoint_every == 0:
                x = torch.utils.checkpoint.checkpoint(block, x, bias)
            else:
                x = block(x, bias)
        x = self.norm_f(x)
        logits = F.linear(x, self.wte.weight[: self.real_vocab_size])  # (B, T, V): the tied LM head
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def llm_foundry_flops_per_token(a, params):
    return 6 * params + 12 * a.n_layers * a.d_model * a.seq_len


def matmul_flops_per_token(a):
    """The matrix-product FLOPs per token this model runs in one step: the linear layers and the LM head over
    the real vocabulary, forward (2 per weight) and backward (4), attention's two products over the full
    T x T square (the explicit path computes the masked half too), and the forward again of every
    checkpointed block. The embedding lookup is no product, unlike in llm-foundry's 6N."""
    C, T, L = a.d_model, a.seq_len, a.n_layers
    block_weights = 4 * C * C + 2 * C * a.expansion_ratio * C
    block_forward = 2 * block_weights + 4 * T * C
    recomputed = sum(1 for i in range(L) if a.checkpoint_every and i % a.checkpoint_every == 0)
    return 3 * L * block_forward + 6 * a.real_vocab_size * C + recomputed * block_forward


def counted_matmul_flops(model, step):
    """Matrix-product FLOPs of one step as torch.profiler counts them (aten::mm, bmm, addmm), or None."""
    from torch.profiler import ProfilerActivity, profile
    try:
        with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
            step()
    except (RuntimeError, TypeError) as e:
        sys.stderr.write(f'torch_mpt.py: torch.profiler cannot count FLOPs here: {e}\n')
        return None
    return sum(ev.flops for ev in prof.key_averages() if ev.key in ('aten::mm', 'aten::bmm', 'aten::addmm'))


def main():
    a = args
    blas = check_blas()
    if a.check:
        json.dump({'torchVersion': torch.__version__, 'python': sys.executable, 'blas': blas}, sys.stdout)
        sys.stdout.write('\n')
        return
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    has_sdpa = hasattr(F, 'scaled_dot_product_attention')
    if a.attention == 'sdpa' and not has_sdpa:
        sys.stderr.write(f'torch_mpt.py: --attention sdpa: torch {torch.__version__} has no scaled_dot_product_attention\n')
        sys.exit(2)
    use_sdpa = has_sdpa if a.attention == 'auto' else a.attention == 'sdpa'
    model = MptForCausalLM(a, use_sdpa)
    params = sum(p.numel() for p in model.parameters())
    if a.expect_params is not None and params != a.expect_params:
        sys.stderr.write(f'torch_mpt.py: the PyTorch model has {params} parameters, expected {a.expect_params}\n')
        sys.exit(1)
    fpt = llm_foundry_flops_per_token(a, params)
    if a.expect_flops_per_token is not None and fpt != a.expect_flops_per_token:
        sys.stderr.write(f'torch_mpt.py: the PyTorch model counts {fpt} FLOPs per token, expected {a.expect_flops_per_token}\n')
        sys.exit(1)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{'params': decay, 'weight_decay': a.weight_decay}, {'params': no_decay, 'weight_decay': 0.0}],
        lr=a.lr, betas=(0.9, 0.95), eps=1e-8)

    # Random tokens over the real vocabulary; the targets are the next token of the same stream.
    gen = torch.Generator().manual_seed(a.seed)
    batches = []
    for _ in range(min(a.warmup + a.steps, 4)):
        stream = torch.randint(0, a.real_vocab_size, (a.micro_batch, a.seq_len + 1), generator=gen)
        batches.append((stream[:, :-1].contiguous(), stream[:, 1:].contiguous()))
    tokens = a.micro_batch * a.seq_len
    bf16 = a.precision == 'bf16'

    def forward_backward(ids, targets):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            loss = model(ids, targets)
        loss.backward()
        return loss

    phases, losses = [], []
    for i in range(a.warmup + a.steps):
        ids, targets = batches[i % len(batches)]
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        t1 = time.perf_counter()
        loss = forward_backward(ids, targets)
        t2 = time.perf_counter()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), a.max_norm)
        t3 = time.perf_counter()
        if not torch.isfinite(norm):
            sys.stderr.write(f'torch_mpt.py: non-finite gradients at step {i}\n')
            sys.exit(1)
        optimizer.step()
        t4 = time.perf_counter()
        losses.append(loss.item())
        ms = [(t4 - t0) * 1e3, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3]
        timed = i >= a.warmup
        sys.stderr.write(f'  torch {a.precision} step {i + 1}/{a.warmup + a.steps}{"" if timed else " (warm-up)"}: '
                         f'{ms[0]:.0f} ms, loss {losses[-1]:.4f}\n')
        if timed:
            phases.append(ms)

    step_ms = statistics.median(p[0] for p in phases)
    tokens_per_sec = tokens / (step_ms / 1e3)
    report = {
        'framework': 'pytorch',
        'torchVersion': torch.__version__,
        'python': sys.executable,
        'pythonVersion': sys.version.split()[0],
        'cpuCapability': torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, 'cpu') and hasattr(torch.backends.cpu, 'get_cpu_capability') else None,
        'mkldnn': torch.backends.mkldnn.is_available(),
        'blas': blas,
        'threads': torch.get_num_threads(),
        'precision': a.precision,
        'autocast': 'torch.autocast(cpu, bfloat16)' if bf16 else None,
        'checkpointEvery': a.checkpoint_every,
        'attention': 'scaled_dot_product_attention' if use_sdpa else 'explicit matmul + softmax',
        'layerNorm': 'low-precision (autocast dtype), no bias' if bf16 else 'fp32, no bias',
        'microBatch': a.micro_batch,
        'seqLen': a.seq_len,
        'tokensPerStep': tokens,
        'warmupSteps': a.warmup,
        'timedSteps': a.steps,
        'stepMs': step_ms,
        'stepMsMin': min(p[0] for p in phases),
        'stepMsAll': [p[0] for p in phases],
        'tokensPerSec': tokens_per_sec,
        'phasesMs': {k: statistics.median(p[j] for p in phases)
                     for j, k in enumerate(['step', 'zeroGrad', 'forwardBackward', 'clip', 'adamw'])},
        'parameterCount': params,
        'flopsPerToken': fpt,
        'achievedGflops': tokens_per_sec * fpt / 1e9,
        'lossFirst': losses[0],
        'lossLast': losses[-1],
        'maxRssBytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    if a.count_flops:
        ids, targets = batches[0]
        optimizer.zero_grad(set_to_none=True)
        counted = counted_matmul_flops(model, lambda: forward_backward(ids, targets))
        if counted is not None:
            report['profiledMatmulFlopsPerToken'] = counted / tokens
            report['expectedMatmulFlopsPerToken'] = matmul_flops_per_token(a)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
