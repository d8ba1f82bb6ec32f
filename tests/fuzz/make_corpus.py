#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpus of the libFuzzer harnesses (tests/fuzz/corpus/<harness>/).

The byte layouts are the ones the harnesses read (fuzz_*.cpp): a few header bytes, then values.
Each seed is a small input that reaches one interesting corner (and the known defects of issue
17: finite values near the type's largest, tiny blocks, an asymmetric range past FLT_MAX, a
huge all-reduce chunk), so the ctest corpus replay is a regression test of them too.
Run: python3 tests/fuzz/make_corpus.py  (rewrites the corpus folders; deterministic).
"""
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

FORMATS = ["int2", "int3", "int4", "int5", "int6", "int7", "int8", "fp8_e4m3", "fp8_e5m2",
           "fp4_e2m1"]
TYPES = {"float": 0, "half": 1, "bf16": 2}
MODES = {"raw": 0, "finite": 1, "scaled": 2, "sparse": 3, "near_max": 4}
BLOCKS = {32: 0, 64: 1, 128: 2, 256: 3}
SCALES = {"fp32": 0, "pow2": 1, "e8m0": 2}


def spec_bytes(fmt, block, scale="fp32", sr=False, asym=False, elem="float", rows=1):
    b0 = FORMATS.index(fmt)
    b1 = BLOCKS[block] | (SCALES[scale] << 2) | (0x40 if sr else 0) | (0x80 if asym else 0)
    b2 = TYPES[elem] + 3 * (rows - 1)
    return bytes([b0, b1, b2])


def values(elem, vals):
    if elem == "float":
        return b"".join(struct.pack("<f", v) for v in vals)
    if elem == "half":
        return b"".join(struct.pack("<e", v) for v in vals)
    return b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:] for v in vals)


def quantize_seed(fmt, block, scale, sr, asym, elem, rows, cols, pads, seed, mode, payload):
    return (spec_bytes(fmt, block, scale, sr, asym, elem, rows) + struct.pack("<H", cols) +
            bytes([pads]) + struct.pack("<Q", seed) + bytes([0, MODES[mode]]) + payload)


def write(harness, name, data):
    d = os.path.join(HERE, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    rnd = random.Random(17)
    for harness in ("quantize", "decode", "allreduce", "policy_text"):
        d = os.path.join(HERE, "corpus", harness)
        if os.path.isdir(d):
            for f in os.listdir(d):
                os.remove(os.path.join(d, f))

    # --- quantize -------------------------------------------------------------------------
    normal = [rnd.gauss(0.0, 1.0) for _ in range(300)]
    write("quantize", "int4_float_normal", quantize_seed(
        "int4", 128, "fp32", False, False, "float", 2, 150, 0x1B, 1, "finite",
        values("float", normal)))
    write("quantize", "int8_asym_half_skewed", quantize_seed(
        "int8", 64, "fp32", False, True, "half", 1, 100, 0, 2, "finite",
        values("half", [abs(v) * 3 + 1 for v in normal[:100]])))
    write("quantize", "e4m3_pow2_bf16_near_max", quantize_seed(
        "fp8_e4m3", 32, "pow2", False, False, "bf16", 1, 40, 0, 3, "near_max",
        bytes(rnd.randrange(256) for _ in range(40 * 3))))
    write("quantize", "int6_e8m0_half_65504", quantize_seed(
        "int6", 64, "e8m0", False, False, "half", 1, 64, 0, 4, "finite",
        values("half", [65504.0, -65504.0, 65000.0] + normal[:61])))
    write("quantize", "e5m2_sr_float_tiny", quantize_seed(
        "fp8_e5m2", 64, "fp32", True, False, "float", 1, 64, 0, 5, "finite",
        values("float", [v * 2.0**-122 for v in normal[:64]])))
    write("quantize", "int3_pow2_scaled_blocks", quantize_seed(
        "int3", 32, "pow2", False, False, "float", 3, 96, 0x12, 6, "scaled",
        bytes(rnd.randrange(256) for _ in range(400))))
    write("quantize", "int5_asym_range_past_flt_max", quantize_seed(
        "int5", 32, "fp32", False, True, "float", 1, 2, 0, 7, "finite",
        struct.pack("<II", 0xFF61B1E6, 0x7F61B1E6)))
    write("quantize", "fp4_e8m0_raw_nan_inf_zero_tail", quantize_seed(
        "fp4_e2m1", 32, "e8m0", True, False, "half", 2, 77, 0x09, 8, "raw",
        values("half", [float("nan"), 1.0, float("inf")] + [0.0] * 40 + normal[:20])))
    write("quantize", "int2_sr_float_huge", quantize_seed(
        "int2", 256, "pow2", True, False, "float", 1, 20, 0, 9, "near_max",
        bytes(rnd.randrange(256) for _ in range(20 * 5))))

    # invalid arguments (header byte 2 >= 0xF0; layout in fuzz_quantize.cpp's run_invalid):
    # format, block selector, scale, rounding, symmetric, rows, cols, ld
    def invalid_seed(fmt, scale, rnd_, rows_sel, cols_sel, ld_bytes):
        return bytes([0, 0, 0xF0, fmt, 0, scale, rnd_, 1, rows_sel, cols_sel]) + ld_bytes
    ld_eq_cols = bytes([1, 4])
    write("quantize", "invalid_scale_kind_3", invalid_seed(2, 3, 0, 6, 24, ld_eq_cols))
    write("quantize", "invalid_rounding_2", invalid_seed(7, 0, 2, 6, 24, ld_eq_cols))
    write("quantize", "invalid_shape_2pow32_squared", invalid_seed(6, 0, 0, 8, 8, ld_eq_cols))
    write("quantize", "invalid_ld_overflow", invalid_seed(6, 0, 0, 18, 24, bytes([0, 4])))

    # --- decode ---------------------------------------------------------------------------
    def decode_seed(fmt, block, scale, asym, elem, rows, cols, pad, seed, payload):
        return (spec_bytes(fmt, block, scale, False, asym, elem, rows) + struct.pack("<H", cols) +
                bytes([pad]) + struct.pack("<Q", seed) + struct.pack("<f", 0.5) + payload)

    def plain_scale(e, m=0, neg=False):  # selector >= 96: (1 + m/256) 2^e
        return bytes([97 if neg else 96, m]) + struct.pack("<H", e + 160)

    write("decode", "int8_float_max_scale", decode_seed(
        "int8", 32, "fp32", False, "float", 1, 32, 0, 1,
        plain_scale(127, 255) + bytes([0x7F, 0x81] * 16)))
    write("decode", "int2_e8m0_half_overflow", decode_seed(
        "int2", 128, "e8m0", False, "half", 1, 128, 0, 2, bytes([127 + 94]) + bytes([0x55] * 32)))
    write("decode", "e5m2_bf16_inf_codes", decode_seed(
        "fp8_e5m2", 64, "fp32", False, "bf16", 2, 70, 3, 3,
        plain_scale(100) + plain_scale(-140) +
        bytes([0x7B, 0xFB, 0x7C, 0xFC, 0x7D, 0x00, 0x80, 0x01] * 16)))
    write("decode", "int4_asym_float_big_zero", decode_seed(
        "int4", 32, "fp32", True, "float", 1, 32, 0, 4,
        plain_scale(126) + plain_scale(127, 200, True) + bytes([0xF0, 0x0F] * 8)))
    write("decode", "e4m3_pow2_half_nan_scale", decode_seed(
        "fp8_e4m3", 32, "pow2", False, "half", 1, 40, 0, 5,
        bytes([0]) + struct.pack("<I", 0x7FC00000) + plain_scale(3) +
        bytes(rnd.randrange(256) for _ in range(64))))
    write("decode", "fp4_e8m0_float_random", decode_seed(
        "fp4_e2m1", 256, "e8m0", False, "float", 3, 300, 5, 6,
        bytes(rnd.randrange(256) for _ in range(6 + 6 * 128))))

    # --- allreduce ------------------------------------------------------------------------
    ALGOS = ["auto", "two_shot", "one_shot", "ring", "tree"]

    def allreduce_seed(fmt, algo, block, scale, sr, avg, elem, seed, world, count, in_place,
                       chunk_a, chunk_b, mode, payload):
        b0 = FORMATS.index(fmt) + 10 * ALGOS.index(algo)
        b1 = BLOCKS[block] | (SCALES[scale] << 2) | (0x40 if sr else 0) | (0x80 if avg else 0)
        return (bytes([b0, b1, TYPES[elem]]) + struct.pack("<Q", seed) + bytes([world - 1]) +
                struct.pack("<H", count) + bytes([in_place, chunk_a, chunk_b, MODES[mode]]) +
                payload)

    def rand_bytes(n):
        return bytes(rnd.randrange(256) for _ in range(n))

    # chunk selector: 0 = default, 1 + 4k = block x (1 + k), 3 + 4 x 35 = the largest multiple
    write("allreduce", "two_shot_w4_float_chunks", allreduce_seed(
        "int8", "two_shot", 128, "fp32", False, False, "float", 1, 4, 1000, 0, 0, 1 + 4 * 2,
        "finite", values("float", [rnd.gauss(0, 1) for _ in range(4000)])))
    write("allreduce", "ring_w3_half_avg", allreduce_seed(
        "fp8_e4m3", "ring", 64, "pow2", False, True, "half", 2, 3, 333, 1, 1, 0, "finite",
        values("half", [rnd.gauss(0, 100) for _ in range(999)])))
    write("allreduce", "tree_w5_bf16_sr", allreduce_seed(
        "int4", "tree", 32, "e8m0", True, False, "bf16", 3, 5, 257, 0, 0, 0, "scaled",
        rand_bytes(5 * 300)))
    write("allreduce", "one_shot_w2_near_max", allreduce_seed(
        "int6", "one_shot", 256, "fp32", False, False, "half", 4, 2, 600, 0, 0, 5, "near_max",
        rand_bytes(2 * 600 * 3)))
    write("allreduce", "auto_w2_huge_chunk", allreduce_seed(
        "int8", "auto", 32, "fp32", False, False, "float", 5, 2, 1000, 0, 0, 3 + 4 * 35,
        "finite", values("float", [rnd.gauss(0, 1) for _ in range(2000)])))
    write("allreduce", "two_shot_w5_chunk_2pow40", allreduce_seed(
        "fp4_e2m1", "two_shot", 128, "fp32", False, False, "float", 6, 5, 2049, 1, 1, 3 + 4 * 20,
        "finite", values("float", [rnd.gauss(0, 1) for _ in range(5 * 2049)])))

    # --- policy_text ----------------------------------------------------------------------
    texts = [
        (0, "paper"),
        (4, "bf16,rmsnorm_input=int8"),
        (2, "rmsnorm_input=int4/128, attention_core=bf16"),
        (1, "swiglu_input=stage/64/stochastic"),
        (3, "qkv_input=recompute:attn_norm_input,ffn_up_input=recompute"),
        (2, "gemm_input=fp8_e4m3/32/e8m0/sr"),
        (2 + 5 * 9, "out_proj_input = int4 / 64 / asym"),
        (4 + 5 * 12, "int5/256/pow2/rne"),
        (2 + 5 * 3, "attention_qkv_pre_rope"),
    ]
    for i, (b, t) in enumerate(texts):
        write("policy_text", "text%d" % i, bytes([b]) + t.encode())


if __name__ == "__main__":
    main()
