#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Train a small LLaMA from scratch with agoq's activation and gradient compression, against BF16.

A LLaMA-style model (RMSNorm, RoPE, causal attention, SwiGLU; agoq.nn.Llama) is trained on a
byte-level corpus that every machine with Python has: the standard library's ``*.py`` sources
(``sysconfig.get_paths()['stdlib']``, site-/dist-packages excluded), concatenated in sorted path
order, the last 2% held out for validation. Model init, data order and evaluation batches come
from fixed seeds, so the modes differ only in what they store:

  --mode bf16      every activation kept (BF16 baseline), gradients accumulated in fp32
  --mode agoq      the paper's LAAQ plan at 4 bits (RMSNorm, out-projection and SwiGLU inputs
                   stored INT4/128; QKV, FFN-up, FFN-down inputs, norm statistics and the SwiGLU
                   state recomputed; attention core kept) + INT8 gradient accumulation
                   (agoq.GradBuffer: micro-batches accumulated with accumulate_requantize)
  --mode int4-all  uniform INT4/128 on every activation (attention core included, nothing
                   recomputed; softmax/norm statistics kept): the control the paper says fails
                   + INT8 gradient accumulation (so it differs from agoq only in the plan)

It writes ``--out`` (JSON, rewritten every --log-every steps, so a killed run leaves its data):
loss per step, step time, validation loss, and per-layer activation memory -- bytes one layer's
forward keeps for backward and its peak (torch.cuda.max_memory_allocated over the forward of
layer 0) -- next to agoq's planner (layer_activation_memory, exact accounting) for the same plan.
plot_training.py turns the three JSON files into a PNG.

Defaults (meet the issue's minimums): 12 layers, hidden 768, 12 heads, FFN 2048 (85.3M
parameters), sequence 1024, micro-batch 4, 4 micro-batches per step (16,384 tokens/step), 2000
steps (32.8M tokens, ~1 epoch of Python 3.12's stdlib), AdamW lr 6e-4 (betas 0.9/0.95, weight
decay 0.1, clip 1.0), warmup 100, cosine to 6e-5.

Time estimate on one H200 (not measured yet -- the script prints its own projection after 10
steps; --max-minutes stops a run early and marks it truncated):
  FLOPs/token = 6 N + attention = 6 x 85.3M + 3.5 x (12 layers x 2 x 1024 x 768 causal) ~ 578M.
  - at the issue's ~32K tokens/step (micro-batch 8): 1.9e13 FLOP/step; GEMMs at ~550 TFLOP/s
    (34 ms) + flash attention at ~250 TFLOP/s (9 ms) + the eager fp32 elementwise work of RMSNorm,
    RoPE and SwiGLU (~200 GB/step of traffic at ~4.5 TB/s, 45 ms) ~ 90 ms/step: 2000 steps ~ 3 min
    for bf16, ~3.5-4 min for agoq (quantizers, recomputation, Python hooks).
  - at the default 16K tokens/step: ~45-55 ms/step (closer to the Python launch floor):
    ~1.7-2 min for bf16, ~2-2.5 min per agoq/int4-all run.
  Use --micro-batch 8 for the issue's 32K tokens/step when the budget allows.

Smoke test (CPU or GPU, seconds): ``train_llama.py --mode agoq --steps 20 --layers 2 --hidden 128
--heads 4 --seq 128 --micro-batch 2``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys
import sysconfig
import time

import torch

import agoq
from agoq.nn import Llama, measure_layer_memory

INT4_ALL = ("bf16,rmsnorm_input=int4/128,gemm_input=int4/128,attention_core=int4/128,"
            "attention_softmax_stats=bf16,out_proj_input=int4/128,activation_input=int4/128,"
            "activation_state=int4/128")
PLANS = {"bf16": "bf16", "agoq": "paper", "int4-all": INT4_ALL}


def load_corpus() -> torch.Tensor:
    root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in sorted(root.rglob("*.py"))
             if not {"site-packages", "dist-packages"} & set(p.relative_to(root).parts)]
    data = b"\n".join(p.read_bytes() for p in files)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8), root, len(files)


