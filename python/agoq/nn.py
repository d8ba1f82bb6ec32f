# SPDX-License-Identifier: Apache-2.0
"""A LLaMA block (pre-norm RMSNorm, RoPE, causal attention, SwiGLU) whose parts say what they save
for backward, so that ``agoq.ActivationPolicy`` can store or recompute each activation as agoq's
policy engine says (the paper's LAAQ plan, or any other ``SavePlan``).

Compute is BF16 (weights are fp32 master copies cast per call, norms and SwiGLU gates in fp32,
GEMMs in bf16 with fp32 accumulation, like ``torch.autocast``); only storage changes between
plans. The fused autograd functions below save, per the active policy:

| function     | tensors (layer kinds)                                          | recompute from     |
|--------------|----------------------------------------------------------------|--------------------|
| _NormLinear  | norm input (attn/ffn_norm_input), 1/rms (*_norm_stats),        | the norm input     |
|              | norm output = GEMM input (qkv_input / ffn_up_input)            |                    |
| _Linear      | GEMM input (out_proj_input)                                    | (not recomputed)   |
| _SwiGLUDown  | gate+up (swiglu_input), sigma(gate) (swiglu_intermediate),     | swiglu_input       |
|              | SwiGLU output = down GEMM input (ffn_down_input)               |                    |
| attention    | what scaled_dot_product_attention saves: q, k, v, out          | (never)            |
|              | (attention_q's entry), log-sum-exp (attention_softmax_stats)   |                    |

Without an active policy everything is kept (the BF16 baseline), bit for bit the same forward
and backward as any plan that only keeps or recomputes (recomputation repeats the same ops).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .activations import current_policy, mark, scope

_BF16 = torch.bfloat16
EPS = 1e-5

# layer kinds of the block's two norm+GEMM groups
ATTN_KINDS = ("attn_norm_input", "attn_norm_stats", "qkv_input")
FFN_KINDS = ("ffn_norm_input", "ffn_norm_stats", "ffn_up_input")

_SUPPORTED = {
    # kind: (actions allowed, natural recompute source)
    "attn_norm_input": (("keep", "store"), None),
    "ffn_norm_input": (("keep", "store"), None),
    "attn_norm_stats": (("keep", "store", "recompute"), "attn_norm_input"),
    "ffn_norm_stats": (("keep", "store", "recompute"), "ffn_norm_input"),
    "qkv_input": (("keep", "store", "recompute"), "attn_norm_input"),
    "ffn_up_input": (("keep", "store", "recompute"), "ffn_norm_input"),
    "out_proj_input": (("keep", "store"), None),
    "swiglu_input": (("keep", "store"), None),
    "swiglu_intermediate": (("keep", "store", "recompute"), "swiglu_input"),
    "ffn_down_input": (("keep", "store", "recompute"), "swiglu_input"),
    "attention_q": (("keep", "store"), None),
    "attention_softmax_stats": (("keep", "store"), None),
}


def check_plan(policy) -> None:
    """Raises ValueError if ``policy`` (an ActivationPolicy) asks this block for something it
    cannot do (e.g. recompute the attention core, or recompute from a non-natural source)."""
    for kind, (actions, src) in _SUPPORTED.items():
        e = policy.entry(kind)
        if e["action"] not in actions:
            raise ValueError(f"agoq.nn: the LLaMA block cannot '{e['text']}' for {kind} "
                             f"(supported: {', '.join(actions)})")
        if e["action"] == "recompute" and e["source"] != src:
            raise ValueError(f"agoq.nn: {kind} can be recomputed only from {src}, "
                             f"not from {e['source']}")


def _act(kind: str) -> str:
    p = current_policy()
    return "keep" if p is None else p.action(kind)


def _rms(xf: torch.Tensor) -> torch.Tensor:
    return torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)


class _NormLinear(torch.autograd.Function):
    """out = (rmsnorm(x) * gamma).bf16 @ W.T, with x: (N, h) bf16, gamma: (h,), W: (o, h)."""

    @staticmethod
    def forward(ctx, x, gamma, weight, kinds):
        k_in, k_stats, k_gemm = kinds
        xf = x.float()
        rstd = _rms(xf)
        y = (xf * rstd * gamma.float()).to(_BF16)
        out = y @ weight.to(_BF16).t()
        acts = (_act(k_stats), _act(k_gemm))
        ctx.kinds, ctx.acts = kinds, acts
        saved = [mark(x, k_in), gamma, weight]
        saved.append(mark(rstd, k_stats) if acts[0] != "recompute" else None)
        saved.append(mark(y, k_gemm) if acts[1] != "recompute" else None)
        ctx.save_for_backward(*saved)
        return out

    @staticmethod
    def backward(ctx, dout):
        x, gamma, weight, rstd, y = ctx.saved_tensors
        xf = x.float()
        if rstd is None:
            rstd = _rms(xf)
        g = gamma.float()
        xhat = xf * rstd
        if y is None:
            y = (xhat * g).to(_BF16)
        wb = weight.to(_BF16)
        dout = dout.to(_BF16)
        dweight = (dout.t() @ y).float()
        dy = (dout @ wb).float()
        dgamma = (dy * xhat).sum(0)
        dxhat = dy * g
        dx = rstd * (dxhat - xhat * (dxhat * xhat).mean(-1, keepdim=True))
        return dx.to(x.dtype), dgamma.to(gamma.dtype), dweight.to(weight.dtype), None


class _Linear(torch.autograd.Function):
    """out = x.bf16 @ W.T; x is saved as ``kind``."""

    @staticmethod
    def forward(ctx, x, weight, kind):
        ctx.save_for_backward(mark(x, kind) if kind else x, weight)
        return x.to(_BF16) @ weight.to(_BF16).t()

    @staticmethod
    def backward(ctx, dout):
        x, weight = ctx.saved_tensors
        dout = dout.to(_BF16)
        dx = dout @ weight.to(_BF16)
        dweight = (dout.t() @ x.to(_BF16)).float()
        return dx.to(x.dtype), dweight.to(weight.dtype), None


class _SwiGLUDown(torch.autograd.Function):
    """out = (silu(gate) * up).bf16 @ W2.T with gu = [gate | up]: (N, 2f) bf16, W2: (h, f)."""

    @staticmethod
    def forward(ctx, gu, weight):
        gate, up = gu.float().chunk(2, dim=-1)
        s = torch.sigmoid(gate).to(_BF16)
        a = (gate * s.float() * up).to(_BF16)
        out = a @ weight.to(_BF16).t()
        acts = (_act("swiglu_intermediate"), _act("ffn_down_input"))
        ctx.acts = acts
        ctx.save_for_backward(mark(gu, "swiglu_input"), weight,
                              mark(s, "swiglu_intermediate") if acts[0] != "recompute" else None,
                              mark(a, "ffn_down_input") if acts[1] != "recompute" else None)
        return out

    @staticmethod
    def backward(ctx, dout):
        gu, weight, s, a = ctx.saved_tensors
        gate, up = gu.float().chunk(2, dim=-1)
        if s is None:
            s = torch.sigmoid(gate).to(_BF16)
        sf = s.float()
        if a is None:
            a = (gate * sf * up).to(_BF16)
        dout = dout.to(_BF16)
        dweight = (dout.t() @ a).float()
        da = (dout @ weight.to(_BF16)).float()
        dgate = da * up * sf * (1.0 + gate * (1.0 - sf))
        dup = da * gate * sf
        return torch.cat([dgate, dup], dim=-1).to(gu.dtype), dweight.to(weight.dtype)


class _Rope(torch.autograd.Function):
    """Rotary embedding of x: (B, T, H, D) with cos/sin: (T, D/2); saves no activation."""

    @staticmethod
    def forward(ctx, x, cos, sin):
        ctx.cos, ctx.sin = cos, sin  # buffers, not activations
        return _rotate(x, cos, sin)

    @staticmethod
    def backward(ctx, dy):
        return _rotate(dy, ctx.cos, -ctx.sin), None, None


def _rotate(x, cos, sin):
    xf = x.float()
    x1, x2 = xf[..., 0::2], xf[..., 1::2]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    out = torch.stack((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1).flatten(-2)
    return out.to(x.dtype)


def rope_tables(seq: int, head_dim: int, base: float = 10000.0, device=None):
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))
    t = torch.arange(seq, dtype=torch.float32, device=device)
    f = torch.outer(t, inv)
    return f.cos(), f.sin()


class LlamaBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, ffn: int):
        super().__init__()
        assert hidden % heads == 0
        self.hidden, self.heads, self.ffn = hidden, heads, ffn
        self.attn_norm = nn.Parameter(torch.ones(hidden))
        self.wqkv = nn.Parameter(torch.empty(3 * hidden, hidden))
        self.wo = nn.Parameter(torch.empty(hidden, hidden))
        self.ffn_norm = nn.Parameter(torch.ones(hidden))
        self.w13 = nn.Parameter(torch.empty(2 * ffn, hidden))
        self.w2 = nn.Parameter(torch.empty(hidden, ffn))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x: (B, T, hidden) bf16 -> (B, T, hidden) bf16."""
        p = current_policy()
        if p is not None:
            check_plan(p)
        B, T, h = x.shape
        H, D = self.heads, h // self.heads
        xf = x.reshape(B * T, h)
        qkv = _NormLinear.apply(xf, self.attn_norm, self.wqkv, ATTN_KINDS)
        q, k, v = qkv.view(B, T, 3, H, D).unbind(2)
        q = _Rope.apply(q, cos[:T], sin[:T])
        k = _Rope.apply(k, cos[:T], sin[:T])
        with scope("attention_q", stats_kind="attention_softmax_stats"):
            o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                               v.transpose(1, 2), is_causal=True)
        o = o.transpose(1, 2).reshape(B * T, h)
        h1 = xf + _Linear.apply(o, self.wo, "out_proj_input")
        gu = _NormLinear.apply(h1, self.ffn_norm, self.w13, FFN_KINDS)
        out = h1 + _SwiGLUDown.apply(gu, self.w2)
        return out.view(B, T, h)


