#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Plots each quantizer's bandwidth as a fraction of a device-to-device copy, per format, next to
torch.compile's, from the two benchmarks' JSON output:

    build-gpu/bench/agoq_quantize_bench --benchmark_format=json > quantize.json
    python3 bench/torch_compile_quant.py --json torch_compile.json
    python3 bench/plot_quantizers.py quantize.json --torch torch_compile.json -o docs/quantizers.png

agoq's rows are Google Benchmark rows named <family>/<format>/<input bytes>[/...] (family
bm_quantize, bm_dequantize, bm_dequantize_accumulate, bm_accumulate_requantize; bm_copy is the
copy, bm_traffic rows are skipped) with the counters "GB/s" and "frac_copy"; a row without
frac_copy is divided by the copy row of the same size. Repetitions: the median aggregate is used
when present, else the mean of the iteration rows. torch.compile's rows come from
torch_compile_quant.py --json (op, format, bytes, frac_copy). Sizes: --mib picks one (default:
the largest size agoq measured; torch.compile's rows are shown only at the same size).

Needs python3 and matplotlib (only for drawing: --list prints the numbers without it).
"""
import argparse
import json
import re
import statistics
import sys

# Row families shown, in this order, with their panel titles.
FAMILIES = [
    ("bm_quantize", "quantize"),
    ("bm_dequantize", "dequantize"),
    ("bm_dequantize_accumulate", "dequantize_accumulate"),
    ("bm_accumulate_requantize", "accumulate_requantize"),
]
TORCH_OP = {"bm_quantize": "quantize", "bm_dequantize": "dequantize"}


def fail(msg):
    print(f"plot_quantizers.py: {msg}", file=sys.stderr)
    sys.exit(2)


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    except json.JSONDecodeError as e:
        fail(f"{path} is not JSON ({e}); run the benchmark with --benchmark_format=json "
             f"(or --benchmark_out=FILE --benchmark_out_format=json)")


def parse_name(name):
    """'bm_quantize/int8_b128/16777216/min_time:0.200/manual_time' ->
    ('bm_quantize', 'int8_b128', 16777216); ('bm_copy', '', bytes) for the copy."""
    parts = name.split("/")
    family, label, size = parts[0], [], None
    for p in parts[1:]:
        if re.fullmatch(r"\d+", p):
            size = int(p)
            break
        if ":" in p:  # min_time:..., repeats:..., threads:...
            break
        label.append(p)
    return family, "/".join(label), size


def agoq_rows(doc, path):
    """{(family, format, bytes): frac_copy} from Google Benchmark JSON, in the rows' order."""
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        fail(f"{path} has no 'benchmarks' list: is it agoq_quantize_bench's "
             f"--benchmark_format=json output?")
    runs = [b for b in doc["benchmarks"] if isinstance(b, dict) and "name" in b]
    medians = [b for b in runs if b.get("run_type") == "aggregate"
               and b.get("aggregate_name") == "median"]
    chosen = medians if medians else [b for b in runs if b.get("run_type", "iteration")
                                      == "iteration"]
    gbps, frac = {}, {}
    for b in chosen:
        if b.get("error_occurred"):
            continue
        family, label, size = parse_name(b.get("run_name") or b["name"])
        if size is None:
            continue
        key = (family, label, size)
        if "GB/s" in b:
            gbps.setdefault(key, []).append(float(b["GB/s"]))
        if "frac_copy" in b:
            frac.setdefault(key, []).append(float(b["frac_copy"]))
    copy = {k[2]: statistics.mean(v) for k, v in gbps.items() if k[0] == "bm_copy"}
    out = {}
    for key in list(dict.fromkeys(list(gbps) + list(frac))):
        family, _, size = key
        if family in ("bm_copy", "bm_traffic") or family.startswith("bm_traffic"):
            continue
        if key in frac:
            out[key] = statistics.mean(frac[key])
        elif size in copy and copy[size] > 0:
            out[key] = statistics.mean(gbps[key]) / copy[size]
    if not out:
        errors = [b.get("error_message") for b in runs if b.get("error_occurred")]
        why = f" (the rows report: {errors[0]})" if errors else ""
        fail(f"{path} holds no quantizer row with GB/s and a copy row to compare with{why}")
    return out


def torch_rows(doc, path):
    """{(op, format, bytes): frac_copy} from torch_compile_quant.py --json."""
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        fail(f"{path} has no 'rows' list: is it torch_compile_quant.py --json output?")
    out = {}
    for r in doc["rows"]:
        try:
            if r["op"] != "copy":
                out[(r["op"], r["format"], int(r["bytes"]))] = float(r["frac_copy"])
        except (KeyError, TypeError, ValueError):
            fail(f"{path}: a row lacks op, format, bytes or frac_copy: {r}")
    return out


def pretty(label):
    """'fp8_e4m3_sr_b128' -> 'fp8 e4m3 SR\\nb128'."""
    words = label.split("_")
    block = [w for w in words if re.fullmatch(r"b\d+", w)]
    rest = [("SR" if w == "sr" else "asym" if w == "asym" else w) for w in words
            if w not in block]
    text = " ".join(rest)
    return text + ("\n" + block[0] if block else "")


def mib(nbytes):
    return f"{nbytes / 2**20:g} MiB" if nbytes < 2**30 else f"{nbytes / 2**30:g} GiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("agoq_json", help="agoq_quantize_bench --benchmark_format=json output")
    ap.add_argument("--torch", metavar="JSON", help="torch_compile_quant.py --json output")
    ap.add_argument("-o", "--output", default="docs/quantizers.png", help="PNG to write "
                    "(default: docs/quantizers.png)")
    ap.add_argument("--mib", type=float, help="input size to plot, MiB of bf16 (default: the "
                    "largest agoq measured)")
    ap.add_argument("--title", help="title (default: names the GPU when the JSON does)")
    ap.add_argument("--list", action="store_true", help="print the numbers, draw nothing")
    args = ap.parse_args()

    agoq_doc = load_json(args.agoq_json)
    agoq = agoq_rows(agoq_doc, args.agoq_json)
    torch_doc = load_json(args.torch) if args.torch else None
    torch = torch_rows(torch_doc, args.torch) if torch_doc is not None else {}

    sizes = sorted({k[2] for k in agoq})
    if args.mib is not None:
        size = int(round(args.mib * 2**20))
        if size not in sizes:
            fail(f"agoq has no rows of {args.mib:g} MiB; it has "
                 + ", ".join(f"{s / 2**20:g}" for s in sizes) + " MiB")
    else:
        size = sizes[-1]
    torch_sizes = sorted({k[2] for k in torch})
    torch_size = size if size in torch_sizes else None
    if torch and torch_size is None:
        print(f"plot_quantizers.py: torch.compile has no rows of {mib(size)} (it has "
              + ", ".join(mib(s) for s in torch_sizes) + "): drawn without them",
              file=sys.stderr)

    panels = []
    for family, title in FAMILIES:
        labels = [k[1] for k in agoq if k[0] == family and k[2] == size]
        if not labels:
            continue
        ours = [agoq[(family, l, size)] for l in labels]
        op = TORCH_OP.get(family)
        theirs = [torch.get((op, l, torch_size)) if op and torch_size else None for l in labels]
        panels.append((title, labels, ours, theirs))
    if not panels:
        fail(f"no quantizer rows of {mib(size)} in {args.agoq_json}")

    gpu = (torch_doc or {}).get("gpu") or (agoq_doc.get("context") or {}).get("gpu_name")
    title = args.title or ("agoq quantizers vs torch.compile" if torch_size else
                           "agoq quantizers") + f", {mib(size)} of bf16 input" + \
        (f", {gpu}" if gpu else "")

    if args.list:
        print(title)
        for ptitle, labels, ours, theirs in panels:
            print(ptitle)
            for l, a, t in zip(labels, ours, theirs):
                print(f"  {l:<22} agoq {a:5.3f}" + (f"  torch.compile {t:5.3f}" if t else ""))
        return 0

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail("matplotlib is not installed (pip install matplotlib); --list prints the numbers")

    # quantize on the first row, the other panels side by side on the second
    first, rest = panels[:1], panels[1:]
    widths = [max(len(p[1]), 3) for p in rest]
    cols = max(sum(widths), len(first[0][1]), 1)
    fig = plt.figure(figsize=(max(0.75 * cols + 1.5, 7.0), 7.5 if rest else 4.2))
    grid = fig.add_gridspec(2 if rest else 1, cols, hspace=0.45, wspace=0.6)
    axes = [fig.add_subplot(grid[0, :])]
    start = 0
    for w in widths:
        axes.append(fig.add_subplot(grid[1, start:start + w], sharey=axes[0]))
        start += w
    top = max([1.1] + [v for p in panels for v in p[2]] + [v for p in panels for v in p[3] if v])
    for ax, (ptitle, labels, ours, theirs) in zip(axes, panels):
        has_torch = any(t is not None for t in theirs)
        w = 0.38 if has_torch else 0.6
        xs = range(len(labels))
        bars = ax.bar([x - (w / 2 if has_torch else 0) for x in xs], ours, w, label="agoq",
                      color="#3b6fb6")
        for b, v in zip(bars, ours):
            ax.text(b.get_x() + b.get_width() / 2, v + 0.01, f"{v:.2f}", ha="center",
                    va="bottom", fontsize=7)
        if has_torch:
            tx = [x + w / 2 for x, t in zip(xs, theirs) if t is not None]
            tv = [t for t in theirs if t is not None]
            tb = ax.bar(tx, tv, w, label="torch.compile", color="#e08a2c")
            for b, v in zip(tb, tv):
                ax.text(b.get_x() + b.get_width() / 2, v + 0.01, f"{v:.2f}", ha="center",
                        va="bottom", fontsize=7)
        ax.axhline(1.0, color="gray", linestyle="--", linewidth=0.8)
        ax.set_xticks(list(xs))
        ax.set_xticklabels([pretty(l) for l in labels], fontsize=8)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        ax.set_title(ptitle, fontsize=9)
        ax.set_ylim(0, top * 1.12)
        if ax is axes[0] or ax is axes[min(1, len(axes) - 1)]:
            ax.set_ylabel("fraction of copy", fontsize=8)
        else:
            ax.tick_params(labelleft=False)
    handles = {}
    for ax in axes:
        for h, l in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(l, h)
    fig.legend(handles.values(), handles.keys(), loc="upper right", fontsize=8)
    fig.suptitle(title + "\n(bandwidth as a fraction of a device-to-device copy of the same "
                 "input; dashed: the copy)", fontsize=10)
    fig.savefig(args.output, dpi=150, bbox_inches="tight")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
