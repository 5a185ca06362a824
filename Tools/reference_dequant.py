#!/usr/bin/env python3
"""Reference dequantization of GGUF tensors, computed with the ``gguf`` package.

Produces

* ``Tests/ModelFilesTests/Resources/smollm2-dequant.json`` -- every tensor of
  the default model: name, ggml type, shape, the sha256 of the whole tensor
  dequantized to float32, and a few exact sample values;
* ``Tests/ModelFilesTests/Resources/synthetic-dequant.json`` -- small
  synthetic tensors (random raw block bytes, fixed seed) for each of the ggml
  types F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K,
  Q6_K, IQ4_NL, IQ4_XS, with their raw bytes and complete dequantized values
  (256 elements, or 4 blocks of 256 for the super-block types);
* ``Tests/ModelFilesTests/Resources/gemma3-dequant.json`` -- the same as the
  first file for the Gemma 3 270M model (``make gemma``), whose tensors are
  F32, Q5_0, Q8_0, Q4_K and Q6_K; every tensor has values.

Why: Nibble reads GGUF files and dequantizes blocks with its own code.  The
``gguf`` package (maintained in the llama.cpp repository) is the reference
reader/dequantizer; the real-model fixture checks tensor discovery, offsets,
shapes and dequantization of the types the model uses (F32, Q4_1, Q8_0), the
synthetic fixture checks every supported block layout bit for bit, including
types the model does not use, without needing any model file, and the Gemma
fixture checks real Q5_0, Q4_K and Q6_K tensors.

Conventions (both files):

* ``shape`` is in GGUF/ggml order: ``[ne0, ne1, ...]`` with ne0 the
  contiguous (fastest varying) dimension -- the reverse of the numpy shape.
  ``token_embd.weight`` is ``[576, 49152]``: 49152 rows of 576.
* Flat element index i runs in ggml memory order (ne0 fastest); the sha256
  is over the dequantized float32 values in that order, little-endian
  (``numpy.astype('<f4').tobytes()``).
* Sample / value floats are the exact float32 values written as the shortest
  decimal that round-trips the (float32-valued) double: parse as Double or
  Float, both give the float32 bit-exactly.
* Arithmetic is gguf's numpy arithmetic, all float32, not fused:
  Q4_0 ``d * (q - 8)``; Q4_1 ``(d * q) + m``; Q5_0 ``d * (q - 16)``;
  Q5_1 ``(d * q) + m``; Q8_0 ``q * d``; d and m are f16 converted to f32.
  K-quants: ``(d * sc) * q - (dmin * m)`` (Q2_K, Q4_K, Q5_K), ``(d * (sc - 32)) * q``
  (Q3_K), ``(d * sc) * (q - 32)`` (Q6_K); IQ4_NL ``d * kvalue``, IQ4_XS
  ``(d * (ls - 32)) * kvalue``: each product and difference rounded to float32.
  (``d*q + m`` rounds twice; an FMA gives a different last bit in rare cases.)

Block layouts (ggml structs, little-endian, 32 elements per block):
block_q4_0 = f16 d, u8 qs[16]; block_q4_1 = f16 d, f16 m, u8 qs[16];
block_q5_0 = f16 d, u8 qh[4], u8 qs[16]; block_q5_1 = f16 d, f16 m, u8 qh[4],
u8 qs[16]; block_q8_0 = f16 d, i8 qs[32].  For the 4/5-bit types element j
(< 16) is the low nibble of qs[j] and element j + 16 the high nibble; for the
5-bit types bit j of the little-endian u32 qh is bit 4 of element j.
Super-blocks of 256 (ggml-common.h): block_q2_K = u8 scales[16], u8 qs[64],
f16 d, f16 dmin; block_q3_K = u8 hmask[32], u8 qs[64], u8 scales[12], f16 d;
block_q4_K = f16 d, f16 dmin, u8 scales[12], u8 qs[128]; block_q5_K = f16 d,
f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]; block_q6_K = u8 ql[128],
u8 qh[64], i8 scales[16], f16 d; block_iq4_xs = f16 d, u16 scales_h,
u8 scales_l[4], u8 qs[128].  block_iq4_nl (32) = f16 d, u8 qs[16].

Usage:  .venv-tools/bin/python Tools/reference_dequant.py
        [--model-out PATH] [--synthetic-out PATH] [--gemma-out PATH]
        (models: $NIBBLE_MODEL, $NIBBLE_GEMMA)
"""

