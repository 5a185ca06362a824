#!/usr/bin/env python3
"""Writes SmolLM2-135M-Instruct as a Hugging Face folder, from its GGUF, without torch
or transformers; with ``--verify``, checks it against transformers and writes the
greedy fixture ``Tests/InferenceTests/Resources/smollm2-hf-greedy.json``.

Why: Nibble also loads Hugging Face folders (config.json + model.safetensors +
tokenizer.json).  The tests need a real one, and CI must be able to build it from the
GGUF that ``make model`` downloads, with nothing but ``gguf``, ``numpy`` and
``tokenizers`` (``Tools/requirements-hf-folder.txt``): ``make smollm2-hf`` (bf16, in
``~/.cache/nibble/models/SmolLM2-135M-Instruct-bf16/``) and ``make smollm2-hf-f32``
(``...-f32/``).

What it writes (``--out DIR``, atomically: a temporary folder renamed at the end):

* ``model.safetensors``: every GGUF tensor dequantized to float32 by gguf-py
  (``gguf.quants.dequantize``: Q4_1, Q8_0, F32), renamed to the transformers Llama
  names (``token_embd`` -> ``model.embed_tokens``, ``blk.N.attn_norm`` ->
  ``model.layers.N.input_layernorm``, ``ffn_norm`` -> ``post_attention_layernorm``,
  ``attn_q/k/v/output`` -> ``self_attn.q_proj/k_proj/v_proj/o_proj``,
  ``ffn_gate/up/down`` -> ``mlp.gate_proj/up_proj/down_proj``, ``output_norm`` ->
  ``model.norm``, ``output`` -> ``lm_head``), in torch shape (the reversed GGUF
  shape: GGUF ``[in, out]`` is torch ``[out, in]``).  ``attn_q`` / ``attn_k`` rows are
  un-permuted: llama.cpp's converter (``LlamaModel.permute``) reorders each head's rows
  so that rope pairs are adjacent (ggml NORM rope); the inverse,
  ``w.reshape(n_head, head_dim // 2, 2, in).swapaxes(1, 2).reshape(out, in)`` (with
  ``n_head = head_count_kv`` for k), restores transformers' rotate_half layout.
  ``--dtype bf16`` (default) rounds float32 to bfloat16 to nearest, ties to even
  (as torch's ``.to(torch.bfloat16)``), ``--dtype f32`` keeps float32.  The file is
  written by hand in the safetensors format: 8-byte little-endian header length, JSON
  header (tensors sorted by name, ``__metadata__ = {"format": "pt"}``, padded with
  spaces to a multiple of 8), then the data in the same order.  Tied embeddings (no
  ``output.weight`` in the GGUF) give no ``lm_head.weight``, as ``save_pretrained``.
* ``config.json``: ``LlamaForCausalLM`` with the fields transformers 5.24 writes for a
  ``LlamaConfig`` (``rope_parameters`` with ``rope_theta``, ``head_dim``, ...), from the
  GGUF metadata; ``tie_word_embeddings`` true when the GGUF has no ``output.weight``;
  float values written as the shortest decimal of the GGUF's float32 (``rms_norm_eps``
  ``1e-05``); ``dtype`` "bfloat16" or "float32"; bos / eos / pad ids from the GGUF.
* ``generation_config.json``: bos, eos, pad ids (what transformers derives from the
  model config).
* ``tokenizer.json``: a byte-level BPE built with ``tokenizers`` from
  ``tokenizer.ggml.tokens`` (ids = positions) and ``tokenizer.ggml.merges`` (rank =
  position), with the original SmolLM2 pipeline that llama.cpp's ``smollm``
  pre-tokenizer (``tokenizer.ggml.pre``) implements: no normalizer, pre-tokenizer
  ``Sequence([Digits(individual_digits=True), ByteLevel(add_prefix_space=False,
  use_regex=True)])``, ByteLevel post-processor (``trim_offsets=False``, no BOS) and
  decoder.  Every token of ``tokenizer.ggml.token_type`` 3 (CONTROL: ids 0..16,
  ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``, ``<repo_name>``, ...) is an added
  token with ``special: true``; type 4 (USER_DEFINED; none in this file) would be an
  added token with ``special: false``.  NOTE: transformers' own GGUF converter builds a
  plain ``ByteLevel`` pre-tokenizer without the digit split, so its ids differ from
  this file's (and from llama.cpp's) when whitespace precedes a digit (``"a  1"``) or for
  non-ASCII numerics (``½``); see ``Tools/reference_tokenize.py``.
* ``tokenizer_config.json``: ``chat_template`` from ``tokenizer.chat_template``, bos
  ``<|im_start|>``, eos and pad ``<|im_end|>``, unk ``<|endoftext|>`` (the GGUF's ids
  1, 2, 2, 0), ``add_bos_token`` false and ``add_eos_token`` false
  (``tokenizer.ggml.add_bos_token``), ``model_max_length`` = context length,
  ``tokenizer_class`` ``PreTrainedTokenizerFast`` (the generic class, which keeps the
  pipeline of tokenizer.json as written).

Checks always run (no torch): every case of
``Tests/TokenizersTests/Resources/smollm2-tokenize.json`` gives its ``ids`` (special
text as plain text) and ``ids_special`` (specials recognised) with the new
tokenizer.json.

``--verify`` (needs the ``Tools/requirements.txt`` venv with torch and transformers)
writes both dtypes into a temporary folder (or reuses ``--bf16-dir`` / ``--f32-dir``)
and checks against ``AutoModelForCausalLM.from_pretrained(models_dir,
gguf_file=...)``, which dequantizes and un-permutes with its own code: its state dict
in float32 equals the f32 folder's tensors bit for bit, and cast to bfloat16 equals the
bf16 folder's bit for bit; transformers loads both folders into the same tensors;
the config transformers writes for the GGUF model agrees with config.json on every
architecture field; transformers' tokenizer from the folder gives the fixture's ids
(``AutoTokenizer``, ``split_special_tokens`` for plain text) and equals transformers'
GGUF-converted tokenizer on every case except those where the fixture's ``ids`` and
``ids_gguf_converted`` differ (the digit split, above).  Then it writes
``smollm2-hf-greedy.json``: transformers' greedy tokens (float32 compute, eager
attention) loaded from the bf16 folder (upcast to float32) and from the f32 folder,
32 tokens for the raw prompt "The capital of France is" (no template, no BOS) and for
"What is the capital of France?" rendered with the chat template
(``add_generation_prompt=True``, which adds the default system prompt); greedy =
argmax (first index on ties) recomputed from scratch on the whole sequence at every
step, cross-checked with ``generate(do_sample=False)``, no stop at ``<|im_end|>``, with
the margins (best minus second-best logit).

Usage:  python Tools/make_hf_folder.py --out DIR [--dtype bf16|f32] [--model GGUF]
        .venv-tools/bin/python Tools/make_hf_folder.py --verify [--greedy-out PATH]
        (model: --model, $NIBBLE_MODEL or ~/.cache/nibble/models/SmolLM2-135M-Instruct.Q4_1.gguf)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import gguf  # noqa: E402
import numpy as np  # noqa: E402
import tokenizers  # noqa: E402
from tokenizers import AddedToken, decoders, models, pre_tokenizers, processors  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = Path.home() / ".cache" / "nibble" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
TOKENIZE_FIXTURE = ROOT / "Tests/TokenizersTests/Resources/smollm2-tokenize.json"
GREEDY_OUT = "Tests/InferenceTests/Resources/smollm2-hf-greedy.json"
TRANSFORMERS_VERSION = "5.24.0"  # the version whose config.json layout is written (Tools/requirements.txt)

NAMES = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}


def f32_shortest(x) -> float:
    """The shortest decimal that reads back as the float32 ``x``, as a Python float."""
    return float(np.format_float_positional(np.float32(x), unique=True, trim="-")) \
        if abs(float(x)) >= 1e-4 else float(np.format_float_scientific(np.float32(x), unique=True, trim="-"))


def hf_name(name: str) -> str:
    if name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if name == "output_norm.weight":
        return "model.norm.weight"
    if name == "output.weight":
        return "lm_head.weight"
    blk, i, kind, suffix = name.split(".")
    assert blk == "blk" and kind in NAMES and suffix == "weight", name
    return f"model.layers.{i}.{NAMES[kind]}.weight"


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of llama.cpp's LlamaModel.permute on a torch-layout [out, in] matrix."""
    out = w.shape[0]
    return w.reshape(n_head, out // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), round to nearest, ties to even (torch's rule)."""
    bits = np.ascontiguousarray(x, dtype="<f4").view("<u4").astype(np.uint64)
    assert not np.isnan(x).any()
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2")


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str) -> None:
    header: dict = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        blob = (to_bf16_bits(t) if dtype == "bf16" else np.ascontiguousarray(t, dtype="<f4")).tobytes()
        header[name] = {"dtype": "BF16" if dtype == "bf16" else "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def read_gguf(path: Path):
    reader = gguf.GGUFReader(path)
    fields = reader.fields

    def get(key, default=None):
        return fields[key].contents() if key in fields else default

    meta = {k: get(k) for k in fields if not k.startswith("GGUF.")}
    assert meta["general.architecture"] == "llama", meta["general.architecture"]
    n_head = int(meta["llama.attention.head_count"])
    n_head_kv = int(meta.get("llama.attention.head_count_kv", n_head))
    tensors: dict[str, np.ndarray] = {}
    for t in reader.tensors:
        shape = [int(s) for s in reversed(t.shape)]  # torch order
        data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
        if t.name.endswith("attn_q.weight"):
            data = unpermute(data, n_head)
        elif t.name.endswith("attn_k.weight"):
            data = unpermute(data, n_head_kv)
        tensors[hf_name(t.name)] = data
    return meta, tensors


def config_json(meta: dict, tensors: dict, dtype: str) -> dict:
    a = "llama"
    n_embd = int(meta[f"{a}.embedding_length"])
    n_head = int(meta[f"{a}.attention.head_count"])
    head_dim = int(meta.get(f"{a}.attention.key_length", n_embd // n_head))
    assert int(meta.get(f"{a}.rope.dimension_count", head_dim)) == head_dim
    assert f"{a}.rope.scaling.type" not in meta and "rope_freqs.weight" not in tensors
    tied = "lm_head.weight" not in tensors
    vocab = tensors["model.embed_tokens.weight"].shape[0]
    assert int(meta.get(f"{a}.vocab_size", vocab)) == vocab
    ids = lambda key: int(meta[f"tokenizer.ggml.{key}"]) if f"tokenizer.ggml.{key}" in meta else None  # noqa: E731
    # Key order as transformers writes it (sorted), so the file diffs cleanly against its output.
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": ids("bos_token_id"),
        "dtype": "bfloat16" if dtype == "bf16" else "float32",
        "eos_token_id": ids("eos_token_id"),
        "head_dim": head_dim,
        "hidden_act": "silu",
        "hidden_size": n_embd,
        "initializer_range": 0.02,
        "intermediate_size": int(meta[f"{a}.feed_forward_length"]),
        "max_position_embeddings": int(meta[f"{a}.context_length"]),
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": n_head,
        "num_hidden_layers": int(meta[f"{a}.block_count"]),
        "num_key_value_heads": int(meta.get(f"{a}.attention.head_count_kv", n_head)),
        "pad_token_id": ids("padding_token_id"),
        "pretraining_tp": 1,
        "rms_norm_eps": f32_shortest(meta[f"{a}.attention.layer_norm_rms_epsilon"]),
        "rope_parameters": {"rope_theta": f32_shortest(meta.get(f"{a}.rope.freq_base", 10000.0)),
                            "rope_type": "default"},
        "tie_word_embeddings": tied,
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": vocab,
    }
    return cfg


def build_tokenizer(meta: dict) -> tuple[tokenizers.Tokenizer, list[str]]:
    assert meta["tokenizer.ggml.model"] == "gpt2" and meta["tokenizer.ggml.pre"] == "smollm", \
        (meta["tokenizer.ggml.model"], meta["tokenizer.ggml.pre"])
    tokens = list(meta["tokenizer.ggml.tokens"])
    types = list(meta["tokenizer.ggml.token_type"])
    vocab = {tok: i for i, tok in enumerate(tokens)}
    assert len(vocab) == len(tokens)
    merges = [tuple(m.split(" ")) for m in meta["tokenizer.ggml.merges"]]
    assert all(len(m) == 2 for m in merges)
    tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=merges, dropout=None, unk_token=None,
                                          fuse_unk=False, byte_fallback=False))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    assert set(types) <= {1, 3, 4}, sorted(set(types))
    added = [AddedToken(tokens[i], special=types[i] == 3, normalized=types[i] != 3, single_word=False,
                        lstrip=False, rstrip=False) for i in range(len(tokens)) if types[i] in (3, 4)]
    tok.add_tokens(added)
    for t in added:
        assert tok.token_to_id(t.content) == vocab[t.content]
    assert tok.get_vocab_size() == len(tokens)
    specials = [tokens[i] for i in range(len(tokens)) if types[i] == 3]
    return tok, specials