class Llama(nn.Module):
    """A small LLaMA-style language model (byte vocabulary by default)."""

    def __init__(self, vocab: int = 256, hidden: int = 768, layers: int = 12, heads: int = 12,
                 ffn: Optional[int] = None, seq: int = 1024):
        super().__init__()
        ffn = ffn or int(256 * math.ceil(8 * hidden / 3 / 256))
        self.vocab, self.hidden, self.n_layers, self.heads, self.ffn, self.seq = vocab, hidden, layers, heads, ffn, seq
        self.embed = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(LlamaBlock(hidden, heads, ffn) for _ in range(layers))
        self.norm = nn.Parameter(torch.ones(hidden))
        self.head = nn.Parameter(torch.empty(vocab, hidden))
        cos, sin = rope_tables(seq, hidden // heads)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self, std: float = 0.02):
        nn.init.normal_(self.embed.weight, std=std)
        nn.init.normal_(self.head, std=std)
        for blk in self.layers:
            for w in (blk.wqkv, blk.w13):
                nn.init.normal_(w, std=std)
            for w in (blk.wo, blk.w2):  # GPT-2 style scaled residual projections
                nn.init.normal_(w, std=std / math.sqrt(2 * self.n_layers))

    def shape(self, micro_batch: int, seq: Optional[int] = None) -> dict:
        """The agoq::model_shape of this model (for the planner): norms run in fp32 but their
        kept input is the bf16 residual stream, so norm_fp32 is False."""
        return dict(block="llama", layers=self.n_layers, hidden=self.hidden, ffn=self.ffn,
                    heads=self.heads, seq=seq or self.seq, micro_batch=micro_batch,
                    norm_fp32=False)

    def forward(self, idx: torch.Tensor, targets: Optional[torch.Tensor] = None):
        x = self.embed(idx).to(_BF16)
        for blk in self.layers:
            x = blk(x, self.cos, self.sin)
        B, T, h = x.shape
        xf = x.reshape(B * T, h).float()
        xn = (xf * _rms(xf) * self.norm).to(_BF16)
        logits = (xn @ self.head.to(_BF16).t()).float()
        if targets is None:
            return logits.view(B, T, -1)
        return F.cross_entropy(logits, targets.reshape(-1))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def measure_layer_memory(model: Llama, plan: str, bits: int = 4, micro_batch: int = 1,
                         seq: Optional[int] = None, repeats: int = 2) -> dict:
    """One layer's activation memory under ``plan`` (policy text; "bf16" = no policy), measured and
    predicted. Measured on CUDA only: bytes allocated after the forward of layer 0 minus its output
    (what the layer keeps for backward; the input is not kept by the caller) and the peak of
    torch.cuda.max_memory_allocated over that forward, both above the memory allocated before it;
    attention runs on the flash backend (as in examples/train_llama.py).
    Predicted: agoq's planner (layer_activation_memory, exact accounting) for ``model.shape``.

    Known differences between the two (the planner models Megatron's fused-QKV layer): SDPA keeps
    its output O in bf16 (the planner charges O once, at out_proj_input, so a plan that stores
    out_proj_input quantized measures about 1U - its quantized size above the planner: the hook
    then keeps no second copy); in a plan that stores V quantized the fused QKV buffer (pre-RoPE
    Q and K) is freed, so attention_qkv_pre_rope costs nothing measured.
    """
    from .activations import ActivationPolicy
    from .policy import layer_activation_memory

    seq = seq or model.seq
    dev = next(model.parameters()).device
    pred = layer_activation_memory(model.shape(micro_batch, seq), plan, bits, "exact")
    out = {"plan": plan, "bits": bits, "micro_batch": micro_batch, "seq": seq,
           "predicted_bytes": pred["bytes"], "predicted_baseline_bytes": pred["baseline_bytes"],
           "predicted_tensors": pred["tensors"], "unit_bytes": micro_batch * seq * model.hidden * 2}
    if dev.type != "cuda":
        return out
    from torch.nn.attention import SDPBackend, sdpa_kernel

    blk = model.layers[0]
    held, peak = [], []
    for _ in range(repeats):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        x = torch.randn(micro_batch, seq, model.hidden, device=dev, dtype=_BF16)
        torch.cuda.reset_peak_memory_stats()
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):  # what train_llama.py runs
            if plan == "bf16":
                y = blk(x, model.cos, model.sin)
            else:
                with ActivationPolicy(plan, bits=bits):
                    y = blk(x, model.cos, model.sin)
        del x
        torch.cuda.synchronize()
        held.append(torch.cuda.memory_allocated() - base - y.numel() * y.element_size())
        peak.append(torch.cuda.max_memory_allocated() - base)
        y.float().sum().backward()  # frees the graph (and checks that backward runs)
        del y
        model.zero_grad(set_to_none=True)
    out["measured_saved_bytes"] = min(held)
    out["measured_peak_bytes"] = min(peak)
    return out
