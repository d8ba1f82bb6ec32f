#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Plots train_llama.py's results: the loss curves of every run (raw, faint, and smoothed) with
their validation losses, and a bar chart of one layer's activation memory per plan -- measured
(bytes kept for backward after the forward of layer 0, and its peak) next to agoq's planner.

    python plot_training.py results/train_bf16.json results/train_agoq.json \
        results/train_int4-all.json --out results/training.png

Also prints a summary table (final losses, step time, memory) in Markdown.
"""
from __future__ import annotations

import argparse
import json
import pathlib

COLORS = {"bf16": "#1f77b4", "agoq": "#2ca02c", "int4-all": "#d62728"}


def ema(xs, alpha):
    out, m = [], None
    for x in xs:
        if x != x:  # NaN
            out.append(x)
            continue
        m = x if m is None else alpha * m + (1 - alpha) * x
        out.append(m)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="JSON files written by train_llama.py")
    ap.add_argument("--out", default="results/training.png")
    ap.add_argument("--smooth", type=float, default=0.95, help="EMA factor of the smoothed curve")
    args = ap.parse_args(argv)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [json.loads(pathlib.Path(p).read_text()) for p in args.runs]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(15, 5.5), gridspec_kw={"width_ratios": [3, 2]})

    for r in runs:
        c = COLORS.get(r["mode"])
        steps = [s["step"] for s in r["steps"]]
        loss = [s["loss"] for s in r["steps"]]
        label = f"{r['mode']} ({r['plan'] if len(r['plan']) < 20 else 'uniform int4'}, {r['grad_accumulation']} grads)"
        ax.plot(steps, loss, color=c, alpha=0.2, linewidth=0.7)
        ax.plot(steps, ema(loss, args.smooth), color=c, linewidth=1.8, label=label)
        if r["val"]:
            ax.plot([v["step"] for v in r["val"]], [v["loss"] for v in r["val"]], "o--", color=c,
                    markersize=4, linewidth=0.8, label=f"{r['mode']} validation")
    r0 = runs[0]
    cfg = r0["config"]
    ax.set_title(fontsize=10, label=f"LLaMA {r0['parameters'] / 1e6:.1f}M, {cfg['layers']} layers, seq {cfg['seq']}, "
                 f"{r0['tokens_per_step']} tokens/step, byte-level Python stdlib")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/byte)")
    finite = [s["loss"] for r in runs for s in r["steps"][len(r["steps"]) // 10:] if s["loss"] == s["loss"]]
    finite += [v["loss"] for r in runs for v in r["val"] if v["loss"] == v["loss"]]
    if finite:
        lo, hi = min(finite), max(finite)
        ax.set_ylim(lo - 0.05 * (hi - lo + 1e-9), hi + 0.3 * (hi - lo + 1e-9))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)

    # memory bars: the per-plan measurements of the first run that has them (one GPU, one shape)
    mem = {}
    for r in runs:
        for mode, m in r.get("memory", {}).items():
            if "measured_saved_bytes" in m and mode not in mem:
                mem[mode] = m
            elif mode not in mem:
                mem.setdefault(mode, m)
    modes = [m for m in ("bf16", "agoq", "int4-all") if m in mem] + [m for m in mem if m not in COLORS]
    mib = 2.0 ** 20
    width = 0.27
    for i, mode in enumerate(modes):
        m = mem[mode]
        bars = [("planner", m["predicted_bytes"], 0.45)]
        if "measured_saved_bytes" in m:
            bars += [("measured saved", m["measured_saved_bytes"], 0.9),
                     ("measured peak", m["measured_peak_bytes"], 0.6)]
        for j, (name, v, alpha) in enumerate(bars):
            x = i + (j - 1) * width
            bx.bar(x, v / mib, width, color=COLORS.get(mode, "gray"), alpha=alpha,
                   hatch="//" if name == "planner" else ("" if name == "measured saved" else ".."),
                   edgecolor="black", linewidth=0.5)
            bx.text(x, v / mib, f"{v / mib:.1f}", ha="center", va="bottom", fontsize=7)
    bx.set_xticks(range(len(modes)))
    bx.set_xticklabels(modes)
    u = next(iter(mem.values()))
    bx.set_ylabel(f"MiB per layer (micro-batch {u['micro_batch']} x seq {u['seq']})")
    bx.set_title("one layer's activations: planner (//),\nmeasured kept for backward (solid), forward peak (..)", fontsize=10)
    bx.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    print(f"wrote {out}")

    print("\n| mode | plan | grads | steps | final train loss (EMA) | final val loss | ms/step | "
          "layer kept MiB (measured / planner) | peak GPU memory GiB |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        loss = ema([s["loss"] for s in r["steps"]], args.smooth)
        m = mem.get(r["mode"], {})
        meas = f"{m['measured_saved_bytes'] / mib:.1f}" if "measured_saved_bytes" in m else "-"
        pred = f"{m['predicted_bytes'] / mib:.1f}" if m else "-"
        peak = f"{r['peak_memory_bytes'] / 2**30:.2f}" if "peak_memory_bytes" in r else "-"
        plan = r["plan"] if len(r["plan"]) < 20 else "uniform int4"
        print(f"| {r['mode']} | {plan} | {r['grad_accumulation']} | {len(r['steps'])}"
              f"{' (truncated)' if r.get('truncated') else ''} | {loss[-1]:.4f} | "
              f"{r['val'][-1]['loss']:.4f} | {r.get('ms_per_step', 0):.0f} | {meas} / {pred} | {peak} |")


if __name__ == "__main__":
    main()