from __future__ import annotations

import argparse
import base64
from collections import Counter

import _common
import gguf
import numpy as np
from gguf import GGMLQuantizationType as T

SYNTHETIC_SEED = 20240611
# New types go at the end: the generator is shared, so the earlier entries keep their bytes.
SYNTHETIC_TYPES = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1,
                   T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.IQ4_NL, T.IQ4_XS]
SYNTHETIC_ELEMENTS = 256  # 8 blocks of 32 for the 32-element block types


def synthetic_elements(qtype: T) -> int:
    """256 elements, or 4 super-blocks for the 256-element types."""
    return max(SYNTHETIC_ELEMENTS, 4 * gguf.GGML_QUANT_SIZES[qtype][0])


# The types Nibble's engine dequantizes; a model fixture must hold only these.
DEQUANT_TYPES = frozenset(SYNTHETIC_TYPES)


def f32(x) -> float:
    """A float32 as the Python float with the same value (exact)."""
    return float(np.float32(x))


def dequantize(raw: np.ndarray, qtype: T) -> np.ndarray:
    """Raw bytes (uint8) -> flat float32 in ggml order, via gguf.quants."""
    values = gguf.quants.dequantize(np.ascontiguousarray(raw).view(np.uint8).reshape(-1), qtype)
    return np.ascontiguousarray(values, dtype=np.float32).reshape(-1)


def le_f32_bytes(values: np.ndarray) -> bytes:
    return values.astype("<f4", copy=False).tobytes()


