# SPDX-License-Identifier: Apache-2.0
"""agoq's policy engine (C++, policy/*.hpp), bound: save plans in the text form, the paper's LAAQ
plan, DBCA-PP stage widths, pipeline stashes and the activation memory planner. The logic stays
in C++; this module only names it.

Model shapes are dicts of agoq::model_shape fields: ``block`` ('llama' | 'gpt'), ``layers``,
``hidden``, ``ffn``, ``heads``, ``kv_heads``, ``seq``, ``micro_batch``, ``stages``, ``schedule``
('gpipe' | '1f1b' | 'interleaved-1f1b'), ``micro_batches``, ``virtual_stages``, ``norm_fp32``
(default True: the Megatron baseline keeps norm inputs in fp32), ``experts``, ``moe_top_k``,
``moe_ffn``.
"""
from __future__ import annotations

from typing import List, Optional, Union

from . import _C

SavePlan = _C.SavePlan


def parse_policy(text: str, base: Optional[SavePlan] = None) -> SavePlan:
    """agoq::parse_policy: ``text`` applied to ``base`` (default: the paper's plan), e.g.
    ``parse_policy("rmsnorm_input=int4/128,attention_core=bf16")``, ``parse_policy("bf16")``."""
    return _C.parse_policy(text, base)


def paper_save_plan(block: int = 128) -> SavePlan:
    """The paper's LAAQ plan: norm, out-projection and SwiGLU inputs at the stage width (B bits),
    their GEMM inputs and intermediates recomputed, the attention core kept."""
    return _C.paper_save_plan(block)


def bf16_save_plan() -> SavePlan:
    """Every activation kept (the BF16 baseline)."""
    return _C.bf16_save_plan()


def as_plan(plan: Union[str, SavePlan]) -> SavePlan:
    return plan if isinstance(plan, SavePlan) else parse_policy(plan)


def layer_kinds() -> List[str]:
    return list(_C.layer_kinds())


def recompute_source(kind: str) -> str:
    return _C.recompute_source(kind)


def stage_bits(stash, base_bits: int = 4, widths=(4, 5, 6, 8), allow_unquantized: bool = False,
               tolerance: float = 0.0) -> List[int]:
    """DBCA-PP: the bit width of each pipeline stage from its peak stash (stage_bits.hpp)."""
    return list(_C.stage_bits(list(stash), base_bits, list(widths), allow_unquantized, tolerance))


def peak_stash(schedule: str, stages: int, micro_batches: int, virtual_stages: int = 1) -> List[int]:
    """Peak chunks of activations each stage holds, from simulating the schedule."""
    return list(_C.peak_stash(schedule, stages, micro_batches, virtual_stages))


def layer_activation_memory(shape: dict, plan: Union[str, SavePlan], bits: int = 4,
                            accounting: str = "exact") -> dict:
    """Bytes one layer keeps for backward under ``plan`` at stage width ``bits``, with the BF16
    baseline and a per-tensor breakdown (planner.hpp)."""
    return _C.layer_activation_memory(dict(shape), as_plan(plan), bits, accounting)


def plan_memory(shape: dict, plan: Union[str, SavePlan], dbca: bool = True, base_bits: int = 4,
                widths=(4, 5, 6, 8), tolerance: float = 0.0, accounting: str = "exact") -> dict:
    """Activation bytes of every pipeline stage at its peak (planner.hpp)."""
    return _C.plan_memory(dict(shape), as_plan(plan), dbca, base_bits, list(widths), tolerance,
                          accounting)
