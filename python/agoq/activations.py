# SPDX-License-Identifier: Apache-2.0
"""Activation compression: a context manager over ``torch.autograd.graph.saved_tensors_hooks``
that stores every activation autograd saves for backward the way agoq's policy engine says.

How a saved tensor gets its layer kind (``agoq.layer_kinds()``):

- ``mark(t, kind)``: a module says what a tensor is before an op saves it (the modules of
  ``agoq.nn`` mark their inputs and intermediates: ``attn_norm_input``, ``qkv_input``, ...);
- ``scope(kind, stats_kind=None)``: every unmarked tensor saved inside the ``with`` block (by
  PyTorch's own ops, e.g. scaled_dot_product_attention) gets ``kind``; float32 tensors get
  ``stats_kind`` when given (softmax statistics);
- anything else (parameters, the embedding, the loss) is kept as it is.

What happens to it is the plan's entry for the kind (``SavePlan.entry``):

- ``keep``: saved as is (a reference, no copy);
- ``store``: quantized with ``torch.ops.agoq.quantize`` in its memory order (strides restored on
  unpack), dequantized in backward. If the memory is already held by a kept tensor (e.g. the
  attention output that SDPA keeps and the out-projection saves again) no copy is made; two
  saves of the same memory share one quantized copy;
- ``recompute``: the producer does not save the tensor at all and rebuilds it in backward from
  its source (``recompute_source``); the fused autograd functions of ``agoq.nn`` ask
  ``current_policy().action(kind)`` at forward time. A tensor of a recompute kind that reaches
  the hook anyway (a producer that cannot recompute) is kept.

Stage-following entries (``stage/128``, the paper's "B bits") take the width ``bits`` given to
the context (DBCA-PP: the pipeline stage's width, ``agoq.stage_bits``); 16 keeps them.

The hooks act while the forward runs inside the ``with`` block; backward may run anywhere.
"""
from __future__ import annotations

import threading
from collections import defaultdict
from typing import Dict, Optional, Union

import torch
from torch.multiprocessing.reductions import StorageWeakRef

from . import _C
from .policy import SavePlan, as_plan

_tls = threading.local()


def _stack(name):
    s = getattr(_tls, name, None)
    if s is None:
        s = []
        setattr(_tls, name, s)
    return s


def current_policy() -> Optional["ActivationPolicy"]:
    """The innermost active ActivationPolicy of this thread, or None."""
    s = _stack("policies")
    return s[-1] if s else None


def mark(t: torch.Tensor, kind: str) -> torch.Tensor:
    """Says that ``t`` is an activation of layer kind ``kind`` (when a policy is active); returns t."""
    if current_policy() is not None and isinstance(t, torch.Tensor):
        t._agoq_kind = kind
    return t


class scope:
    """``with scope("attention_q", stats_kind="attention_softmax_stats"): ...``: unmarked tensors
    saved inside get ``kind`` (float32 ones ``stats_kind`` when given)."""

    def __init__(self, kind: str, stats_kind: Optional[str] = None):
        self.kind, self.stats_kind = kind, stats_kind

    def __enter__(self):
        _stack("scopes").append(self)
        return self

    def __exit__(self, *exc):
        _stack("scopes").pop()
        return False


def _scope_kind(t: torch.Tensor) -> Optional[str]:
    s = _stack("scopes")
    if not s:
        return None
    sc = s[-1]
    if sc.stats_kind is not None and t.dtype == torch.float32:
        return sc.stats_kind
    return sc.kind


def _memory_order(t: torch.Tensor):
    """A permutation making t contiguous (its memory order), None if already contiguous, False
    when t is not dense (gaps or overlaps)."""
    if t.is_contiguous():
        return None
    perm = sorted(range(t.dim()), key=lambda d: (t.stride(d), t.size(d)), reverse=True)
    if t.permute(perm).is_contiguous():
        return perm
    return False


class _Quantized:
    """One quantized copy of a tensor's data in memory order."""

    __slots__ = ("codes", "scales", "zeros", "spec", "numel", "dtype")

    def __init__(self, flat: torch.Tensor, spec: str, seed: int = 0):
        out = torch.ops.agoq.quantize(flat, spec, seed)
        self.codes, self.scales = out[0], out[1]
        self.zeros = out[2] if out[2].numel() else None
        self.spec, self.numel, self.dtype = spec, flat.numel(), flat.dtype

    def nbytes(self) -> int:
        n = self.codes.numel() + self.scales.numel() * self.scales.element_size()
        return n + (self.zeros.numel() * 4 if self.zeros is not None else 0)

    def decode(self) -> torch.Tensor:
        return torch.ops.agoq.dequantize(self.codes, self.scales, self.zeros, self.spec,
                                         [self.numel], self.dtype)


