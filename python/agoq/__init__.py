# SPDX-License-Identifier: Apache-2.0
"""agoq for PyTorch: the agoq C++/CUDA library's quantizers as ``torch.library`` ops, activation
compression driven by agoq's policy engine, an 8-bit gradient buffer and a DDP communication hook
over agoq's 8-bit all-reduce.

>>> import torch, agoq
>>> codes, scales = agoq.quantize(torch.randn(4, 256), "int4/128")
>>> y = agoq.dequantize(codes, scales, spec="int4/128", shape=(4, 256), dtype=torch.float32)
>>> with agoq.ActivationPolicy("paper", bits=4):      # LAAQ: the paper's save plan at 4 bits
...     loss = model(batch)                             # modules of agoq.nn tag what they save
>>> loss.backward()
"""
from __future__ import annotations

try:
    import torch  # noqa: F401  (the extension links against torch's libraries)
except ImportError as e:  # pragma: no cover
    raise ImportError("agoq needs PyTorch: pip install torch") from e

try:
    from . import _C  # registers torch.ops.agoq.*
except ImportError as e:  # pragma: no cover
    raise ImportError(
        "agoq's extension (agoq._C) is not built or does not match this PyTorch; "
        "build it with: pip install --no-build-isolation ./python  (from the agoq repository)"
    ) from e

from .ops import (  # noqa: E402
    quantize,
    dequantize,
    dequantize_accumulate,
    accumulate_requantize,
    spec_info,
)
from .policy import (  # noqa: E402
    SavePlan,
    parse_policy,
    paper_save_plan,
    bf16_save_plan,
    layer_kinds,
    recompute_source,
    stage_bits,
    peak_stash,
    layer_activation_memory,
    plan_memory,
)
from .activations import ActivationPolicy, mark, scope, current_policy  # noqa: E402
from .grad import GradBuffer  # noqa: E402
from .comm import NcclComm, AllreduceHookState, allreduce_hook  # noqa: E402

__version__ = "0.2.0"
with_cuda: bool = _C.with_cuda
has_nccl = _C.has_nccl

__all__ = [
    "quantize", "dequantize", "dequantize_accumulate", "accumulate_requantize", "spec_info",
    "SavePlan", "parse_policy", "paper_save_plan", "bf16_save_plan", "layer_kinds",
    "recompute_source", "stage_bits", "peak_stash", "layer_activation_memory", "plan_memory",
    "ActivationPolicy", "mark", "scope", "current_policy", "GradBuffer", "NcclComm",
    "AllreduceHookState", "allreduce_hook", "with_cuda", "has_nccl",
]
