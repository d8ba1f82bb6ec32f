# SPDX-License-Identifier: Apache-2.0
"""The ops: CPU bit for bit against an independent reimplementation of agoq's rules (int8/int4,
nearest even), CUDA bit for bit against CPU, the fused forms against their definitions, errors,
opcheck (schema, fake implementations) and torch.compile."""
import pytest

torch = pytest.importorskip("torch", reason="needs PyTorch")
agoq = pytest.importorskip("agoq", reason="agoq's extension is not built")
from conftest import requires_cuda  # noqa: E402

SPECS = ["int8/128", "int4/128", "int4/64/asym", "int2/32", "int5/128", "fp8_e4m3/128",
         "fp8_e5m2/256", "fp4_e2m1/32/e8m0", "int8/128/pow2", "int8/128/stochastic",
         "int4/128/sr/asym"]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def np_block_quant_int(x: torch.Tensor, bits: int, block: int):
    """agoq's symmetric integer rule, written out: per block of a row, scale = fp32(amax / qmax),
    inv = fp32(1 / scale), code = clamp(rint(fp32(x * inv))), decoded = fp32(code * scale)."""
    qmax = 2 ** (bits - 1) - 1
    rows, cols = x.shape
    nb = (cols + block - 1) // block
    xp = torch.zeros(rows, nb * block, dtype=torch.float32)
    xp[:, :cols] = x.float()
    b = xp.view(rows, nb, block)
    amax = b.abs().amax(-1)
    scale = (amax / qmax).to(torch.float32)
    inv = torch.where(scale == 0, torch.zeros_like(scale), (1.0 / scale).to(torch.float32))
    q = torch.round(b * inv[..., None]).clamp(-qmax, qmax)
    dec = (q * scale[..., None]).view(rows, -1)[:, :cols]
    return q.to(torch.int64), scale, dec


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("cols", [256, 300, 77])
def test_cpu_matches_written_out_rule(bits, cols):
    x = torch.randn(5, cols) * 3
    spec = f"int{bits}/64"
    codes, scales = agoq.quantize(x, spec)
    q, s, dec = np_block_quant_int(x, bits, 64)
    assert torch.equal(scales, s)
    if bits == 8:
        assert torch.equal(codes.view(torch.int8).to(torch.int64).view(q.shape), q)
    else:  # two codes per byte, low nibble first
        lo = (codes.to(torch.int64) & 0xF)
        hi = (codes.to(torch.int64) >> 4) & 0xF
        nib = torch.stack([lo, hi], -1).view(5, -1)
        nib = torch.where(nib >= 8, nib - 16, nib)
        assert torch.equal(nib.view(q.shape), q)
    y = agoq.dequantize(codes, scales, spec=spec, shape=x.shape, dtype=torch.float32)
    assert torch.equal(y, dec)


