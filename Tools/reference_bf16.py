#!/usr/bin/env python3
"""A bfloat16 safetensors variant of a tiny reference model, with transformers' float32
logits of that bf16 checkpoint.

For ``Tests/InferenceTests/Resources/tiny-models/<family>/`` (default: llama) it writes
``bf16.json``:

* the base is the committed float32 model (``config.json`` + ``binaries.json``'s
  ``model.safetensors``); ``model.to(torch.bfloat16).save_pretrained(dir)`` writes the
  bf16 checkpoint (round to nearest even); ``config`` is that folder's ``config.json``
  (the parsed object: the float32 one with ``"dtype": "bfloat16"``), ``safetensors`` its
  ``model.safetensors`` as ``header`` (verbatim) and ``data`` (base64 of the data
  section), as in ``binaries.json``;
* the reference loads that folder with ``from_pretrained(dtype=torch.float32,
  attn_implementation="eager")``, so every weight is the bf16 value widened exactly to
  float32 (checked against ``float32 -> bfloat16 -> float32`` of the original weights),
  and computes in float32: ``prompt_ids`` = ``reference.json``'s ``tokens``; ``logits`` at
  every position, each value the shortest decimal that parses back to the exact float32
  (``logits_sha256``: sha256 of the float32 little-endian bytes, position-major);
  ``max_abs_diff_vs_f32``: max |these - reference.json's float32 logits|; ``greedy_ids``
  (16, as ``reference_families.greedy``: argmax recomputed each step, cross-checked with
  ``generate``) and ``greedy_margins``.

Usage: .venv-tools/bin/python Tools/reference_bf16.py [--family llama]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import tempfile
from pathlib import Path

import reference_families as rf  # noqa: E402  (imports _common: offline hub)
import _common  # noqa: E402
import pack_tiny_models  # noqa: E402
from reference_adapters import TINY, load_base, short_f32, unpack_base  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402


def run(family: str) -> None:
    src = TINY / family
    reference = json.loads((src / "reference.json").read_text())
    tokens, vocab = reference["tokens"], reference["vocab_size"]
    f32_logits = np.frombuffer(base64.b64decode(reference["logits_f32_le_base64"]), dtype="<f4").reshape(-1, vocab)
    with tempfile.TemporaryDirectory(prefix="nibble-bf16-") as tmp:
        base_dir, bf16_dir = Path(tmp) / "f32", Path(tmp) / "bf16"
        base_dir.mkdir()
        unpack_base(family, base_dir)
        base = load_base(family, base_dir)
        base.to(torch.bfloat16).save_pretrained(bf16_dir)
        config = json.loads((bf16_dir / "config.json").read_text())
        assert config.get("dtype") == "bfloat16", config.get("dtype")
        packed = pack_tiny_models.safetensors_as_data(bf16_dir / "model.safetensors")
        assert '"BF16"' in packed["header"] and '"F32"' not in packed["header"], packed["header"][:200]

        model = load_base(family, bf16_dir)
        original = load_base(family, base_dir).state_dict()
        for name, p in model.state_dict().items():
            assert p.dtype == torch.float32, (name, p.dtype)
            assert torch.equal(p, original[name].to(torch.bfloat16).to(torch.float32)), name
        logits = rf.all_logits(model, tokens).astype("<f4")
        greedy_ids, margins = rf.greedy(model, tokens, rf.N_GREEDY)
    diff = float(np.abs(logits - f32_logits).max())
    print(f"{family} bf16: max |bf16 - f32 logits| {diff:.3g}; greedy {greedy_ids} (f32 {reference['greedy_ids']})")
    assert 0 < diff
    _common.write_json(src / "bf16.json", {
        "generator": "Tools/reference_bf16.py",
        "family": family,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__},
        "made_by": "the float32 model (config.json + binaries.json) .to(torch.bfloat16).save_pretrained(); loaded "
                   "back with from_pretrained(dtype=float32, attn_implementation='eager'), computed in float32",
        "config": config,
        "safetensors": packed,
        "prompt_ids": tokens,
        "n_tokens": len(tokens),
        "vocab_size": vocab,
        "logits_sha256": hashlib.sha256(logits.tobytes()).hexdigest(),
        "logits": [[short_f32(x) for x in row] for row in logits],
        "max_abs_diff_vs_f32": diff,
        "greedy_ids": greedy_ids,
        "greedy_margins": margins,
        "f32_greedy_ids": reference["greedy_ids"],
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", default="llama")
    parser.add_argument("--llama-cpp", help="llama.cpp folder (read by reference_families at import)")
    run(parser.parse_args().family)


if __name__ == "__main__":
    main()
