# SPDX-License-Identifier: Apache-2.0
"""The 8-bit gradient buffer: bit for bit the chain of accumulate_requantize calls it stands for,
close to fp32 accumulation, CUDA bit for bit CPU."""
import pytest

torch = pytest.importorskip("torch", reason="needs PyTorch")
agoq = pytest.importorskip("agoq", reason="agoq's extension is not built")
from conftest import requires_cuda  # noqa: E402


def _params(device="cpu"):
    torch.manual_seed(1)
    m = torch.nn.Sequential(torch.nn.Linear(33, 70), torch.nn.Linear(70, 5))  # sizes off the block
    return list(m.to(device).parameters())


def _micro_batches(params, M=4, seed=2):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(p.shape, generator=g).to(p.device) for p in params] for _ in range(M)]


def _run(params, mbs, spec="int8/128"):
    gb = agoq.GradBuffer(params, spec=spec, bucket_elems=256)
    gb.zero_grad()
    for grads in mbs:
        for p, g in zip(params, grads):
            p.grad.add_(g)                     # what autograd's AccumulateGrad does
        gb.accumulate()
    gb.to_grads()
    return gb, [p.grad.clone() for p in params]


def test_matches_the_op_chain_bit_for_bit():
    params = _params()
    mbs = _micro_batches(params)
    gb, got = _run(params, mbs)
    # the same with the ops on one flat, block-padded vector
    flat_n = gb.numel
    codes, scales = [torch.zeros_like(t) for t in agoq.quantize(torch.zeros(flat_n), "int8/128")]
    for grads in mbs:
        flat = torch.zeros(flat_n)
        for o, g in zip(gb.offsets, grads):
            flat[o:o + g.numel()] = g.flatten()
        agoq.accumulate_requantize(codes, scales, spec="int8/128", x=flat)
    want = agoq.dequantize(codes, scales, spec="int8/128", shape=(flat_n,), dtype=torch.float32)
    for o, g in zip(gb.offsets, got):
        assert torch.equal(g.flatten(), want[o:o + g.numel()])


def test_close_to_fp32_accumulation():
    params = _params()
    mbs = _micro_batches(params, M=8)
    _, got = _run(params, mbs)
    for i, g in enumerate(got):
        ref = sum(mb[i] for mb in mbs)
        rel = ((g - ref).norm() / ref.norm()).item()
        assert rel < 3e-2, (i, rel)  # 8 requantizations of ~6.5e-3 each


def test_buffer_bytes_and_misuse():
    params = _params()
    gb = agoq.GradBuffer(params)
    assert gb.nbytes < 1.1 * gb.numel + 1024
    for p in params:
        p.grad = None                      # what optimizer.zero_grad() does
    with pytest.raises(RuntimeError, match="GradBuffer.zero_grad"):
        gb.accumulate()
    with pytest.raises(ValueError, match="symmetric"):
        agoq.GradBuffer(params, spec="int8/128/asym")


@requires_cuda
def test_cuda_matches_cpu():
    pc, pg = _params(), _params("cuda")
    mbs = _micro_batches(pc)
    _, a = _run(pc, mbs)
    _, b = _run(pg, [[g.cuda() for g in mb] for mb in mbs])
    assert all(torch.equal(x, y.cpu()) for x, y in zip(a, b))