def test_spec_info_and_errors():
    info = agoq.spec_info("int4 / 64 / sr")
    assert info["format"] == "int4" and info["block"] == 64 and info["rounding"] == "stochastic"
    assert info["bits_per_element"] == pytest.approx(4.5)
    with pytest.raises(ValueError, match="int9"):
        agoq.quantize(torch.randn(8), "int9/128")
    with pytest.raises(ValueError, match="block '100' is not supported"):
        agoq.quantize(torch.randn(8), "int8/100")
    with pytest.raises(ValueError, match="not a storage format"):
        agoq.quantize(torch.randn(8), "recompute")
    with pytest.raises(ValueError, match="float32, float16 or bfloat16"):
        agoq.quantize(torch.arange(8), "int8/128")
    codes, scales = agoq.quantize(torch.randn(4, 128), "int8/128")
    with pytest.raises(ValueError, match="codes_bytes"):
        agoq.dequantize(codes[:2], scales, spec="int8/128", shape=(4, 128), dtype=torch.float32)
    with pytest.raises(ValueError, match="zeros must hold"):
        agoq.dequantize(codes, scales, spec="int8/128/asym", shape=(4, 128), dtype=torch.float32)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_shapes_and_error(spec, dtype):
    x = torch.randn(3, 4, 200).to(dtype)
    out = agoq.quantize(x, spec, seed=7)
    info = agoq.spec_info(spec)
    assert len(out) == (2 if info["symmetric"] else 3)
    codes, scales = out[0], out[1]
    bpr = (200 + info["block"] - 1) // info["block"]
    assert codes.shape == (3, 4, bpr * info["block_code_bytes"]) and codes.dtype == torch.uint8
    assert scales.shape == (3, 4, bpr)
    y = agoq.dequantize(*out, spec=spec, shape=x.shape, dtype=dtype)
    assert y.shape == x.shape and y.dtype == dtype
    rel = ((y.float() - x.float()).norm() / x.float().norm()).item()
    limit = {"int2": 0.8, "int4": 0.2, "fp4_e2m1": 0.2, "int5": 0.1, "fp8_e5m2": 0.1}
    assert rel < limit.get(info["format"], 0.05), rel
    # rows are independent: row r of the 2-D result is the 1-D quantizer of row r
    r = agoq.quantize(x[1, 2].contiguous(), spec, seed=0)
    r2 = agoq.quantize(x[1:2, 2:3].contiguous(), spec, seed=0)
    assert torch.equal(r[0], r2[0].view(-1)) and torch.equal(r[1], r2[1].view(-1))