def tokenizer_config(meta: dict, specials: list[str]) -> dict:
    tokens = meta["tokenizer.ggml.tokens"]
    tok = lambda key: tokens[int(meta[f"tokenizer.ggml.{key}"])] if f"tokenizer.ggml.{key}" in meta else None  # noqa: E731
    return {
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        "add_eos_token": bool(meta.get("tokenizer.ggml.add_eos_token", False)),
        "add_prefix_space": False,
        "bos_token": tok("bos_token_id"),
        "chat_template": meta["tokenizer.chat_template"],
        "clean_up_tokenization_spaces": False,
        "eos_token": tok("eos_token_id"),
        "extra_special_tokens": [s for s in specials if s not in (tok("bos_token_id"), tok("eos_token_id"),
                                                                  tok("unknown_token_id"), tok("padding_token_id"))],
        "model_max_length": int(meta["llama.context_length"]),
        "pad_token": tok("padding_token_id"),
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": tok("unknown_token_id"),
    }


def check_tokenizer_fixture(tok: tokenizers.Tokenizer) -> int:
    """Every case of the tokenizer fixture: plain-text ids and ids with specials recognised."""
    fixture = json.loads(TOKENIZE_FIXTURE.read_text())
    n = 0
    for case in fixture["cases"]:
        tok.encode_special_tokens = True
        ids = tok.encode(case["text"], add_special_tokens=False).ids
        assert ids == case["ids"], (case["name"], ids, case["ids"])
        tok.encode_special_tokens = False
        if "ids_special" in case:
            ids = tok.encode(case["text"], add_special_tokens=False).ids
            assert ids == case["ids_special"], (case["name"], ids, case["ids_special"])
        n += 1
    tok.encode_special_tokens = False
    return n


