# SPDX-License-Identifier: Apache-2.0
"""An 8-bit gradient accumulation buffer over a model's parameters (agoq::grad_buffer,
grad/grad_buffer.cuh): micro-batch gradients are accumulated into INT8 codes + fp32 block scales
(decode, fp32 add, requantize: one fused pass), and handed to the optimizer in fp32.

    gb = agoq.GradBuffer(model.parameters())          # INT8, block 128, nearest even
    for step in ...:
        gb.zero_grad()
        for mb in micro_batches:
            loss(mb).backward()                         # grads land in gb's staging views (p.grad)
            gb.accumulate()                             # p.grad -> INT8 buffer; staging zeroed
        gb.allreduce(comm)                              # optional: 8-bit all-reduce of the codes
        gb.to_grads()                                   # the fp32 sum into p.grad (divide the loss
                                                        # by the micro-batch count, or scale=)
        optimizer.step()                                # (never optimizer.zero_grad(): gb owns p.grad)

Layout: parameter i occupies [offset_i, offset_i + numel_i) of one flat space, offsets rounded up
to the block so every parameter starts on a block boundary; ``p.grad`` is a view into one flat
staging tensor of the parameters' dtype (the padding stays zero), so one ``accumulate`` covers
every parameter with a single pass. On CPU the same layout runs agoq's host reference
(bit-identical to the GPU buffer).
"""
from __future__ import annotations

from typing import Iterable, List, Optional

import torch

from . import _C
from .ops import _info


class GradBuffer:
    def __init__(self, params: Iterable[torch.nn.Parameter], spec: str = "int8/128",
                 bucket_elems: int = 1 << 22, seed: int = 0):
        self.params: List[torch.nn.Parameter] = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("agoq.GradBuffer: no parameters that require grad")
        info = _info(spec)
        if not info["symmetric"]:
            raise ValueError("agoq.GradBuffer: spec must be symmetric (gradient buffers carry no zero points)")
        dev, dtype = self.params[0].device, self.params[0].dtype
        for p in self.params:
            if p.device != dev or p.dtype != dtype:
                raise ValueError("agoq.GradBuffer: all parameters must share one device and dtype")
        self.spec, self.block = spec, info["block"]
        self.bucket_elems = bucket_elems
        self.seed, self.calls = seed, 0
        self.offsets, off = [], 0
        for p in self.params:
            self.offsets.append(off)
            off += (p.numel() + self.block - 1) // self.block * self.block
        self.numel = off
        self.mem = torch.zeros(_C.grad_bytes_required(self.numel, spec, bucket_elems),
                               dtype=torch.uint8, device=dev)
        self.flat = torch.zeros(self.numel, dtype=dtype, device=dev)
        self.attach()
        self._ws = {}

    @property
    def nbytes(self) -> int:
        """Bytes of the 8-bit buffer (codes + scales + alignment)."""
        return self.mem.numel()

    @property
    def bucket_count(self) -> int:
        return (self.numel + self.bucket_elems - 1) // self.bucket_elems

    def attach(self) -> None:
        """Makes every p.grad a view of the staging tensor (autograd accumulates into it in place)."""
        self._views = []
        for p, o in zip(self.params, self.offsets):
            p.grad = self.flat[o:o + p.numel()].view_as(p)
            self._views.append(p.grad)

    def zero_grad(self) -> None:
        """Starts a step: the 8-bit buffer and the staging gradients are zeroed."""
        self.mem.zero_()
        self.flat.zero_()
        self.attach()

    def accumulate(self, seed: Optional[int] = None) -> None:
        """Adds the staging gradients (this micro-batch's p.grad) into the 8-bit buffer in one fused
        pass, then zeroes the staging tensor for the next micro-batch."""
        for p, v in zip(self.params, self._views):
            if p.grad is not v:
                raise RuntimeError("agoq.GradBuffer: p.grad was replaced (optimizer.zero_grad() sets "
                                   "it to None); use GradBuffer.zero_grad() instead")
        s = self.seed + self.calls if seed is None else seed
        self.calls += 1
        _C.grad_accumulate(self.mem, self.numel, self.spec, self.bucket_elems, 0, self.flat, s)
        self.flat.zero_()

    def to_grads(self, scale: float = 1.0) -> None:
        """Decodes the 8-bit buffer into p.grad (the staging views, fp32 for fp32 parameters),
        multiplied by ``scale`` (e.g. 1 / micro_batches for a mean)."""
        _C.grad_dequantize_to(self.mem, self.numel, self.spec, self.bucket_elems, 0, self.flat)
        if scale != 1.0:
            self.flat.mul_(scale)

    def allreduce(self, comm, average: bool = True, algo: str = "auto") -> None:
        """All-reduces every bucket of the 8-bit buffer across ``comm`` (an agoq.NcclComm) directly
        on the codes (grad/collective.hpp): afterwards every rank holds the same bytes."""
        if comm.size == 1:
            return
        for b in range(self.bucket_count):
            key = (b, average, algo)
            ws = self._ws.get(key)
            if ws is None:
                n = _C.grad_allreduce_workspace_size(comm.handle, self.numel, self.spec,
                                                     self.bucket_elems, b, average, algo, 0)
                ws = self._ws[key] = torch.empty(max(n, 16), dtype=torch.uint8, device=self.mem.device)
            _C.grad_allreduce(comm.handle, self.mem, self.numel, self.spec, self.bucket_elems, b, ws,
                              average, algo, 0)