def test_stochastic_seed_changes_codes_and_is_reproducible():
    x = torch.randn(4096)
    a = agoq.quantize(x, "int4/128/sr", seed=1)[0]
    b = agoq.quantize(x, "int4/128/sr", seed=1)[0]
    c = agoq.quantize(x, "int4/128/sr", seed=2)[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_dequantize_accumulate_and_accumulate_requantize_definitions():
    spec = "int8/128"
    x, g = torch.randn(3, 300), torch.randn(3, 300)
    codes, scales = agoq.quantize(x, spec)
    acc = torch.randn(3, 300)
    want = acc + 0.5 * agoq.dequantize(codes, scales, spec=spec, shape=x.shape, dtype=torch.float32)
    agoq.dequantize_accumulate(codes, scales, spec=spec, acc=acc, alpha=0.5)
    assert torch.equal(acc, want)  # alpha a power of two: fma == mul + add
    # a zero buffer plus x is quantize(x); then buf := Q(D(buf) + g) summed in fp32
    bc, bs = torch.zeros_like(codes), torch.zeros_like(scales)
    agoq.accumulate_requantize(bc, bs, spec=spec, x=x)
    assert torch.equal(bc, codes) and torch.equal(bs, scales)
    s = agoq.dequantize(bc, bs, spec=spec, shape=x.shape, dtype=torch.float32) + g
    wc, ws = agoq.quantize(s, spec)
    agoq.accumulate_requantize(bc, bs, spec=spec, x=g)
    assert torch.equal(bc, wc) and torch.equal(bs, ws)
    # asymmetric: zeros are updated in place too
    zc, zs, zz = [torch.zeros_like(t) for t in agoq.quantize(x, "int4/128/asym")]
    agoq.accumulate_requantize(zc, zs, zz, spec="int4/128/asym", x=x)
    ref = agoq.quantize(x, "int4/128/asym")
    assert all(torch.equal(a, b) for a, b in zip((zc, zs, zz), ref))


def test_empty_and_scalar():
    c, s = agoq.quantize(torch.empty(0, 128), "int8/128")
    assert c.shape == (0, 128) and s.shape == (0, 1)
    c, s = agoq.quantize(torch.tensor(2.0), "int8/128")
    y = agoq.dequantize(c, s, spec="int8/128", shape=(1,), dtype=torch.float32)
    assert y.item() == 2.0


def test_opcheck():
    x = torch.randn(4, 200)
    for spec in ("int4/128", "int4/64/asym", "fp4_e2m1/32/e8m0"):
        torch.library.opcheck(torch.ops.agoq.quantize.default, (x, spec, 0))
        c, s, z = torch.ops.agoq.quantize(x, spec, 0)
        zz = None if agoq.spec_info(spec)["symmetric"] else z
        torch.library.opcheck(torch.ops.agoq.dequantize.default, (c, s, zz, spec, [4, 200], torch.bfloat16))
        torch.library.opcheck(torch.ops.agoq.dequantize_accumulate.default, (c, s, zz, spec, torch.zeros(4, 200), 1.0))
        torch.library.opcheck(torch.ops.agoq.accumulate_requantize.default,
                              (c.clone(), s.clone(), None if zz is None else zz.clone(), spec, x, 0))


def _qdq(x):
    c, s, z = torch.ops.agoq.quantize(x, "int4/128", 0)
    y = torch.ops.agoq.dequantize(c, s, None, "int4/128", list(x.shape), x.dtype)
    acc = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    torch.ops.agoq.dequantize_accumulate(c, s, None, "int4/128", acc, 2.0)
    return y * 2 + 1, acc


def test_torch_compile_cpu():
    x = torch.randn(8, 256)
    want = _qdq(x)
    torch._dynamo.reset()
    got = torch.compile(_qdq, backend="aot_eager", fullgraph=True)(x)
    assert all(torch.equal(a, b) for a, b in zip(want, got))


def test_torch_compile_inductor_cpu():
    x = torch.randn(8, 256)
    want = _qdq(x)
    torch._dynamo.reset()
    got = torch.compile(_qdq, fullgraph=True)(x)  # inductor: needs a C++ compiler
    assert all(torch.equal(a, b) for a, b in zip(want, got))


@requires_cuda
@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_matches_cpu(spec, dtype):
    x = (torch.randn(5, 1000) * 4).to(dtype)
    cpu = torch.ops.agoq.quantize(x, spec, 11)
    gpu = torch.ops.agoq.quantize(x.cuda(), spec, 11)
    for a, b in zip(cpu, gpu):
        assert torch.equal(a, b.cpu()), spec
    z = None if agoq.spec_info(spec)["symmetric"] else cpu[2]
    yc = torch.ops.agoq.dequantize(cpu[0], cpu[1], z, spec, [5, 1000], dtype)
    yg = torch.ops.agoq.dequantize(gpu[0], gpu[1], None if z is None else gpu[2], spec, [5, 1000], dtype)
    assert torch.equal(yc, yg.cpu())
    g = torch.randn(5, 1000).to(dtype)
    bc = [t.clone() for t in cpu]
    bg = [t.clone() for t in gpu]
    torch.ops.agoq.accumulate_requantize(bc[0], bc[1], None if z is None else bc[2], spec, g, 3)
    torch.ops.agoq.accumulate_requantize(bg[0], bg[1], None if z is None else bg[2], spec, g.cuda(), 3)
    for a, b in zip(bc, bg):
        assert torch.equal(a, b.cpu())
    acc = torch.randn(5, 1000)
    accg = acc.cuda()
    torch.ops.agoq.dequantize_accumulate(cpu[0], cpu[1], z, spec, acc, 0.25)
    torch.ops.agoq.dequantize_accumulate(gpu[0], gpu[1], None if z is None else gpu[2], spec, accg, 0.25)
    assert torch.equal(acc, accg.cpu())


@requires_cuda
def test_cuda_graph_and_inductor():
    x = torch.randn(64, 1024, device="cuda", dtype=torch.bfloat16)
    want = _qdq(x)
    torch._dynamo.reset()
    got = torch.compile(_qdq, fullgraph=True)(x)
    assert all(torch.equal(a, b) for a, b in zip(want, got))
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        _qdq(x)  # warm up
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = _qdq(x)
    x.copy_(torch.randn_like(x))
    g.replay()
    torch.cuda.synchronize()
    want = _qdq(x)
    assert all(torch.equal(a, b) for a, b in zip(want, out))