def sample_indices(n: int) -> list[int]:
    """Deterministic positions: the ends, within the first blocks, and spread out
    (odd offsets so they do not all fall on block starts)."""
    candidates = [0, 1, 17, 33, n // 5 + 3, n // 3 + 7, n // 2 + 11, (2 * n) // 3 + 13, n - 2, n - 1]
    return sorted({i for i in candidates if 0 <= i < n})


# --------------------------------------------------------------------------
# Real model
# --------------------------------------------------------------------------

def model_fixture(path) -> dict:
    reader = gguf.GGUFReader(path)
    tensors = []
    counts: Counter[str] = Counter()
    for t in reader.tensors:
        qtype = T(t.tensor_type)
        shape = [int(x) for x in t.shape]  # gguf reader: ne0 first already
        n = int(np.prod(shape))
        assert qtype in DEQUANT_TYPES, f"{t.name}: {qtype.name} is not a type the engine dequantizes"
        raw = np.asarray(t.data)
        values = dequantize(raw, qtype)
        assert values.size == n == int(t.n_elements), (t.name, values.size, n)
        assert np.all(np.isfinite(values)), t.name
        # Cross-check the first and last two blocks with the scalar transliteration.
        block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
        flat = raw.view(np.uint8).reshape(-1)
        for blk in (0, 1, n // block_size - 2, n // block_size - 1):
            part = flat[blk * type_size:(blk + 1) * type_size]
            want = values[blk * block_size:(blk + 1) * block_size]
            assert scalar_dequant(part, qtype).view(np.uint32).tolist() == want.view(np.uint32).tolist(), t.name
        counts[qtype.name] += 1
        tensors.append({
            "name": t.name,
            "type": qtype.name,
            "shape": shape,
            "count": n,
            "raw_sha256": _common.sha256_bytes(raw.view(np.uint8).tobytes()),
            "sha256": _common.sha256_bytes(le_f32_bytes(values)),
            "samples": [[i, f32(values[i])] for i in sample_indices(n)],
        })
    print(f"{path.name}: {len(tensors)} tensors: {dict(sorted(counts.items()))}")
    notes = [
        "shape: GGUF order [ne0, ne1, ...], ne0 contiguous (reverse of the numpy shape)",
        "sha256: of the dequantized float32 values, little-endian, flat ggml order (ne0 fastest)",
        "raw_sha256: of the tensor's raw (quantized) bytes as stored in the file",
        "samples: [flat index, exact float32 value]",
    ]
    return {
        "model": path.name,
        "sha256": _common.sha256_file(path),
        "gguf_py": _gguf_version(),
        "numpy": np.__version__,
        "notes": notes,
        "type_counts": dict(sorted(counts.items())),
        "tensor_count": len(tensors),
        "tensors": tensors,
    }


# --------------------------------------------------------------------------
# Synthetic blocks
# --------------------------------------------------------------------------

def random_f16_scales(rng: np.random.Generator, n: int) -> np.ndarray:
    """n f16 scale/min values: |x| uniform in [1e-3, 1], random sign, as raw bytes (n, 2)."""
    x = rng.uniform(1e-3, 1.0, n) * rng.choice([-1.0, 1.0], n)
    h = x.astype(np.float16)
    assert np.all(np.isfinite(h)) and np.all(np.abs(h) >= np.float16(6.104e-05))  # normal
    return h.astype("<f2").view(np.uint8).reshape(n, 2)


def random_float_bits(rng: np.random.Generator, bits: int, exp_mask: int, n: int) -> np.ndarray:
    """Random finite bit patterns (exponent not all ones) of a 16/32-bit float,
    including subnormals and huge values (callers overwrite a few with specials)."""
    dtype = {16: np.uint16, 32: np.uint32}[bits]
    v = rng.integers(0, 1 << bits, n, dtype=np.uint64).astype(dtype)
    inf_nan = (v & dtype(exp_mask)) == dtype(exp_mask)
    v[inf_nan] ^= dtype(1 << (bits - 2))  # clear the top exponent bit -> finite
    return v


def synthetic_raw(rng: np.random.Generator, qtype: T) -> np.ndarray:
    n = synthetic_elements(qtype)
    if qtype == T.F32:
        bits = random_float_bits(rng, 32, 0x7F800000, n)
        # fixed specials: +0, -0, 1, -2, smallest subnormal, largest finite
        bits[:6] = np.array([0x00000000, 0x80000000, 0x3F800000, 0xC0000000, 0x00000001, 0x7F7FFFFF], np.uint32)
        bits[6:n // 2] = np.frombuffer(rng.standard_normal(n // 2 - 6).astype("<f4").tobytes(), "<u4")
        return bits.astype("<u4").view(np.uint8)
    if qtype == T.F16:
        bits = random_float_bits(rng, 16, 0x7C00, n)
        bits[:6] = np.array([0x0000, 0x8000, 0x3C00, 0xC000, 0x0001, 0x7BFF], np.uint16)
        return bits.astype("<u2").view(np.uint8)
    if qtype == T.BF16:
        bits = random_float_bits(rng, 16, 0x7F80, n)
        bits[:6] = np.array([0x0000, 0x8000, 0x3F80, 0xC000, 0x0001, 0x7F7F], np.uint16)
        return bits.astype("<u2").view(np.uint8)

    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    nb = n // block_size
    d = random_f16_scales(rng, nb)
    if qtype == T.Q8_0:
        qs = rng.integers(0, 256, (nb, 32), dtype=np.uint8)  # int8 -128..127 (ggml never writes -128; still valid)
        parts = [d, qs]
    elif qtype == T.Q4_0:
        parts = [d, rng.integers(0, 256, (nb, 16), dtype=np.uint8)]
    elif qtype == T.Q4_1:
        parts = [d, random_f16_scales(rng, nb), rng.integers(0, 256, (nb, 16), dtype=np.uint8)]
    elif qtype == T.Q5_0:
        parts = [d, rng.integers(0, 256, (nb, 4), dtype=np.uint8), rng.integers(0, 256, (nb, 16), dtype=np.uint8)]
    elif qtype == T.Q5_1:
        parts = [d, random_f16_scales(rng, nb), rng.integers(0, 256, (nb, 4), dtype=np.uint8),
                 rng.integers(0, 256, (nb, 16), dtype=np.uint8)]
    elif qtype == T.Q2_K:  # scales[16], qs[64], d, dmin
        parts = [u8(rng, nb, 16), u8(rng, nb, 64), d, random_f16_scales(rng, nb)]
    elif qtype == T.Q3_K:  # hmask[32], qs[64], scales[12], d
        parts = [u8(rng, nb, 32), u8(rng, nb, 64), u8(rng, nb, 12), d]
    elif qtype == T.Q4_K:  # d, dmin, scales[12], qs[128]
        parts = [d, random_f16_scales(rng, nb), u8(rng, nb, 12), u8(rng, nb, 128)]
    elif qtype == T.Q5_K:  # d, dmin, scales[12], qh[32], qs[128]
        parts = [d, random_f16_scales(rng, nb), u8(rng, nb, 12), u8(rng, nb, 32), u8(rng, nb, 128)]
    elif qtype == T.Q6_K:  # ql[128], qh[64], scales[16] (int8), d
        parts = [u8(rng, nb, 128), u8(rng, nb, 64), u8(rng, nb, 16), d]
    elif qtype == T.IQ4_NL:  # d, qs[16]
        parts = [d, u8(rng, nb, 16)]
    elif qtype == T.IQ4_XS:  # d, scales_h (u16), scales_l[4], qs[128]
        parts = [d, u8(rng, nb, 2), u8(rng, nb, 4), u8(rng, nb, 128)]
    else:
        raise ValueError(qtype)
    raw = np.concatenate(parts, axis=1)
    assert raw.shape == (nb, type_size), (qtype.name, raw.shape)
    return raw.reshape(-1)


def u8(rng: np.random.Generator, nb: int, n: int) -> np.ndarray:
    """Uniform random bytes, nb rows of n."""
    return rng.integers(0, 256, (nb, n), dtype=np.uint8)


KVALUES_IQ4NL = (-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113)


def scale_min_k4(j: int, q: bytes) -> tuple[int, int]:
    """ggml's get_scale_min_k4: 6-bit scale and min of sub-block j of a Q4_K/Q5_K block."""
    if j < 4:
        return q[j] & 63, q[j + 4] & 63
    return (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4)


def scalar_dequant_k(b: bytes, qtype: T) -> np.ndarray:
    """ggml's dequantize_row_* for the super-block types, element by element in float32."""
    f = np.float32
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    out = np.zeros(len(b) // type_size * block_size, np.float32)

    def h(o: int) -> np.float32:
        return f(np.frombuffer(b[o:o + 2], "<f2")[0])

    for blk in range(len(b) // type_size):
        o = blk * type_size
        y = out[blk * block_size:(blk + 1) * block_size]
        if qtype == T.IQ4_NL:
            d = h(o)
            for j in range(16):
                y[j] = d * f(KVALUES_IQ4NL[b[o + 2 + j] & 0xF])
                y[j + 16] = d * f(KVALUES_IQ4NL[b[o + 2 + j] >> 4])
        elif qtype == T.IQ4_XS:
            d = h(o)
            scales_h = int.from_bytes(b[o + 2:o + 4], "little")
            for ib in range(8):
                ls = ((b[o + 4 + ib // 2] >> (4 * (ib % 2))) & 0xF) | (((scales_h >> (2 * ib)) & 3) << 4)
                dl = d * f(ls - 32)
                qs = b[o + 8 + 16 * ib:o + 24 + 16 * ib]
                for j in range(16):
                    y[32 * ib + j] = dl * f(KVALUES_IQ4NL[qs[j] & 0xF])
                    y[32 * ib + j + 16] = dl * f(KVALUES_IQ4NL[qs[j] >> 4])
        elif qtype == T.Q2_K:
            scales, qs, d, dmin = b[o:o + 16], b[o + 16:o + 80], h(o + 80), h(o + 82)
            i, is_ = 0, 0
            for n in range(2):
                q = qs[32 * n:32 * n + 32]
                for shift in (0, 2, 4, 6):
                    for half in range(2):
                        sc = scales[is_]
                        is_ += 1
                        dl, ml = d * f(sc & 0xF), dmin * f(sc >> 4)
                        for l in range(16):
                            y[i] = dl * f((q[l + 16 * half] >> shift) & 3) - ml
                            i += 1
        elif qtype == T.Q3_K:
            hm, qs, sc_raw, d = b[o:o + 32], b[o + 32:o + 96], b[o + 96:o + 108], h(o + 108)
            scales = []
            for j in range(16):  # 4 low bits from bytes 0..7, 2 high bits from bytes 8..11
                lo = (sc_raw[j % 8] >> (4 * (j // 8))) & 0xF
                hi = (sc_raw[8 + j % 4] >> (2 * (j // 4))) & 3
                scales.append((lo | (hi << 4)) - 32)
            i, is_, m = 0, 0, 1
            for n in range(2):
                q = qs[32 * n:32 * n + 32]
                for shift in (0, 2, 4, 6):
                    for half in range(2):
                        dl = d * f(scales[is_])
                        is_ += 1
                        for l in range(16):
                            e = l + 16 * half
                            y[i] = dl * f(((q[e] >> shift) & 3) - (0 if hm[e] & m else 4))
                            i += 1
                    m <<= 1
        elif qtype in (T.Q4_K, T.Q5_K):
            d, dmin, scales = h(o), h(o + 2), b[o + 4:o + 16]
            qh = b[o + 16:o + 48] if qtype == T.Q5_K else None
            qs = b[o + 48:o + 176] if qtype == T.Q5_K else b[o + 16:o + 144]
            for c in range(4):
                for half in range(2):
                    sc, mn = scale_min_k4(2 * c + half, scales)
                    d1, m1 = d * f(sc), dmin * f(mn)
                    for l in range(32):
                        q = (qs[32 * c + l] >> (4 * half)) & 0xF
                        if qh is not None and qh[l] & (1 << (2 * c + half)):
                            q += 16
                        y[64 * c + 32 * half + l] = d1 * f(q) - m1
        elif qtype == T.Q6_K:
            ql, qh, d = b[o:o + 128], b[o + 128:o + 192], h(o + 208)
            sc = np.frombuffer(b[o + 192:o + 208], np.int8)
            for n in range(2):
                for l in range(32):
                    is_ = 8 * n + l // 16
                    qv = ((ql[64 * n + l] & 0xF) | (((qh[32 * n + l] >> 0) & 3) << 4),
                          (ql[64 * n + l + 32] & 0xF) | (((qh[32 * n + l] >> 2) & 3) << 4),
                          (ql[64 * n + l] >> 4) | (((qh[32 * n + l] >> 4) & 3) << 4),
                          (ql[64 * n + l + 32] >> 4) | (((qh[32 * n + l] >> 6) & 3) << 4))
                    for part in range(4):
                        y[128 * n + 32 * part + l] = d * f(sc[is_ + 2 * part]) * f(qv[part] - 32)
        else:
            raise ValueError(qtype)
    return out


def scalar_dequant(raw: np.ndarray, qtype: T) -> np.ndarray:
    """Element-by-element transliteration of ggml's dequantize_row_* (ggml-quants.c),
    float32 scalar arithmetic; an independent check of gguf.quants on the synthetic data."""
    b = raw.tobytes()
    if qtype == T.F32:
        return np.frombuffer(b, "<f4").astype(np.float32)
    if qtype == T.F16:
        return np.frombuffer(b, "<f2").astype(np.float32)
    if qtype == T.BF16:
        return (np.frombuffer(b, "<u2").astype(np.uint32) << 16).view(np.float32)

    def h(o: int) -> np.float32:  # f16 field at byte offset o
        return np.float32(np.frombuffer(b[o:o + 2], "<f2")[0])

    if qtype in (T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.IQ4_NL, T.IQ4_XS):
        return scalar_dequant_k(b, qtype)
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    out = np.zeros(len(b) // type_size * block_size, np.float32)
    for blk in range(len(b) // type_size):
        o = blk * type_size
        y = out[blk * 32:(blk + 1) * 32]
        if qtype == T.Q8_0:
            d = h(o)
            for j in range(32):
                y[j] = np.float32(np.int8(np.uint8(b[o + 2 + j]).view(np.int8))) * d
            continue
        d = h(o)
        m = h(o + 2) if qtype in (T.Q4_1, T.Q5_1) else None
        if qtype in (T.Q5_0, T.Q5_1):
            qh_off = o + (4 if m is not None else 2)
            qh = int.from_bytes(b[qh_off:qh_off + 4], "little")
            qs = b[qh_off + 4:qh_off + 20]
        else:
            qh = 0
            qs = b[o + (4 if m is not None else 2):o + type_size]
        for j in range(16):
            x0, x1 = qs[j] & 0x0F, qs[j] >> 4
            if qtype in (T.Q5_0, T.Q5_1):
                x0 |= ((qh >> j) & 1) << 4
                x1 |= ((qh >> (j + 16)) & 1) << 4
            if qtype == T.Q4_0:
                x0, x1 = x0 - 8, x1 - 8
            elif qtype == T.Q5_0:
                x0, x1 = x0 - 16, x1 - 16
            if m is None:
                y[j], y[j + 16] = np.float32(x0) * d, np.float32(x1) * d
            else:
                y[j], y[j + 16] = np.float32(x0) * d + m, np.float32(x1) * d + m
    return out


def synthetic_fixture() -> dict:
    rng = np.random.default_rng(SYNTHETIC_SEED)
    entries = []
    for qtype in SYNTHETIC_TYPES:
        raw = synthetic_raw(rng, qtype)
        values = dequantize(raw, qtype)
        assert values.size == synthetic_elements(qtype) and np.all(np.isfinite(values)), qtype.name
        check = scalar_dequant(raw, qtype)
        assert check.view(np.uint32).tolist() == values.view(np.uint32).tolist(), qtype.name
        block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
        assert raw.size == synthetic_elements(qtype) // block_size * type_size
        entries.append({
            "type": qtype.name,
            "ggml_type": int(qtype),
            "block_size": block_size,
            "type_size": type_size,
            "count": synthetic_elements(qtype),
            "bytes_base64": base64.b64encode(raw.tobytes()).decode("ascii"),
            "sha256": _common.sha256_bytes(le_f32_bytes(values)),
            "values": [f32(v) for v in values],
        })
        print(f"{qtype.name:5} {raw.size:4} bytes -> {values.size} values, "
              f"range [{values.min():.4g}, {values.max():.4g}]")
    return {
        "generator": "Tools/reference_dequant.py",
        "seed": SYNTHETIC_SEED,
        "gguf_py": _gguf_version(),
        "numpy": np.__version__,
        "notes": [
            "bytes_base64: raw ggml block bytes (little-endian) of `count` elements",
            "values: gguf.quants.dequantize result, exact float32 values, flat order",
            "sha256: of the values as little-endian float32 bytes",
            "f16 d/m fields: |x| uniform in [1e-3, 1] with random sign; quant bytes uniform random",
            "F32/F16/BF16: 6 fixed specials (+0, -0, 1, -2, smallest subnormal, largest finite), then random finite bit patterns (F32: half standard normal)",
        ],
        "entries": entries,
    }


def _gguf_version() -> str:
    from importlib.metadata import version
    return version("gguf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-out", default=_common.output_path(
        "Tests/ModelFilesTests/Resources/smollm2-dequant.json"))
    parser.add_argument("--synthetic-out", default=_common.output_path(
        "Tests/ModelFilesTests/Resources/synthetic-dequant.json"))
    parser.add_argument("--gemma-out", default=_common.output_path(
        "Tests/ModelFilesTests/Resources/gemma3-dequant.json"))
    args = parser.parse_args()

    _common.write_json(args.synthetic_out, synthetic_fixture())
    _common.write_json(args.model_out, model_fixture(_common.model_path()))
    _common.write_json(args.gemma_out, model_fixture(_common.gemma_path()))


if __name__ == "__main__":
    main()
