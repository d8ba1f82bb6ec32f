# SPDX-License-Identifier: Apache-2.0
"""The policy engine through the binding: the text form, the paper's plan, DBCA-PP, the planner."""
import pytest

torch = pytest.importorskip("torch", reason="needs PyTorch")
agoq = pytest.importorskip("agoq", reason="agoq's extension is not built")


def test_paper_plan_entries():
    p = agoq.paper_save_plan()
    assert p.entry("attn_norm_input")["text"] == "stage/128"
    assert p.entry("qkv_input") == {"action": "recompute", "text": "recompute:attn_norm_input",
                                    "spec": None, "follows_stage": False, "source": "attn_norm_input"}
    assert p.entry("attention_q")["action"] == "keep"
    p4 = p.at_stage_bits(4)
    assert p4.entry("swiglu_input")["spec"] == "int4/128"
    assert p.at_stage_bits(16).entry("swiglu_input")["action"] == "keep"
    assert agoq.parse_policy("paper") == p
    assert agoq.parse_policy(p.to_text(), agoq.bf16_save_plan()) == p
    q = agoq.parse_policy("rmsnorm_input=int8/64", agoq.bf16_save_plan())
    assert q.entry("ffn_norm_input")["spec"] == "int8/64"
    assert q.diff_text(agoq.bf16_save_plan()) == "rmsnorm_input=int8/64"


def test_policy_errors_carry_agoq_messages():
    with pytest.raises(ValueError, match="unknown key 'nope'"):
        agoq.parse_policy("nope=int4")
    with pytest.raises(ValueError, match="empty policy text"):
        agoq.parse_policy("")
    with pytest.raises(ValueError, match="bits must be 2..8 or 16"):
        agoq.paper_save_plan().at_stage_bits(9)


def test_dbca_pp_and_stash():
    assert agoq.peak_stash("interleaved-1f1b", 4, 8, 2) == [11, 9, 7, 5]
    assert agoq.stage_bits([11, 9, 7, 5]) == [4, 4, 6, 8]
    assert agoq.stage_bits([11, 9, 7, 5], tolerance=0.05) == [4, 5, 6, 8]


def test_planner_paper_accounting():
    shape = dict(block="llama", layers=32, hidden=4096, ffn=4 * 4096, heads=32, seq=4096,
                 micro_batch=1)
    u = 4096 * 4096 * 2
    m = agoq.layer_activation_memory(shape, "paper", 4, "paper")
    assert m["bytes"] == 31 * u // 4          # 7.75U
    assert m["baseline_bytes"] == 28 * u      # Megatron BF16 with fp32 norm inputs
    kinds = {t["kind"]: t for t in m["tensors"]}
    assert kinds["qkv_input"]["bytes"] == 0 and kinds["attention_q"]["bytes"] == u
    plan = agoq.plan_memory(dict(shape, stages=4, schedule="interleaved-1f1b", micro_batches=8,
                                 virtual_stages=2), "paper")
    assert [s["bits"] for s in plan["stages"]] == [4, 4, 6, 8]
    with pytest.raises(ValueError, match="multiple of shape.heads"):
        agoq.layer_activation_memory(dict(shape, heads=3), "paper")
    with pytest.raises(ValueError, match="unknown model shape key"):
        agoq.layer_activation_memory(dict(shape, hiden=1), "paper")
