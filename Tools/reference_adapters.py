#!/usr/bin/env python3
"""Tiny PEFT LoRA adapters for the seven tiny reference models, their adapted logits
(transformers + peft, float32), and the same adapters converted to GGUF by llama.cpp.

For each family in ``Tests/InferenceTests/Resources/tiny-models/<family>/`` (llama,
mistral, qwen2, qwen3, gemma3, phi3, gpt2) it writes ``adapter.json``:

* the base model is the committed one: ``config.json`` plus ``model.safetensors``
  unpacked from ``binaries.json`` into a temporary folder, loaded with
  ``from_pretrained(dtype=float32, attn_implementation="eager")``; its logits must equal
  ``reference.json``'s (checked, max |diff| printed);
* a PEFT ``LoraConfig`` (``ADAPTERS`` below: r, lora_alpha, target modules, use_rslora,
  fan_in_fan_out for GPT-2's Conv1D; bias "none", dropout 0) applied with
  ``get_peft_model``; then every ``lora_A`` and ``lora_B`` is overwritten, in sorted
  parameter-name order, with ``normal(0, LORA_STD)`` from ``torch.Generator`` seeded with
  ``SEED`` (PEFT starts B at zero, which would test nothing);
* ``save_pretrained`` gives ``adapter_config.json`` (``adapter_config`` in the fixture,
  the parsed JSON object; ``base_model_name_or_path`` is set to ``tiny-models/<family>``,
  and ``target_modules``, a set in PEFT, is written sorted)
  and ``adapter_model.safetensors`` (``peft_safetensors``: ``header`` = the file's JSON
  header verbatim, ``data`` = base64 of the data section, as in ``binaries.json``);
  the folder is loaded back with ``PeftModel.from_pretrained`` on a fresh base and must
  give the same logits;
* ``scale``: what PEFT multiplies B·A·x by: lora_alpha / r, or lora_alpha / sqrt(r) with
  ``use_rslora``;
* ``prompt_ids``: ``reference.json``'s ``tokens`` (40 ids, no BOS); ``logits``: the
  adapted model's float32 logits at every position, one row per position, each value the
  shortest decimal that parses back to the exact float32 (``logits_sha256``: sha256 of the
  [40][vocab] float32 little-endian bytes); ``max_abs_diff_vs_base``: max |adapted -
  reference.json's logits|; ``greedy_ids``: 16 greedy tokens computed as
  ``reference_families.greedy`` does (argmax recomputed on the whole sequence each step,
  cross-checked against ``generate(do_sample=False)``, no stop), with ``greedy_margins``;
* ``gguf``: the adapter converted by llama.cpp's ``convert_lora_to_gguf.py --base <the
  unpacked folder> --outtype f32`` (from the ``llama-cpp-python==0.3.36`` sdist of
  ``make vocab``), in ``pack_tiny_models.gguf_as_data``'s format, or null with
  ``gguf_refused``: why.  ``gguf_check`` compares every GGUF tensor with the PEFT one:
  ``.lora_a`` ([r, in] row-major, GGUF shape [in, r]) must equal PEFT's lora_A and
  ``.lora_b`` ([out, r], GGUF shape [r, out]) PEFT's lora_B, except that the converter
  applies the base model's own tensor transformations to the LoRA pair: for the llama
  arch (llama, mistral) it permutes the rows of q and k B the way it permutes
  ``q_proj``/``k_proj`` (``gguf_qk_permuted``), and for GPT-2 it transposes the pair
  (see ``gguf_refused``).  The GGUF stores ``adapter.lora.alpha`` and nothing about
  rsLoRA, so llama.cpp's scale is alpha / r (``gguf_scale``); where that differs from
  PEFT's (qwen2, rsLoRA) ``gguf_semantics`` gives the last-position logits and greedy ids
  that the GGUF's scale gives (PEFT's model with the scale replaced).

Usage: .venv-tools/bin/python Tools/reference_adapters.py [--families llama,qwen2,...]
       [--llama-cpp DIR]   (~1 min for all seven families)
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

# reference_families puts the vendored llama.cpp (converter and its gguf-py) first on
# sys.path, so `gguf` below is that gguf-py, as for the model GGUFs.
import reference_families as rf  # noqa: E402  (imports _common: offline hub)
import _common  # noqa: E402
import pack_tiny_models  # noqa: E402

import gguf  # noqa: E402
import numpy as np  # noqa: E402
import peft  # noqa: E402
import safetensors  # noqa: E402
import safetensors.torch  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402

SEED = 20251205
LORA_STD = 0.15
TINY = _common.REPO_ROOT / "Tests/InferenceTests/Resources/tiny-models"

LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# family -> (r, lora_alpha, use_rslora, target_modules, fan_in_fan_out)
ADAPTERS: dict[str, tuple[int, float, bool, list[str], bool]] = {
    "llama": (4, 8, False, LLAMA_TARGETS, False),
    "mistral": (8, 12, False, LLAMA_TARGETS, False),
    "qwen2": (4, 8, True, LLAMA_TARGETS, False),
    "qwen3": (4, 8, False, LLAMA_TARGETS, False),
    "gemma3": (4, 8, False, LLAMA_TARGETS, False),
    "phi3": (4, 8, False, ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"], False),
    "gpt2": (4, 8, False, ["c_attn", "c_proj", "c_fc"], True),
}
GGUF_ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3",
             "gemma3": "gemma3", "phi3": "phi3", "gpt2": "gpt2"}


def short_f32(x: float) -> float:
    """The shortest decimal that gives back this float32, as a Python float."""
    return float(str(np.float32(x)))


def unpack_base(family: str, dest: Path) -> None:
    """config.json + model.safetensors (from binaries.json) into dest."""
    src = TINY / family
    for name in ("config.json", "generation_config.json"):
        shutil.copy(src / name, dest / name)
    pack = json.loads((src / "binaries.json").read_text())
    header = pack["safetensors"]["header"].encode("utf-8")
    (dest / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header
                                              + base64.b64decode(pack["safetensors"]["data"]))


def load_base(family: str, folder: Path):
    cls = getattr(transformers, rf.FAMILIES[family].hf_class)
    return cls.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()


def lora_modules(model):
    return [m for m in model.modules() if isinstance(m, peft.tuners.lora.LoraLayer)]


def convert_lora(base: Path, adapter: Path, out: Path) -> tuple[bool, str]:
    cmd = [sys.executable, str(rf.LLAMACPP / "convert_lora_to_gguf.py"), "--base", str(base),
           "--outtype", "f32", "--outfile", str(out), str(adapter)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    text = (proc.stdout + proc.stderr).strip()
    return proc.returncode == 0 and out.is_file(), text


def llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf's LlamaModel.permute (rows of q/k, per head: halves -> pairs)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def check_gguf(family: str, path: Path, peft_tensors: dict[str, np.ndarray], config: dict) -> dict:
    reader = gguf.GGUFReader(path)
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    assert fields.get("general.type") == "adapter", fields.get("general.type")
    assert fields.get("adapter.type") == "lora", fields.get("adapter.type")
    arrays = {t.name: np.array(t.data, dtype=np.float32).reshape([int(s) for s in reversed(t.shape)])
              for t in reader.tensors}
    n_layer = config.get("num_hidden_layers") or config.get("n_layer")
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH[GGUF_ARCH[family].upper()], n_layer)
    n_head = config.get("num_attention_heads") or config.get("n_head")
    n_head_kv = config.get("num_key_value_heads") or n_head
    relation: dict[str, str] = {}
    qk_permuted: list[bool] = []
    seen = set()
    for name in sorted(peft_tensors):
        if ".lora_A." not in name:
            continue
        module = name.replace("base_model.model.", "").replace(".lora_A.weight", "")
        a, b = peft_tensors[name], peft_tensors[name.replace(".lora_A.", ".lora_B.")]
        gname = tmap.get_name(module + ".weight", try_suffixes=(".weight",))
        assert gname, module
        ga, gb = arrays[gname + ".lora_a"], arrays[gname + ".lora_b"]
        seen.update((gname + ".lora_a", gname + ".lora_b"))
        if np.array_equal(ga, a) and np.array_equal(gb, b):
            rel = "equal"
        elif np.array_equal(ga, a) and module.endswith(("q_proj", "k_proj")) and GGUF_ARCH[family] == "llama" and \
                np.array_equal(gb, llama_permute(b, n_head if module.endswith("q_proj") else n_head_kv)):
            rel = "b_rows_permuted"
        elif ga.shape == b.T.shape and np.array_equal(ga, b.T) and np.array_equal(gb, a.T):
            rel = "swapped_transposed"  # lora_a = B^T, lora_b = A^T
        else:
            rel = "different"
        relation[f"{module} -> {gname}"] = rel
        if module.endswith(("q_proj", "k_proj")):
            qk_permuted.append(rel == "b_rows_permuted")
    assert seen == set(arrays), set(arrays) ^ seen
    return {"alpha": float(fields["adapter.lora.alpha"]), "general.type": fields["general.type"],
            "tensors": len(arrays), "relation": relation,
            # true: every q and k lora_b is row-permuted; false: none is; null: some are
            "qk_permuted": bool(qk_permuted) and all(qk_permuted) if all(qk_permuted) or not any(qk_permuted) else None}


def run(family: str, work: Path) -> None:
    print(f"== {family}")
    src = TINY / family
    reference = json.loads((src / "reference.json").read_text())
    tokens = reference["tokens"]
    vocab = reference["vocab_size"]
    base_logits = np.frombuffer(base64.b64decode(reference["logits_f32_le_base64"]), dtype="<f4").reshape(-1, vocab)
    base_dir = work / family / "base"
    base_dir.mkdir(parents=True)
    unpack_base(family, base_dir)
    config = json.loads((base_dir / "config.json").read_text())

    base = load_base(family, base_dir)
    check = rf.all_logits(base, tokens)
    base_check = float(np.abs(check - base_logits).max())
    print(f"base from binaries.json vs reference.json logits: max |diff| {base_check:.3g}")
    assert base_check < 1e-5, base_check

    r, alpha, rslora, targets, fifo = ADAPTERS[family]
    lcfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0, bias="none",
                      use_rslora=rslora, fan_in_fan_out=fifo, task_type="CAUSAL_LM")
    model = get_peft_model(base, lcfg)
    model.peft_config["default"].base_model_name_or_path = f"tiny-models/{family}"
    gen = torch.Generator().manual_seed(SEED)
    n_lora = 0
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if ".lora_A." in name or ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=gen) * LORA_STD)
                n_lora += 1
    model.eval()
    scale = alpha / math.sqrt(r) if rslora else alpha / r
    scalings = {m.scaling["default"] for m in lora_modules(model)}
    assert scalings == {scale}, (scalings, scale)

    adapter_dir = work / family / "adapter"
    model.save_pretrained(adapter_dir)
    assert sorted(os.listdir(adapter_dir)) == ["README.md", "adapter_config.json", "adapter_model.safetensors"], \
        os.listdir(adapter_dir)
    (adapter_dir / "README.md").unlink()  # PEFT's model card template: not part of the adapter
    adapter_config = json.loads((adapter_dir / "adapter_config.json").read_text())
    # PEFT keeps target_modules as a set, so its order in the file follows the string hash
    # (PYTHONHASHSEED): sorted here, in the file too, for a deterministic fixture.
    adapter_config["target_modules"] = sorted(adapter_config["target_modules"])
    (adapter_dir / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2, sort_keys=True) + "\n")
    raw = (adapter_dir / "adapter_model.safetensors").read_bytes()
    peft_tensors = {k: v.numpy() for k, v in safetensors.torch.load(raw).items()}
    assert len(peft_tensors) == n_lora, (len(peft_tensors), n_lora)

    logits = rf.all_logits(model, tokens).astype("<f4")
    greedy_ids, margins = rf.greedy(model, tokens, rf.N_GREEDY)
    diff = float(np.abs(logits - base_logits).max())

    # The saved folder, loaded back on a fresh base, gives the same logits.
    reloaded = PeftModel.from_pretrained(load_base(family, base_dir), adapter_dir).eval()
    reload_diff = float(np.abs(rf.all_logits(reloaded, tokens) - logits).max())
    assert reload_diff == 0.0, reload_diff
    print(f"r={r} alpha={alpha} rslora={rslora} scale={scale:.4g}: max |adapted - base| {diff:.3g}; "
          f"greedy {greedy_ids} (base {reference['greedy_ids']})")
    assert diff > 0.5, f"{family}: the adapter barely changes the logits ({diff})"

    out: dict = {
        "generator": "Tools/reference_adapters.py",
        "family": family,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                     "safetensors": safetensors.__version__, "numpy": np.__version__,
                     "converter": "llama.cpp convert_lora_to_gguf.py from llama-cpp-python 0.3.36 "
                                  "(vendor/llama.cpp), --outtype f32"},
        "seed": SEED,
        "init": f"torch.Generator().manual_seed({SEED}); every lora_A and lora_B in sorted parameter-name "
                f"order: normal(0, {LORA_STD})",
        "base": "tiny-models/" + family + " (config.json + binaries.json's model.safetensors), float32, eager",
        "adapter_config": adapter_config,
        "r": r, "lora_alpha": alpha, "use_rslora": rslora, "target_modules": targets,
        "scale": scale,
        "scale_rule": "lora_alpha / sqrt(r) (use_rslora)" if rslora else "lora_alpha / r",
        "peft_safetensors": pack_tiny_models.safetensors_as_data(adapter_dir / "adapter_model.safetensors"),
    }

    gguf_path = work / family / f"{family}-lora.gguf"
    ok, text = convert_lora(base_dir, adapter_dir, gguf_path)
    gguf_extra: dict = {}
    if not ok:
        print(f"converter refused: {text.splitlines()[-1] if text else ''}")
        out["gguf"] = None
        out["gguf_refused"] = text.splitlines()[-1] if text else "convert_lora_to_gguf.py failed"
    else:
        chk = check_gguf(family, gguf_path, peft_tensors, config)
        rels = set(chk["relation"].values())
        print(f"GGUF: alpha {chk['alpha']}, {chk['tensors']} tensors, relations {sorted(rels)}")
        assert chk["alpha"] == alpha
        assert "different" not in rels, chk["relation"]
        if "swapped_transposed" in rels:
            # GPT-2: convert_hf_to_gguf transposes the Conv1D weights c_attn/c_proj/c_fc ([in, out] in
            # transformers) to [out, in]; the LoRA converter applies that transpose to the LoRA pair, whose
            # product B·A is already [out, in] (PEFT's fan_in_fan_out only transposes when merging).
            out["gguf"] = None
            out["gguf_refused"] = (
                "not refused by convert_lora_to_gguf.py, but its output is wrong: it transposes the LoRA pair of "
                "GPT-2's Conv1D modules as it transposes their base weights, writing lora_a = B^T ([out, r]) and "
                "lora_b = A^T ([r, in]), so B'·A' = (B·A)^T; c_attn and c_fc no longer fit the model's tensors, and "
                "llama.cpp's loader (llama-adapter.cpp) throws \"tensor 'blk.0.attn_qkv.weight' has incorrect shape "
                "(hint: maybe wrong base model?)\"; the square attn c_proj would load with its delta transposed. "
                "gguf_converter_output holds the file as the converter wrote it")
            out["gguf_converter_output"] = pack_tiny_models.gguf_as_data(gguf_path)
        else:
            out["gguf"] = pack_tiny_models.gguf_as_data(gguf_path)
        gguf_scale = chk["alpha"] / r
        gguf_extra = {
            "gguf_alpha": chk["alpha"],
            "gguf_scale": gguf_scale,
            "gguf_qk_permuted": chk["qk_permuted"],
            "gguf_check": {"general.type": chk["general.type"], "tensors": chk["tensors"],
                           "rule": "equal: lora_a == PEFT lora_A ([r, in]) and lora_b == PEFT lora_B ([out, r]); "
                                   "b_rows_permuted: lora_b == LlamaModel.permute(lora_B, n_head or n_head_kv); "
                                   "swapped_transposed: lora_a == lora_B^T, lora_b == lora_A^T",
                           "relation": chk["relation"]},
        }
        if not math.isclose(gguf_scale, scale):
            gguf_extra["gguf_scale_note"] = (
                f"the converter writes adapter.lora.alpha = {chk['alpha']} and ignores use_rslora; llama.cpp scales "
                f"by alpha / r = {gguf_scale:.6g}, PEFT by {scale:.6g}")
            for m in lora_modules(model):
                m.scaling["default"] = gguf_scale
            g_logits = rf.all_logits(model, tokens).astype("<f4")
            g_greedy, _ = rf.greedy(model, tokens, rf.N_GREEDY)
            for m in lora_modules(model):
                m.scaling["default"] = scale
            gguf_extra["gguf_semantics"] = {
                "scale": gguf_scale,
                "logits_last": [short_f32(x) for x in g_logits[-1]],
                "greedy_ids": g_greedy,
                "max_abs_diff_vs_peft": float(np.abs(g_logits - logits).max()),
            }
    out.update(gguf_extra)
    out.update({
        "prompt_ids": tokens,
        "n_tokens": len(tokens),
        "vocab_size": vocab,
        "logits_sha256": hashlib.sha256(logits.tobytes()).hexdigest(),
        "logits": [[short_f32(x) for x in row] for row in logits],
        "max_abs_diff_vs_base": diff,
        "base_check_max_abs_diff": base_check,
        "greedy_ids": greedy_ids,
        "greedy_margins": margins,
        "base_greedy_ids": reference["greedy_ids"],
    })
    _common.write_json(src / "adapter.json", out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", default=",".join(ADAPTERS))
    parser.add_argument("--llama-cpp", help="llama.cpp folder (read by reference_families at import)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(prefix="nibble-adapters-") as tmp:
        for family in args.families.split(","):
            run(family, Path(tmp))


if __name__ == "__main__":
    main()