class _Packed:
    __slots__ = ("q", "size", "perm", "requires_grad")

    def __init__(self, q: _Quantized, size, perm):
        self.q, self.size, self.perm = q, size, perm


class ActivationPolicy:
    """Stores saved activations per an agoq save plan while active.

    ``plan``: a SavePlan or policy text (``"paper"``, ``"bf16"``, ``"bf16,rmsnorm_input=int4"``).
    ``bits``: the width of stage-following entries (the DBCA-PP width of this pipeline stage),
    2..8, or 16 to keep them. ``stats``: count bytes per kind in ``self.stats`` (original and
    stored bytes of every saved tensor seen by the hook).
    """

    def __init__(self, plan: Union[str, SavePlan] = "paper", bits: int = 4, *, stats: bool = False):
        self.base_plan = as_plan(plan)
        self.bits = bits
        self.plan = self.base_plan.at_stage_bits(bits)
        self.entries: Dict[str, dict] = {k: self.plan.entry(k) for k in _C.layer_kinds()}
        self.collect_stats = stats
        self.stats = defaultdict(lambda: {"tensors": 0, "bytes": 0, "stored_bytes": 0})
        self._hooks = None
        # memory seen in this forward, by address, each with a weak reference to its storage: an
        # address is trusted only while that storage lives (freed memory is reused by the allocator)
        self._kept: Dict[tuple, StorageWeakRef] = {}
        self._packed: Dict[tuple, tuple] = {}
        self._seed = 0

    # ---- what the plan says ----
    def entry(self, kind: str) -> dict:
        try:
            return self.entries[kind]
        except KeyError:
            raise ValueError(f"agoq: unknown layer kind '{kind}'; accepted: {', '.join(self.entries)}") from None

    def action(self, kind: str) -> str:
        """'keep', 'store' or 'recompute'."""
        return self.entry(kind)["action"]

    def __repr__(self):
        return f"ActivationPolicy(plan='{self.plan.to_text()}', bits={self.bits})"

    # ---- context ----
    def __enter__(self):
        _stack("policies").append(self)
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        try:
            self._hooks.__exit__(*exc)
        finally:
            self._hooks = None
            _stack("policies").pop()
            self._kept.clear()   # the saved references live on in the graph
            self._packed.clear()
        return False

    # ---- hooks ----
    def _pack(self, t: torch.Tensor):
        kind = getattr(t, "_agoq_kind", None) if isinstance(t, torch.Tensor) else None
        if kind is None:
            kind = _scope_kind(t)
        if kind is None or not t.is_floating_point() or t.numel() == 0:
            return t
        e = self.entries.get(kind)
        if e is None:
            raise ValueError(f"agoq: tensor marked with unknown layer kind '{kind}'")
        nbytes = t.numel() * t.element_size()
        storage = t.untyped_storage()
        skey = (t.device, storage.data_ptr())
        if e["action"] != "store":
            self._kept[skey] = StorageWeakRef(storage)
            self._count(kind, nbytes, nbytes)
            return t
        ref = self._kept.get(skey)
        if ref is not None and not ref.expired():
            self._count(kind, nbytes, 0)  # its memory is held anyway: no copy
            return t
        perm = _memory_order(t)
        spec = e["spec"]
        if perm is False:
            flat, perm_size = t.contiguous().view(-1), list(t.shape)
        else:
            src = t if perm is None else t.permute(perm)
            flat, perm_size = src.view(-1), list(src.shape)
        key = (t.device, t.data_ptr(), t.numel(), t.dtype, spec)
        hit = self._packed.get(key) if perm is not False else None
        q = hit[0] if hit is not None and not hit[1].expired() else None
        if q is None:
            self._seed += 1  # a new stochastic-rounding stream per tensor (ignored for nearest)
            q = _Quantized(flat.detach(), spec, self._seed)
            if perm is not False:
                self._packed[key] = (q, StorageWeakRef(storage))
            self._count(kind, nbytes, q.nbytes())
        else:
            self._count(kind, nbytes, 0)
        return _Packed(q, perm_size, perm if perm else None)

    @staticmethod
    def _unpack(p):
        if not isinstance(p, _Packed):
            return p
        y = p.q.decode().view(p.size)
        if p.perm is not None:
            inv = [0] * len(p.perm)
            for i, d in enumerate(p.perm):
                inv[d] = i
            y = y.permute(inv)
        return y

    def _count(self, kind, nbytes, stored):
        if self.collect_stats:
            s = self.stats[kind]
            s["tensors"] += 1
            s["bytes"] += nbytes
            s["stored_bytes"] += stored
