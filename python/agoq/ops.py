# SPDX-License-Identifier: Apache-2.0
"""The quantizers as ``torch.library`` custom ops (``torch.ops.agoq.*``), with fake (meta)
implementations so that ``torch.compile`` and CUDA graphs can trace them.

A tensor ``x`` is quantized in blocks along its last dimension: ``rows = x.numel() / x.shape[-1]``
rows of ``cols = x.shape[-1]`` elements, each row ending in a masked tail block (agoq's 2-D
layout; a 1-D tensor is one row and uses agoq's 1-D launchers). ``codes`` (uint8) has shape
``x.shape[:-1] + (bytes_per_row,)``, ``scales`` (float32; uint8 for e8m0) and ``zeros`` (float32,
asymmetric specs only; empty otherwise) ``x.shape[:-1] + (blocks_per_row,)``.

Specs are the policy text form parsed by agoq's C++ parser: ``"int4/128"``, ``"int8/64/stochastic"``,
``"int4/128/asym"``, ``"fp8_e4m3/128"``, ``"fp4_e2m1/32/e8m0"``. CPU tensors run agoq's host
reference (agoq::ref), CUDA tensors agoq's kernels on the current stream; both give the same bits.
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import torch

from . import _C

_ops = torch.ops.agoq


@functools.lru_cache(maxsize=512)
def _info(spec: str) -> dict:
    return _C.spec_info(spec)


def spec_info(spec: str) -> dict:
    """The fields of ``spec`` as agoq's parser reads them (format, bits, block, scale, rounding,
    symmetric, block_code_bytes, bits_per_element, text). Raises ValueError with agoq's message."""
    return dict(_info(spec))


def _quantized_shapes(shape: Sequence[int], spec: str):
    info = _info(spec)
    shape = list(shape) or [1]
    cols = int(shape[-1])
    bpr = (cols + info["block"] - 1) // info["block"]
    return shape[:-1] + [bpr * info["block_code_bytes"]], shape[:-1] + [bpr], info


@torch.library.register_fake("agoq::quantize")
def _quantize_fake(x, spec, seed=0):
    cshape, sshape, info = _quantized_shapes(x.shape, spec)
    codes = x.new_empty(cshape, dtype=torch.uint8)
    scales = x.new_empty(sshape, dtype=torch.uint8 if info["scale"] == "e8m0" else torch.float32)
    zeros = x.new_empty([0] if info["symmetric"] else sshape, dtype=torch.float32)
    return codes, scales, zeros


@torch.library.register_fake("agoq::dequantize")
def _dequantize_fake(codes, scales, zeros, spec, shape, dtype):
    _info(spec)  # a bad spec fails while tracing, as in eager
    return codes.new_empty(list(shape), dtype=dtype)


@torch.library.register_fake("agoq::dequantize_accumulate")
def _dequantize_accumulate_fake(codes, scales, zeros, spec, acc, alpha=1.0):
    _info(spec)
    return None


@torch.library.register_fake("agoq::accumulate_requantize")
def _accumulate_requantize_fake(codes, scales, zeros, spec, x, seed=0):
    _info(spec)
    return None


def quantize(x: torch.Tensor, spec: str = "int8/128", seed: int = 0):
    """Quantizes ``x`` (float32/float16/bfloat16) per ``spec``; returns ``(codes, scales)``, or
    ``(codes, scales, zeros)`` for an asymmetric spec. ``seed`` keys stochastic rounding."""
    codes, scales, zeros = _ops.quantize(x, spec, seed)
    if _info(spec)["symmetric"]:
        return codes, scales
    return codes, scales, zeros


def dequantize(codes: torch.Tensor, scales: torch.Tensor, zeros: Optional[torch.Tensor] = None, *,
               spec: str, shape: Sequence[int], dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """Decodes ``(codes, scales[, zeros])`` into a new tensor of ``shape`` and ``dtype``."""
    return _ops.dequantize(codes, scales, zeros, spec, [int(s) for s in shape], dtype)


def dequantize_accumulate(codes: torch.Tensor, scales: torch.Tensor,
                          zeros: Optional[torch.Tensor] = None, *, spec: str, acc: torch.Tensor,
                          alpha: float = 1.0) -> torch.Tensor:
    """``acc += alpha * decoded`` in one pass (acc: float32, the decoded tensor's shape); returns acc."""
    _ops.dequantize_accumulate(codes, scales, zeros, spec, acc, float(alpha))
    return acc


def accumulate_requantize(codes: torch.Tensor, scales: torch.Tensor,
                          zeros: Optional[torch.Tensor] = None, *, spec: str, x: torch.Tensor,
                          seed: int = 0):
    """In place: ``(codes, scales[, zeros]) := quantize(decoded + x)``, summed in fp32 (the
    gradient-buffer update). A zero-filled codes + scales buffer is a quantized zero."""
    _ops.accumulate_requantize(codes, scales, zeros, spec, x, seed)
    return (codes, scales) if zeros is None else (codes, scales, zeros)
