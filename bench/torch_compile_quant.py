#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The same block-128 quantizers written in PyTorch and compiled with torch.compile, timed like
bench/quantize_bench (CUDA events, L2 flushed, bytes = input read + codes + scales written) next
to a device-to-device copy in the same run. Run it in the same command as agoq_quantize_bench so
the ratio agoq / torch.compile is measured on one GPU in one session.

    python3 bench/torch_compile_quant.py [--mib 256 1024] [--json PATH]

--json PATH also writes the rows as JSON, for bench/plot_quantizers.py:
    {"gpu": ..., "torch": ..., "rows": [{"op": "copy" | "quantize" | "dequantize",
      "format": "int8_b128" (agoq_quantize_bench's names), "bytes": input bytes, "ms": ...,
      "gbps": ..., "frac_copy": ...}, ...]}
"""
import argparse
import json

import torch

BLOCK = 128


def q_int8(x):
    b = x.float().view(-1, BLOCK)
    amax = b.abs().amax(dim=1, keepdim=True)
    scale = amax / 127.0
    inv = torch.where(scale == 0, torch.zeros_like(scale), 1.0 / scale)
    q = torch.round(b * inv).clamp(-127, 127).to(torch.int8)
    return q, scale


def q_fp8(x):
    b = x.float().view(-1, BLOCK)
    amax = b.abs().amax(dim=1, keepdim=True)
    scale = amax / 448.0
    inv = torch.where(scale == 0, torch.zeros_like(scale), 1.0 / scale)
    q = (b * inv).clamp(-448, 448).to(torch.float8_e4m3fn)
    return q, scale


def q_int4(x):
    b = x.float().view(-1, BLOCK)
    amax = b.abs().amax(dim=1, keepdim=True)
    scale = amax / 7.0
    inv = torch.where(scale == 0, torch.zeros_like(scale), 1.0 / scale)
    q = torch.round(b * inv).clamp(-7, 7).to(torch.int8)
    q = (q & 0xF).view(-1, BLOCK // 2, 2)
    packed = (q[..., 0] | (q[..., 1] << 4)).to(torch.uint8)
    return packed, scale


def dq_int8(q, scale):
    return (q.float() * scale).to(torch.bfloat16)


def timeit(fn, flush, iters=20):
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    for _ in range(3):
        fn()
    times = []
    for _ in range(iters):
        flush.zero_()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]  # median, ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, nargs="+", default=[256, 1024],
                    help="input sizes in MiB of bf16 (default: 256 1024)")
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON to PATH")
    args = ap.parse_args()
    rows = []
    dev = torch.device("cuda")
    flush = torch.empty(256 << 20, dtype=torch.uint8, device=dev)
    print(f"GPU: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    print(f"{'op':<26}{'MiB in':>8}{'ms':>10}{'GB/s':>10}{'frac_copy':>11}")
    for mib in args.mib:
        n = (mib << 20) // 2
        x = torch.randn(n, device=dev, dtype=torch.bfloat16)
        y = torch.empty_like(x)
        copy_ms = timeit(lambda: y.copy_(x), flush)
        copy_gbps = 2 * n * 2 / copy_ms / 1e6
        print(f"{'copy (bf16)':<26}{mib:>8}{copy_ms:>10.3f}{copy_gbps:>10.1f}{1.0:>11.3f}")
        rows.append(dict(op="copy", format="bf16", bytes=2 * n, ms=copy_ms, gbps=copy_gbps,
                         frac_copy=1.0))
        scales = 4 * n / BLOCK
        cases = [
            ("int8 quantize (compiled)", "int8_b128", torch.compile(q_int8), 2 * n + n + scales),
            ("fp8_e4m3 quantize (comp.)", "fp8_e4m3_b128", torch.compile(q_fp8),
             2 * n + n + scales),
            ("int4 quantize (compiled)", "int4_b128", torch.compile(q_int4),
             2 * n + n / 2 + scales),
        ]
        for name, fmt, fn, nbytes in cases:
            ms = timeit(lambda: fn(x), flush)
            gbps = nbytes / ms / 1e6
            print(f"{name:<26}{mib:>8}{ms:>10.3f}{gbps:>10.1f}{gbps / copy_gbps:>11.3f}")
            rows.append(dict(op="quantize", format=fmt, bytes=2 * n, ms=ms, gbps=gbps,
                             frac_copy=gbps / copy_gbps))
        q, s = q_int8(x)
        dq = torch.compile(dq_int8)
        ms = timeit(lambda: dq(q, s), flush)
        gbps = (n + scales + 2 * n) / ms / 1e6
        print(f"{'int8 dequantize (comp.)':<26}{mib:>8}{ms:>10.3f}{gbps:>10.1f}{gbps / copy_gbps:>11.3f}")
        rows.append(dict(op="dequantize", format="int8_b128", bytes=2 * n, ms=ms, gbps=gbps,
                         frac_copy=gbps / copy_gbps))
        del x, y, q, s
        torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, block=BLOCK,
                           rows=rows), f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