def write_folder(model: Path, out: Path, dtype: str) -> None:
    meta, tensors = read_gguf(model)
    tok, specials = build_tokenizer(meta)
    n = check_tokenizer_fixture(tok)
    print(f"tokenizer.json: {n} cases of {TOKENIZE_FIXTURE.name} give the fixture's ids", file=sys.stderr)
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".tmp-", dir=out.parent))
    tmp.chmod(0o755)
    try:
        cfg = config_json(meta, tensors, dtype)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        gen = {"_from_model_config": True, "bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"],
               "pad_token_id": cfg["pad_token_id"], "transformers_version": TRANSFORMERS_VERSION}
        (tmp / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
        tok.save(str(tmp / "tokenizer.json"))
        (tmp / "tokenizer_config.json").write_text(
            json.dumps(tokenizer_config(meta, specials), indent=2, ensure_ascii=False) + "\n")
        write_safetensors(tmp / "model.safetensors", tensors, dtype)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = (out / "model.safetensors").stat().st_size
    print(f"wrote {out} ({dtype}, {len(tensors)} tensors, model.safetensors {size} bytes)", file=sys.stderr)


# --------------------------------------------------------------------------
# --verify (torch + transformers)
# --------------------------------------------------------------------------

def verify(model: Path, bf16_dir: Path, f32_dir: Path, greedy_out: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _common
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    ref = AutoModelForCausalLM.from_pretrained(str(model.parent), gguf_file=model.name, dtype=torch.float32,
                                               attn_implementation="eager").eval()
    ref_sd = {k: v for k, v in ref.state_dict().items()}
    if ref.config.tie_word_embeddings:
        ref_sd.pop("lm_head.weight", None)
    from safetensors.numpy import load_file
    mine_f32 = load_file(str(f32_dir / "model.safetensors"))
    from safetensors.torch import load_file as load_torch
    mine_bf16 = load_torch(str(bf16_dir / "model.safetensors"))
    assert set(mine_f32) == set(ref_sd) == set(mine_bf16), (set(mine_f32) ^ set(ref_sd))
    for name, t in ref_sd.items():
        assert np.array_equal(t.numpy().view(np.uint32), mine_f32[name].view(np.uint32)), f"f32 {name}"
        assert torch.equal(t.to(torch.bfloat16).view(torch.int16), mine_bf16[name].view(torch.int16)), f"bf16 {name}"
    print(f"verify: {len(ref_sd)} tensors equal transformers' GGUF load bit for bit (f32; bf16 after .to(bfloat16))")

    # transformers' config for the GGUF model vs config.json
    theirs = json.loads(ref.config.to_json_string(use_diff=True))  # what save_pretrained writes
    mine = json.loads((f32_dir / "config.json").read_text())
    ignore = {"quantization_config", "_name_or_path", "_model_name_or_path", "dtype", "transformers_version",
              "architectures", "unk_token_id", "output_attentions", "output_hidden_states", "return_dict",
              "chunk_size_feed_forward", "problem_type", "id2label", "label2id", "_commit_hash"}
    diffs = []
    for key in sorted(set(theirs) | set(mine)):
        if key in ignore:
            continue
        a, b = theirs.get(key, "<absent>"), mine.get(key, "<absent>")
        if key == "rms_norm_eps":
            a, b = np.float32(a), np.float32(b)
        if key == "rope_parameters":
            a = {k: (np.float32(v) if isinstance(v, float) else v) for k, v in a.items()}
            b = {k: (np.float32(v) if isinstance(v, float) else v) for k, v in b.items()}
        if a != b:
            diffs.append((key, a, b))
    assert not diffs, diffs
    loaded = transformers.AutoConfig.from_pretrained(str(f32_dir))
    assert loaded.architectures == ["LlamaForCausalLM"] and loaded.tie_word_embeddings
    print(f"verify: config.json agrees with transformers' config of the GGUF model "
          f"(ignoring {sorted(ignore & set(theirs))})")

    # Both folders load in transformers to the same tensors.
    for folder, dtype in ((f32_dir, torch.float32), (bf16_dir, torch.bfloat16)):
        m = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype)
        for name, t in m.state_dict().items():
            if name == "lm_head.weight":
                assert t.data_ptr() == m.get_input_embeddings().weight.data_ptr()
                continue
            want = ref_sd[name].to(dtype)
            assert torch.equal(t.view(torch.int16 if dtype == torch.bfloat16 else torch.int32),
                               want.view(torch.int16 if dtype == torch.bfloat16 else torch.int32)), name
        del m
    print("verify: transformers loads both folders to those tensors (lm_head tied)")

    # Tokenizers
    fixture = json.loads(TOKENIZE_FIXTURE.read_text())
    gguf_tok = AutoTokenizer.from_pretrained(str(model.parent), gguf_file=model.name)
    folder_tok = AutoTokenizer.from_pretrained(str(bf16_dir))
    raw = tokenizers.Tokenizer.from_file(str(bf16_dir / "tokenizer.json"))
    assert folder_tok.bos_token == "<|im_start|>" and folder_tok.eos_token == "<|im_end|>"
    assert folder_tok.chat_template == gguf_tok.chat_template
    same = differ = 0
    for case in fixture["cases"]:
        text = case["text"]
        ids_special = case.get("ids_special", case["ids"])
        hf_special = folder_tok(text, add_special_tokens=True).input_ids
        assert hf_special == ids_special, (case["name"], hf_special, ids_special)  # add_bos_token false
        assert folder_tok(text, add_special_tokens=False, split_special_tokens=True).input_ids == case["ids"], \
            case["name"]
        raw_ids = raw.encode(text, add_special_tokens=False).ids
        assert raw_ids == ids_special
        theirs_ids = gguf_tok(text, add_special_tokens=False).input_ids
        assert theirs_ids == case["ids_gguf_converted"], case["name"]
        if case["ids_gguf_converted"] == ids_special:
            assert theirs_ids == raw_ids
            same += 1
        else:
            differ += 1
            print(f"  tokenizer: {case['name']!r} differs from transformers' GGUF tokenizer as the fixture "
                  f"documents (digit split): {raw_ids} vs {theirs_ids}")
        assert folder_tok.decode(case["ids"]) == gguf_tok.decode(case["ids"])
    print(f"verify: tokenizer.json == transformers' GGUF tokenizer on {same} cases; the {differ} others differ "
          "exactly as the fixture's ids / ids_gguf_converted (the smollm digit split)")

    # Greedy fixture
    prompts = []
    raw_prompt = "The capital of France is"
    prompts.append({"name": "raw", "text": raw_prompt, "template": False,
                    "rendered": raw_prompt, "ids": folder_tok(raw_prompt, add_special_tokens=False).input_ids})
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    rendered = folder_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == gguf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prompts.append({"name": "chatml", "messages": messages, "template": True, "rendered": rendered,
                    "ids": folder_tok(rendered, add_special_tokens=False).input_ids})
    for p in prompts:
        assert p["ids"] == gguf_tok(p["rendered"], add_special_tokens=False).input_ids
    n_greedy = 32

    @torch.no_grad()
    def greedy(m, prompt):
        ids, out, margins = list(prompt), [], []
        for _ in range(n_greedy):
            logits = m(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].to(torch.float32)
            top2 = torch.topk(logits, 2)
            token = int(torch.argmax(logits))
            margins.append(round(float(top2.values[0] - top2.values[1]), 4))
            out.append(token)
            ids.append(token)
        check = m.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                           do_sample=False, num_beams=1, max_new_tokens=n_greedy, min_new_tokens=n_greedy,
                           eos_token_id=None, pad_token_id=2, top_k=None, top_p=None, temperature=None)
        assert [int(x) for x in check[0, len(prompt):]] == out, "generate() disagrees"
        return out, margins

    results = {}
    for label, folder in (("bf16_folder", bf16_dir), ("f32_folder", f32_dir)):
        m = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager").eval()
        assert m.model.embed_tokens.weight.dtype == torch.float32
        runs = {}
        for p in prompts:
            out, margins = greedy(m, p["ids"])
            text = folder_tok.decode(out)
            print(f"{label} {p['name']}: {text!r}")
            runs[p["name"]] = {"greedy_ids": out, "greedy_text": text, "greedy_margins": margins}
        results[label] = runs
        del m
    # the f32 folder is the GGUF dequantized: same as transformers on the GGUF itself
    for p in prompts:
        out, _ = greedy(ref, p["ids"])
        assert out == results["f32_folder"][p["name"]]["greedy_ids"]
    _common.write_json(greedy_out, {
        "generator": "Tools/make_hf_folder.py --verify",
        "model": model.name,
        "model_sha256": _common.sha256_file(model),
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "folders": {
            "bf16_folder": "make smollm2-hf: ~/.cache/nibble/models/SmolLM2-135M-Instruct-bf16/ "
                           f"(model.safetensors sha256 {_common.sha256_file(bf16_dir / 'model.safetensors')})",
            "f32_folder": "make smollm2-hf-f32: ~/.cache/nibble/models/SmolLM2-135M-Instruct-f32/ "
                          f"(model.safetensors sha256 {_common.sha256_file(f32_dir / 'model.safetensors')})",
        },
        "notes": {
            "1": "transformers loads the folder with dtype=torch.float32 and eager attention: the bf16 weights are "
                 "upcast to float32 and all arithmetic is float32. The f32 folder holds the GGUF's dequantized "
                 "weights, so its tokens equal transformers on the GGUF itself (checked); the bf16 folder rounds "
                 "them to bfloat16, so its tokens may differ",
            "2": "prompt ids: no BOS (add_bos_token false); the chatml prompt is the GGUF's chat template with "
                 "add_generation_prompt=True, which inserts the default system prompt; special tokens recognised",
            "3": "greedy_ids: argmax (first index on ties) recomputed from scratch on the whole sequence at each "
                 "step, cross-checked with generate(do_sample=False); no stop at <|im_end|> (id 2). "
                 "greedy_margins: best minus second-best logit; a different but valid rounding may branch where "
                 "the margin is small",
        },
        "prompts": prompts,
        "n_greedy": n_greedy,
        "results": results,
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    env = os.environ.get("NIBBLE_MODEL")
    parser.add_argument("--model", type=Path, default=Path(env).expanduser() if env else DEFAULT_MODEL)
    parser.add_argument("--out", type=Path, help="folder to write")
    parser.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    parser.add_argument("--verify", action="store_true",
                        help="check both dtypes against transformers and write the greedy fixture (needs torch)")
    parser.add_argument("--bf16-dir", type=Path, help="--verify: existing bf16 folder (else one is written)")
    parser.add_argument("--f32-dir", type=Path, help="--verify: existing f32 folder (else one is written)")
    parser.add_argument("--greedy-out", type=Path, default=ROOT / GREEDY_OUT)
    args = parser.parse_args()
    if not args.model.is_file():
        sys.exit(f"model not found: {args.model} (run `make model` or pass --model)")
    if args.verify:
        with tempfile.TemporaryDirectory() as tmp:
            bf16_dir = args.bf16_dir or Path(tmp) / "bf16"
            f32_dir = args.f32_dir or Path(tmp) / "f32"
            if args.bf16_dir is None:
                write_folder(args.model, bf16_dir, "bf16")
            if args.f32_dir is None:
                write_folder(args.model, f32_dir, "f32")
            verify(args.model, bf16_dir, f32_dir, args.greedy_out)
        return
    if args.out is None:
        parser.error("--out DIR is required (or --verify)")
    write_folder(args.model, args.out, args.dtype)


if __name__ == "__main__":
    main()
