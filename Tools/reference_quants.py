#!/usr/bin/env python3
"""Reference weight quantisation for Nibble's packed formats (q8, q4, nf4).

Produces ``Tests/QuantizationTests/Resources/reference-quants.json``:

* ``ggml`` -- f32 inputs and the bytes ``gguf.quants.quantize`` makes of them as
  ``Q8_0`` and ``Q4_1``.  gguf-py's quantisers are the numpy transliterations of
  ggml's ``quantize_row_q8_0_ref`` / ``quantize_row_q4_1_ref`` (float32
  arithmetic; ``roundf`` for Q8_0, truncation of ``x + 0.5`` for Q4_1; f16 by
  round-to-nearest-even).  Nibble's ``nb_pack(NB_FMT_Q8 / NB_FMT_Q4)`` must give
  the same bytes.  Cases: llama.cpp's synthetic test data (``0.1 + 2 cos(i +
  offset)``, test-quantize-fns.cpp), normal data with row scales from 1e-4 to
  1e3, and edge blocks (zeros, constants, exact .5 ties, only negative values,
  values near the f16 limits, f16-subnormal scales, one outlier).
* ``nf4`` -- one matrix (16 × 1088, normal data with row scales, so that the
  second-level absmax quantisation has two blocks of 256) through
  ``bitsandbytes.functional.quantize_4bit(A, blocksize=64,
  compress_statistics=True, quant_type="nf4")`` on the CPU, and
  ``dequantize_4bit`` of the result.  Recorded: bitsandbytes' packed codes
  (element 2i in the high nibble of byte i, element 2i+1 in the low nibble),
  the 8-bit absmax codes, the second-level scales (``state2.absmax``), the
  offset (mean absmax), the dequantised matrix, the NF4 code values and the
  dynamic map (``create_dynamic_map(signed=True)``).

The Swift test packs the nf4 matrix with ``nb_pack_nf4(..., NB_NF4_ABSMAX)``,
bitsandbytes' own choice of scales; the engine's ``NB_NF4_SEARCH`` stores the
same layout with the same second-level statistics but searches each block's
absmax code and 4-bit codes for a lower error, so its codes differ.

Known differences Nibble's nf4 packer has from bitsandbytes' CPU path (the
Swift test allows exactly these): the offset is the mean computed in double
(torch sums the float32 absmax values in float32 in a CPU-dependent order, so
the two can differ in the last bit), and each absmax is mapped to the truly
nearest dynamic-map entry (bitsandbytes' CPU ``quantize_block`` uses an
approximate binary search that picks the second nearest entry for about 0.2%
of values).  The 4-bit codes themselves are identical.

Bulk data (inputs, bytes, dequantised values) is base64; f32 data is
little-endian float32.  Floats in lists are float32 values written as the
shortest decimal that round-trips.

Usage:  .venv-tools/bin/python Tools/reference_quants.py [--out PATH]
        (needs gguf, numpy, torch and bitsandbytes==0.50.2 in .venv-tools)
"""

from __future__ import annotations

import argparse
import base64

import _common
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

SEED = 20260611


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def f32_list(values) -> list[float]:
    return [float(np.float32(v)) for v in np.asarray(values, dtype=np.float32).reshape(-1)]


def synthetic(n: int, offset: float) -> np.ndarray:
    """llama.cpp's generate_data: 0.1 + 2*cosf(i + offset), in float32."""
    i = np.arange(n, dtype=np.float32)
    return (np.float32(0.1) + np.float32(2) * np.cos(i + np.float32(offset))).astype(np.float32)


def edge_blocks() -> np.ndarray:
    """Blocks of 32 that exercise rounding and range corners."""
    blocks = []
    blocks.append(np.zeros(32, np.float32))                              # all zero
    blocks.append(np.full(32, 1.5, np.float32))                          # constant
    blocks.append(np.full(32, -0.25, np.float32))                        # constant, negative
    # Q8_0 ties: amax 127 → d = 1, id = 1: x.5 values round away from zero.
    b = np.array([127.0] + [k + 0.5 for k in range(-15, 16)], np.float32)
    blocks.append(b)
    # Q4_1 ties: min 0, max 15 → d = 1: (x - min)·1 + 0.5 exactly at integers.
    b = np.array([0.0, 15.0] + [k * 0.5 for k in range(30)], np.float32)
    blocks.append(b)
    blocks.append(-np.abs(np.linspace(0.1, 3.3, 32, dtype=np.float32)))  # only negative
    blocks.append(np.linspace(-65000, 65000, 32, dtype=np.float32))      # near the f16 limit
    blocks.append(np.linspace(-3e-6, 2e-6, 32, dtype=np.float32))        # f16-subnormal d
    b = np.full(32, 0.01, np.float32); b[7] = 40.0                       # one outlier
    blocks.append(b)
    b = np.linspace(-1, 1, 32, dtype=np.float32); b[::3] *= -1            # mixed signs
    blocks.append(b)
    return np.concatenate(blocks).reshape(1, -1)


def ggml_cases() -> list[dict]:
    rng = np.random.default_rng(SEED)
    gaussian = rng.standard_normal((8, 576)).astype(np.float32)
    gaussian *= np.logspace(-4, 3, 8, dtype=np.float32).reshape(8, 1)
    inputs = [
        ("synthetic", synthetic(4096, 0.0).reshape(4, 1024)),
        ("synthetic-offset", synthetic(4096, 1.5).reshape(4, 1024)),
        ("gaussian", gaussian),
        ("edges", edge_blocks()),
    ]
    cases = []
    for name, x in inputs:
        case = {"name": name, "rows": int(x.shape[0]), "k": int(x.shape[1]), "input_f32": b64(x.astype("<f4"))}
        for qtype, key in ((T.Q8_0, "q8_0"), (T.Q4_1, "q4_1")):
            packed = quants.quantize(x, qtype)
            case[key] = b64(packed)
        cases.append(case)
    return cases


def nf4_case() -> dict:
    import torch
    import bitsandbytes.functional as F

    rng = np.random.default_rng(SEED + 1)
    rows, k = 16, 1088
    x = rng.standard_normal((rows, k)).astype(np.float32)
    x *= np.logspace(-2, 1, rows, dtype=np.float32).reshape(rows, 1)
    x[3, 64:128] = 0  # one all-zero block
    A = torch.from_numpy(x)
    q, state = F.quantize_4bit(A, blocksize=64, compress_statistics=True, quant_type="nf4")
    dq = F.dequantize_4bit(q, state).numpy().astype("<f4")
    assert state.nested and state.state2.blocksize == 256
    return {
        "rows": rows,
        "k": k,
        "input_f32": b64(x.astype("<f4")),
        "codes_bnb_packed": b64(q.numpy().reshape(-1)),
        "absmax_codes": b64(state.absmax.numpy().astype(np.uint8)),
        "absmax_scales": f32_list(state.state2.absmax.numpy()),
        "offset": float(np.float32(state.offset.item())),
        "dequantized_f32": b64(dq),
        "nf4_values": f32_list(F.get_4bit_type("nf4", device="cpu").numpy()),
        "dynamic_map": f32_list(state.state2.code.numpy()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=_common.output_path("Tests/QuantizationTests/Resources/reference-quants.json"))
    args = parser.parse_args()
    from importlib.metadata import version

    fixture = {
        "generator": "Tools/reference_quants.py",
        "versions": {name: version(name) for name in ("gguf", "numpy", "torch", "bitsandbytes")},
        "ggml": ggml_cases(),
        "nf4": nf4_case(),
    }
    _common.write_json(args.out, fixture)


if __name__ == "__main__":
    main()