class Batches:
    """Random windows of seq + 1 bytes from a fixed generator: the same sequence in every run."""

    def __init__(self, data: torch.Tensor, seq: int, batch: int, seed: int, device):
        self.data, self.seq, self.batch = data.to(device), seq, batch
        self.gen = torch.Generator().manual_seed(seed)
        self.arange = torch.arange(seq + 1, device=device)

    def next(self):
        off = torch.randint(0, self.data.numel() - self.seq - 1, (self.batch,), generator=self.gen)
        w = self.data[off.to(self.data.device)[:, None] + self.arange].long()
        return w[:, :-1], w[:, 1:]


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = (step - args.warmup) / max(1, args.steps - args.warmup)
    lo = args.lr * args.min_lr_ratio
    return lo + 0.5 * (args.lr - lo) * (1 + math.cos(math.pi * min(1.0, t)))


def policy_for(mode, bits, override=None):
    text = override or PLANS[mode]
    return text, (None if text == "bf16" and override is None else agoq.ActivationPolicy(text, bits=bits))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=list(PLANS), default="agoq")
    ap.add_argument("--policy", default=None, help="override the plan (agoq policy text)")
    ap.add_argument("--bits", type=int, default=4, help="stage width of 'stage' entries (DBCA-PP)")
    ap.add_argument("--grad", choices=["auto", "fp32", "int8"], default="auto",
                    help="gradient accumulation: auto = fp32 for bf16, int8 otherwise")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--ffn", type=int, default=2048)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--accum", type=int, default=4, help="micro-batches per step")
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1234, help="model init seed")
    ap.add_argument("--data-seed", type=int, default=4321, help="data order seed")
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-batches", type=int, default=8)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop after this much training time (the JSON says truncated)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=None, help="JSON path (default results/train_<mode>.json)")
    args = ap.parse_args(argv)

    dev = torch.device(args.device)
    out_path = pathlib.Path(args.out or f"results/train_{args.mode}.json")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        from torch.nn.attention import SDPBackend, sdpa_kernel
        attn_ctx = lambda: sdpa_kernel([SDPBackend.FLASH_ATTENTION])  # noqa: E731 (one backend for every mode)
    else:
        import contextlib
        attn_ctx = contextlib.nullcontext

    data, root, nfiles = load_corpus()
    n_val = max(args.seq + 2, data.numel() // 50)
    train, val = data[:-n_val], data[-n_val:]
    print(f"corpus: {nfiles} files under {root}, {data.numel() / 1e6:.1f} MB "
          f"(train {train.numel() / 1e6:.1f} MB, val {val.numel() / 1e6:.2f} MB)", flush=True)

    torch.manual_seed(args.seed)
    model = Llama(vocab=256, hidden=args.hidden, layers=args.layers, heads=args.heads,
                  ffn=args.ffn, seq=args.seq).to(dev)
    n_params = model.num_parameters()
    plan_text, policy = policy_for(args.mode, args.bits, args.policy)
    grad_mode = args.grad if args.grad != "auto" else ("fp32" if args.mode == "bf16" else "int8")
    params = [p for p in model.parameters()]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    gb = agoq.GradBuffer(params, spec="int8/128") if grad_mode == "int8" else None
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8,
                            fused=dev.type == "cuda")
    tokens_per_step = args.micro_batch * args.accum * args.seq
    print(f"model: {n_params / 1e6:.1f}M parameters, {args.layers} layers, hidden {args.hidden}, "
          f"ffn {model.ffn}, heads {args.heads}, seq {args.seq}; mode {args.mode}: plan '{plan_text}' "
          f"at {args.bits} bits, {grad_mode} gradient accumulation over {args.accum} micro-batches "
          f"of {args.micro_batch} ({tokens_per_step} tokens/step)", flush=True)

    result = {
        "mode": args.mode, "plan": plan_text, "bits": args.bits, "grad_accumulation": grad_mode,
        "config": vars(args), "parameters": n_params, "tokens_per_step": tokens_per_step,
        "corpus": {"root": str(root), "files": nfiles, "bytes": int(data.numel())},
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__, "agoq": agoq.__version__,
        "steps": [], "val": [], "memory": {}, "truncated": False,
    }
    if policy is not None:
        result["plan_entries"] = {k: policy.entry(k)["text"] for k in agoq.layer_kinds()[:15]}
    if gb is not None:
        result["grad_buffer_bytes"] = gb.nbytes

    def save():
        tmp = out_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, out_path)

    # ---- per-layer activation memory: this mode's plan and, for the chart, the other two ----
    with attn_ctx():
        for mode, text in PLANS.items():
            t = args.policy if (mode == args.mode and args.policy) else text
            if mode == args.mode or dev.type == "cuda":
                result["memory"][mode] = measure_layer_memory(model, t, args.bits, args.micro_batch, args.seq)
    for mode, m in result["memory"].items():
        if "measured_saved_bytes" in m:
            print(f"layer memory [{mode}]: saved {m['measured_saved_bytes'] / 2**20:.1f} MiB "
                  f"(peak {m['measured_peak_bytes'] / 2**20:.1f} MiB) vs planner "
                  f"{m['predicted_bytes'] / 2**20:.1f} MiB", flush=True)
    save()

    val_batches = Batches(val, args.seq, args.micro_batch, 999, dev)
    val_set = [val_batches.next() for _ in range(args.eval_batches)]

    def evaluate():
        model.eval()
        with torch.no_grad(), attn_ctx():
            losses = [model(x, y).item() for x, y in val_set]
        model.train()
        return sum(losses) / len(losses)

    batches = Batches(train, args.seq, args.micro_batch, args.data_seed, dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t_start = time.perf_counter()
    train_time = 0.0
    for step in range(args.steps):
        t0 = time.perf_counter()
        lr = lr_at(step, args)
        for g in opt.param_groups:
            g["lr"] = lr
        if gb is not None:
            gb.zero_grad()
        else:
            opt.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), device=dev)
        with attn_ctx():
            for _ in range(args.accum):
                x, y = batches.next()
                if policy is None:
                    loss = model(x, y) / args.accum
                else:
                    with policy:
                        loss = model(x, y) / args.accum
                loss.backward()
                if gb is not None:
                    gb.accumulate()
                loss_sum += loss.detach()
        if gb is not None:
            gb.to_grads()
        gnorm = torch.nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        loss_v = loss_sum.item()  # synchronizes: the step time below is the real one
        dt = time.perf_counter() - t0
        train_time += dt
        result["steps"].append({"step": step, "loss": loss_v, "lr": lr,
                                "grad_norm": float(gnorm), "time_s": dt})
        if step == 10:
            per = train_time / 11
            print(f"projection: {per * 1e3:.0f} ms/step -> {per * args.steps / 60:.1f} min for "
                  f"{args.steps} steps", flush=True)
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            v = evaluate()
            result["val"].append({"step": step, "loss": v})
            print(f"step {step + 1}: val loss {v:.4f}", flush=True)
        if step % args.log_every == 0 or step + 1 == args.steps:
            tps = tokens_per_step * (step + 1) / train_time
            print(f"step {step + 1}/{args.steps} loss {loss_v:.4f} lr {lr:.2e} gnorm {float(gnorm):.3f} "
                  f"{dt * 1e3:.0f} ms {tps / 1e3:.1f}K tok/s", flush=True)
            result["train_time_s"] = train_time
            save()
        if not math.isfinite(loss_v):
            print("loss is not finite: stopping (recorded)", flush=True)
            result["diverged_at_step"] = step
            break
        if args.max_minutes is not None and train_time > 60 * args.max_minutes:
            print(f"--max-minutes {args.max_minutes} reached after {step + 1} steps: stopping", flush=True)
            result["truncated"] = True
            break
    result["train_time_s"] = train_time
    result["wall_time_s"] = time.perf_counter() - t_start
    done = len(result["steps"])
    result["ms_per_step"] = 1e3 * train_time / max(1, done)
    result["tokens_per_s"] = tokens_per_step * done / max(train_time, 1e-9)
    if dev.type == "cuda":
        result["peak_memory_bytes"] = torch.cuda.max_memory_allocated(dev)
    if not result["val"] or result["val"][-1]["step"] != done - 1:
        result["val"].append({"step": done - 1, "loss": evaluate()})
    save()
    print(f"done: {done} steps in {train_time:.0f} s ({result['ms_per_step']:.0f} ms/step), final "
          f"val loss {result['val'][-1]['loss']:.4f}; wrote {out_path}", flush=True)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
