#!/usr/bin/env python3
"""Tiny random models of seven families, converted to GGUF by llama.cpp, with
transformers' float32 reference output; and Gemma 3 270M greedy tokens.

Produces

* ``Tests/InferenceTests/Resources/tiny-models/<family>/`` for ``llama``,
  ``mistral``, ``qwen2``, ``qwen3``, ``gemma3``, ``phi3`` and ``gpt2``:

  - the Hugging Face folder written by ``save_pretrained``: ``config.json``,
    ``generation_config.json``, ``model.safetensors`` (float32) and the
    tokenizer (``tokenizer.json`` + ``tokenizer_config.json``, plus
    ``tokenizer.model`` for the SentencePiece families);
  - ``<family>.gguf``: that folder converted by llama.cpp's own
    ``convert_hf_to_gguf.py --outtype f32`` (the copy vendored in the
    ``llama-cpp-python==0.3.36`` sdist that ``make vocab`` unpacks), so the GGUF
    holds exactly the safetensors weights, in GGUF names and layout;
  - ``reference.json``: what the GGUF holds (metadata, tensor names, types and
    shapes), what an engine must do with it (``engine``: rope layout, norms,
    constants the GGUF does not store, sliding-window rule), and the
    transformers forward pass on fixed tokens: logits at every position and a
    greedy continuation.

* ``Tests/InferenceTests/Resources/gemma3-270m-greedy.json``: Gemma 3 270M
  (``$NIBBLE_GEMMA``, the file of ``make gemma``) loaded by transformers from
  the GGUF, dequantized to float32: the prompt ids of "The capital of France
  is", 32 greedy tokens with their margins, and the top 50 logits of the last
  prompt position (with the sha256 of the whole vector).

Why: the engine's other fixtures cover Llama.  These cover what the other
families add: GQA everywhere, Q/K/V biases (qwen2), per-head q/k RMS norms
(qwen3, gemma3), Gemma 3's (1 + w) norms, embedding scale, post-attention and
post-FFN norms, GELU-tanh, logit soft-capping, local/global layers with their
own rope bases and a sliding window, Mistral's sliding window (which the GGUF
loses), Phi-3's fused QKV and gate/up projections with LongRoPE, and GPT-2's
LayerNorm with bias, learned positions and fused c_attn.

Models (transformers classes, float32, eager attention): hidden 24, 2 layers,
FFN 32 (GPT-2: 96 = 4 * hidden), vocabulary 320, head_dim 8,
max_position_embeddings 128 (GPT-2: n_positions 64).  Heads (query / KV):
llama, mistral, qwen3 4 / 2; gemma3 4 / 1; qwen2, phi3 3 / 1; gpt2 3.  So q is
32 wide, not 24, for llama, mistral, qwen3 and gemma3 (head_dim given
explicitly, as Qwen 3 and Gemma 3 do).  Embeddings are tied except for phi3.
See ``FAMILIES`` for the rope bases, windows and specials.
``torch.manual_seed(SEED)``; then every parameter, in ``named_parameters()``
order (tied weights once), is drawn again: 2-D tensors (matrices, embeddings)
normal(0, 0.2); biases normal(0, 0.1); norm weights 1 + 0.1 * normal(0, 1),
except Gemma 3's, which are 0.1 * normal(0, 1) because Gemma3RMSNorm
multiplies by (1 + weight).

Tokenizers, trained here on ``/usr/share/common-licenses/GPL-3`` (its sha256 is
recorded): SentencePiece BPE (``sentencepiece``; byte fallback, digits split,
no normalisation) for llama, mistral and phi3 (ids unk 0, bos 1, eos 2; dummy
prefix) and gemma3 (pad 0, eos 1, bos 2, unk 3; no dummy prefix); byte-level
BPE (``tokenizers``) for qwen2 and qwen3 (Qwen 2's split regex, NFC;
``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>`` as the last three ids) and
gpt2 (GPT-2's ByteLevel regex; ``<|endoftext|>`` as the last id).  The
converter recognises a BPE pre-tokenizer by the hash of its output on a check
text (``TextModel.get_vocab_base_pre``) and knows no hash of these tokenizers,
so this script, which runs the converter in-process, replaces that method by
one that returns the name of the pre-tokenizer it built: ``qwen2`` or
``gpt-2`` (``chkhsh`` in the fixture is the hash it would have looked up).

For the SentencePiece families, ``tokenizer.json`` is transformers' conversion
of ``tokenizer.model`` with the text handling written as sentencepiece does it
(normalizer: Prepend "\u2581" when there is a dummy prefix, then spaces to
"\u2581"; no pre-tokenizer), and ``tokenizer_config.json`` names the generic
``PreTrainedTokenizerFast``: transformers 5's LlamaTokenizer / GemmaTokenizer
rebuild a Metaspace pipeline that adds no "\u2581" before a text that already
starts with a space, unlike sentencepiece and llama.cpp.  The script checks
that transformers' tokenizer loaded from each folder gives the trained
tokenizer's ids on every 23rd line of the text and a few edge cases.

One more change to the stock converter: ``Gemma3Model.set_gguf_parameters``
writes ``sliding_window`` but not which layers slide (llama.cpp then assumes
Gemma 3's pattern of 6: layer i slides unless i % 6 == 5).  The tiny model
alternates sliding and full layers, so the script also writes
``gemma3.attention.sliding_window_pattern`` as a bool array (true = sliding),
the key llama.cpp's gemma3 loader reads first (as the Gemma 3n / Gemma 4
converters already write it).

Conventions of ``reference.json``:

* ``tokens``: ``N_TOKENS`` ids, uniform in [0, vocab) (numpy
  ``default_rng(TOKENS_SEED)``), no BOS added; positions 0..N_TOKENS-1.
* ``logits_f32_le_base64``: [N_TOKENS][vocab] float32 little-endian,
  position-major (position p at [p * vocab, (p + 1) * vocab)), with
  ``logits_sha256`` of those bytes.
* ``greedy_ids``: ``N_GREEDY`` tokens, argmax (first index on ties) recomputed
  from scratch on the whole sequence at each step, cross-checked against
  ``model.generate(do_sample=False)``; no end-of-generation stop.
  ``greedy_margins``: best minus second-best logit at each step.
* ``gguf.metadata``: every key except the token lists (``tokenizer`` gives
  their sizes, special ids and the first tokens); ``gguf.tensors``:
  [name, type, shape] in file order, shape in GGUF order [ne0, ne1].
* ``engine``: the layout and formulas, as llama.cpp's graph for the arch
  uses them, that reproduce the logits, including the constants the GGUF does
  not store; ``notes``: the same in words, plus what is surprising.
* ``engine`` fields: ``norm`` "rms" (x / sqrt(mean(x^2) + eps) * w) or
  "layer" ((x - mean) / sqrt(var + eps) * w + b); ``rope`` "norm" (ggml
  NORM mode: rotates the adjacent pairs (2i, 2i+1) of each head), "neox"
  (pairs (i, i + n_rot/2)) or "none"; theta_i = pos * base^(-2i/n_rot) /
  factor_i, with ``rope_base_swa`` on Gemma 3's sliding layers and factor_i
  from the ``rope_factors`` tensor (else 1); ``rope_mscale`` multiplies cos
  and sin; ``attn_scale`` multiplies q.k; ``sliding_window`` (0: none) on the
  layers where ``swa_layers`` is true; ``embd_scale`` (0: none) multiplies the
  token embeddings; ``ffn`` "silu" / "gelu" (down(act(gate x) * up x), gelu
  with tanh), "swiglu_fused" (Phi-3: ffn_up holds gate then up) or "gelu_seq"
  (GPT-2: down(gelu(up x + b)) + b); ``final_softcap`` (0: none): logits =
  cap * tanh(logits / cap).
* ``checks``: max |difference| between transformers' logits and an
  independent float64 numpy forward pass that reads only the GGUF tensors
  and ``engine`` (a transliteration of llama.cpp's graph); and, for
  deliberate mistakes (wrong rope layout, window off by one, ...), how far
  the logits move.  Every mistake moves them by more than 0.1.

Sliding windows, as transformers applies them (``sliding_window_overlay``:
``kv_idx > q_idx - sliding_window``) and llama.cpp too
(``LLAMA_SWA_TYPE_STANDARD`` masks ``p_q - p_k >= n_swa``): on a sliding
layer with window w, a query at position p attends to the keys at positions
k with p - w < k <= p, that is the w most recent positions including itself.
The script checks it: the numpy forward with w matches transformers, with
w - 1 or w + 1 it does not, and transformers' own logits change with w.

Usage:  .venv-tools/bin/python Tools/reference_families.py
            [--families llama,gemma3,...] [--no-gemma-270m | --only-gemma-270m]
            [--llama-cpp DIR] [--out-dir DIR] [--gemma-out PATH]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import logging
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common  # sets HF_HUB_OFFLINE before transformers is imported

CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nibble"
LLAMACPP_DEFAULT = CACHE_DIR / "llama-cpp-python-0.3.36" / "vendor" / "llama.cpp"


def _llamacpp_dir(argv: list[str]) -> Path:
    """The vendored llama.cpp folder (``--llama-cpp DIR`` or the ``make vocab`` one)."""
    for i, a in enumerate(argv):
        if a == "--llama-cpp" and i + 1 < len(argv):
            return Path(argv[i + 1]).expanduser().resolve()
        if a.startswith("--llama-cpp="):
            return Path(a.split("=", 1)[1]).expanduser().resolve()
    return LLAMACPP_DEFAULT


LLAMACPP = _llamacpp_dir(sys.argv)
if not (LLAMACPP / "convert_hf_to_gguf.py").is_file():
    sys.exit(f"llama.cpp converter not found in {LLAMACPP} (run `make vocab`, or pass --llama-cpp DIR)")
# The converter and its own gguf-py (newer than the pip gguf 0.19.0 wheel, which
# lacks keys this converter writes).  Both go first, before anything imports gguf.
sys.path.insert(0, str(LLAMACPP / "gguf-py"))
sys.path.insert(0, str(LLAMACPP))

import gguf  # noqa: E402  (vendored gguf-py)
import numpy as np  # noqa: E402
import sentencepiece  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Regex, decoders, normalizers, pre_tokenizers, processors, trainers  # noqa: E402

assert Path(gguf.__file__).resolve().is_relative_to(LLAMACPP.resolve()), gguf.__file__

TEXT_PATH = Path("/usr/share/common-licenses/GPL-3")
SEED = 0
MATRIX_STD = 0.2
BIAS_STD = 0.1
NORM_STD = 0.1
TOKENS_SEED = 20251126
N_TOKENS = 40
N_GREEDY = 16
VOCAB = 320
HIDDEN = 24
FFN = 32
LAYERS = 2
CONTEXT = 128

OUT_DIR = "Tests/InferenceTests/Resources/tiny-models"
GEMMA_OUT = "Tests/InferenceTests/Resources/gemma3-270m-greedy.json"

# Qwen 2's pre-tokenizer regex, as in its tokenizer.json; llama.cpp's "qwen2"
# pre-tokenizer uses the same expression (with the case-insensitive group spelled out).
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def f32(x) -> float:
    """A float32 as the Python float with the same value (exact)."""
    return float(np.float32(x))


def numbered(notes: list[str]) -> dict[str, str]:
    return {str(i + 1): note for i, note in enumerate(notes)}


def b64_f32(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f4").tobytes()).decode("ascii")


# --------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------

@dataclass
class Family:
    name: str
    arch: str                  # GGUF general.architecture
    hf_class: str              # transformers model class
    tokenizer: str             # "sp" or "bpe"
    config: dict[str, Any]     # transformers config kwargs (vocab_size added)
    tokenizer_class: str
    specials: dict[str, str]   # role -> token text
    pre: str | None = None     # llama.cpp BPE pre-tokenizer name (bpe only)
    sp_ids: dict[str, int] = field(default_factory=dict)
    dummy_prefix: bool = True
    gemma_norms: bool = False  # RMSNorm multiplies by (1 + w)


SP_LLAMA = dict(unk=0, bos=1, eos=2, pad=-1)
SP_GEMMA = dict(pad=0, eos=1, bos=2, unk=3)

FAMILIES: dict[str, Family] = {
    "llama": Family(
        "llama", "llama", "LlamaForCausalLM", "sp",
        dict(hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
             num_attention_heads=4, num_key_value_heads=2, head_dim=8,
             max_position_embeddings=CONTEXT, rms_norm_eps=1e-5,
             rope_parameters={"rope_type": "default", "rope_theta": 50000.0},
             tie_word_embeddings=True, attention_bias=False, mlp_bias=False, hidden_act="silu",
             bos_token_id=1, eos_token_id=2, pad_token_id=None),
        "LlamaTokenizer", {"unk": "<unk>", "bos": "<s>", "eos": "</s>"}, sp_ids=SP_LLAMA),
    "mistral": Family(
        "mistral", "llama", "MistralForCausalLM", "sp",
        dict(hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
             num_attention_heads=4, num_key_value_heads=2, head_dim=8,
             max_position_embeddings=CONTEXT, rms_norm_eps=1e-5,
             rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
             sliding_window=16, tie_word_embeddings=True, hidden_act="silu",
             bos_token_id=1, eos_token_id=2, pad_token_id=None),
        "LlamaTokenizer", {"unk": "<unk>", "bos": "<s>", "eos": "</s>"}, sp_ids=SP_LLAMA),
    "qwen2": Family(
        "qwen2", "qwen2", "Qwen2ForCausalLM", "bpe",
        dict(hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
             num_attention_heads=3, num_key_value_heads=1,
             max_position_embeddings=CONTEXT, rms_norm_eps=1e-6,
             rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
             use_sliding_window=False, tie_word_embeddings=True, hidden_act="silu",
             bos_token_id=None, eos_token_id=VOCAB - 3, pad_token_id=None),
        "Qwen2Tokenizer", {"eos": "<|endoftext|>", "pad": "<|endoftext|>"}, pre="qwen2"),
    "qwen3": Family(
        "qwen3", "qwen3", "Qwen3ForCausalLM", "bpe",
        dict(hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
             num_attention_heads=4, num_key_value_heads=2, head_dim=8,
             max_position_embeddings=CONTEXT, rms_norm_eps=1e-6,
             rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
             use_sliding_window=False, attention_bias=False, tie_word_embeddings=True, hidden_act="silu",
             bos_token_id=None, eos_token_id=VOCAB - 3, pad_token_id=None),
        "Qwen2Tokenizer", {"eos": "<|endoftext|>", "pad": "<|endoftext|>"}, pre="qwen2"),
    "gemma3": Family(
        "gemma3", "gemma3", "Gemma3ForCausalLM", "sp",
        dict(hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
             num_attention_heads=4, num_key_value_heads=1, head_dim=8,
             max_position_embeddings=CONTEXT, rms_norm_eps=1e-6,
             hidden_activation="gelu_pytorch_tanh",
             query_pre_attn_scalar=8,
             sliding_window=16,
             layer_types=["sliding_attention", "full_attention"], sliding_window_pattern=2,
             rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                              "sliding_attention": {"rope_type": "default", "rope_theta": 20000.0}},
             final_logit_softcapping=8.0, attn_logit_softcapping=None,
             tie_word_embeddings=True, attention_bias=False,
             bos_token_id=2, eos_token_id=1, pad_token_id=0),
        "GemmaTokenizer", {"pad": "<pad>", "eos": "<eos>", "bos": "<bos>", "unk": "<unk>"},
        sp_ids=SP_GEMMA, dummy_prefix=False, gemma_norms=True),
    "phi3": Family(
        "phi3", "phi3", "Phi3ForCausalLM", "sp",
        dict(hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
             num_attention_heads=3, num_key_value_heads=1,
             max_position_embeddings=CONTEXT, original_max_position_embeddings=32, rms_norm_eps=1e-5,
             rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                              "short_factor": [1.0, 1.25, 1.5, 2.5],
                              "long_factor": [1.0, 3.0, 7.0, 16.0],
                              "original_max_position_embeddings": 32},
             sliding_window=None, tie_word_embeddings=False, hidden_act="silu",
             bos_token_id=1, eos_token_id=2, pad_token_id=None),
        "LlamaTokenizer", {"unk": "<unk>", "bos": "<s>", "eos": "</s>"}, sp_ids=SP_LLAMA),
    "gpt2": Family(
        "gpt2", "gpt2", "GPT2LMHeadModel", "bpe",
        dict(n_embd=HIDDEN, n_layer=LAYERS, n_head=3, n_positions=64, n_ctx=64, n_inner=None,
             activation_function="gelu_new", layer_norm_epsilon=1e-5,
             resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
             tie_word_embeddings=True, bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1),
        "GPT2Tokenizer", {"bos": "<|endoftext|>", "eos": "<|endoftext|>", "unk": "<|endoftext|>"}, pre="gpt-2"),
}


# --------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------

def training_lines() -> list[str]:
    return [line for line in TEXT_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]


def train_sentencepiece(fam: Family) -> bytes:
    ids = fam.sp_ids
    pieces = {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"}
    pieces.update({role: text for role, text in fam.specials.items()})
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(training_lines()), model_writer=model,
        vocab_size=VOCAB, model_type="bpe", byte_fallback=True, character_coverage=0.98,
        split_digits=True, add_dummy_prefix=fam.dummy_prefix, normalization_rule_name="identity",
        remove_extra_whitespaces=False, num_threads=1, minloglevel=2,
        unk_id=ids["unk"], bos_id=ids["bos"], eos_id=ids["eos"], pad_id=ids["pad"],
        unk_piece=pieces["unk"], bos_piece=pieces["bos"], eos_piece=pieces["eos"], pad_piece=pieces["pad"],
    )
    return model.getvalue()


def train_bpe(fam: Family) -> tokenizers.Tokenizer:
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    if fam.pre == "qwen2":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        specials = ["<|endoftext|>"]
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB - len(specials), special_tokens=[], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_lines(), trainer)
    assert tok.get_vocab_size() == VOCAB - len(specials), tok.get_vocab_size()
    tok.add_special_tokens(specials)  # ids VOCAB - len(specials) .. VOCAB - 1, as Qwen / GPT-2 place them last
    assert tok.get_vocab_size() == VOCAB
    return tok


def write_tokenizer(fam: Family, folder: Path) -> dict[str, Any]:
    """Writes the tokenizer files; returns a summary for the fixture."""
    from transformers import AutoTokenizer
    config: dict[str, Any] = {"tokenizer_class": fam.tokenizer_class}
    for role in ("bos", "eos", "unk", "pad"):
        config[f"{role}_token"] = fam.specials.get(role)
    config["clean_up_tokenization_spaces"] = False
    config["model_max_length"] = CONTEXT
    text_lines = training_lines()
    if fam.tokenizer == "sp":
        proto = train_sentencepiece(fam)
        (folder / "tokenizer.model").write_bytes(proto)
        config.update(add_bos_token=True, add_eos_token=False)
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
        # transformers converts tokenizer.model (vocabulary, merges from the scores, byte
        # fallback, BOS template) into a tokenizers pipeline ...
        converted = json.loads(AutoTokenizer.from_pretrained(folder).backend_tokenizer.to_str())
        # ... whose Metaspace pre-tokenizer adds no "▁" before a text that already starts
        # with a space, where sentencepiece (and llama.cpp) always add one.  So the text
        # handling is written out as sentencepiece does it: spaces to U+2581, and the dummy
        # prefix (not for Gemma) as an unconditional Prepend; no pre-tokenizer.
        steps = [{"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]
        if fam.dummy_prefix:
            steps.insert(0, {"type": "Prepend", "prepend": "▁"})
        converted["normalizer"] = {"type": "Sequence", "normalizers": steps}
        converted["pre_tokenizer"] = None
        decoder = [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                   {"type": "ByteFallback"}, {"type": "Fuse"}]
        if fam.dummy_prefix:
            decoder.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
        converted["decoder"] = {"type": "Sequence", "decoders": decoder}
        (folder / "tokenizer.json").write_text(json.dumps(converted, ensure_ascii=False, indent=1) + "\n")
        # The model-specific classes (LlamaTokenizer, GemmaTokenizer) rebuild their own
        # pipeline in transformers 5 and would ignore the file's; the generic class uses it.
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
        sp = sentencepiece.SentencePieceProcessor(model_proto=proto)
        assert sp.vocab_size() == VOCAB
        expect = lambda s: sp.encode(s)  # noqa: E731
    else:
        tok = train_bpe(fam)
        tok.save(str(folder / "tokenizer.json"))
        config.update(add_prefix_space=False, errors="replace")
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
        expect = lambda s: tok.encode(s).ids  # noqa: E731
    hf = AutoTokenizer.from_pretrained(folder)
    samples = text_lines[::23] + ["The capital of France is Paris.", " 123  ünïcode\n\tend", "I've 'll THE"]
    mismatches = [s for s in samples if hf(s, add_special_tokens=False).input_ids != expect(s)]
    assert not mismatches, f"{fam.name}: transformers' tokenizer differs from the trained one on {mismatches[:3]}"
    with_specials = hf("The capital of France is", add_special_tokens=True).input_ids
    return {
        "kind": "SentencePiece BPE (byte fallback)" if fam.tokenizer == "sp" else f"byte-level BPE, pre-tokenizer {fam.pre}",
        "trained_on": f"{TEXT_PATH} (sha256 {_common.sha256_file(TEXT_PATH)})",
        "vocab_size": VOCAB,
        "special_tokens": {role: [text, hf.convert_tokens_to_ids(text)] for role, text in fam.specials.items()},
        "example": {"text": "The capital of France is", "ids_with_specials": with_specials},
    }


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------

def make_model(fam: Family):
    config_class = transformers.AutoConfig.for_model
    model_type = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2",
                  "Qwen3ForCausalLM": "qwen3", "Gemma3ForCausalLM": "gemma3_text", "Phi3ForCausalLM": "phi3",
                  "GPT2LMHeadModel": "gpt2"}[fam.hf_class]
    kwargs = json.loads(json.dumps(fam.config))  # deep copy
    kwargs["vocab_size"] = VOCAB
    config = config_class(model_type, **kwargs)
    config._attn_implementation = "eager"
    cls = getattr(transformers, fam.hf_class)
    torch.manual_seed(SEED)
    model = cls(config).to(torch.float32)
    model.eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2:
                p.copy_(torch.randn(p.shape) * MATRIX_STD)
            elif name.endswith(".bias"):
                p.copy_(torch.randn(p.shape) * BIAS_STD)
            elif fam.gemma_norms:
                p.copy_(torch.randn(p.shape) * NORM_STD)
            else:
                p.copy_(1.0 + NORM_STD * torch.randn(p.shape))
    assert model.config._attn_implementation == "eager"
    out = model.get_output_embeddings().weight
    tied = out.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert tied == bool(config.tie_word_embeddings), (fam.name, tied)
    return model


@torch.no_grad()
def all_logits(model, ids: list[int]) -> np.ndarray:
    out = model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0].to(torch.float32).numpy()


@torch.no_grad()
def greedy(model, prompt: list[int], steps: int) -> tuple[list[int], list[float]]:
    ids = list(prompt)
    generated, margins = [], []
    for _ in range(steps):
        logits = torch.from_numpy(all_logits(model, ids)[-1])
        top2 = torch.topk(logits, 2)
        token = int(torch.argmax(logits))
        assert token == int(top2.indices[0]) or top2.values[0] == top2.values[1]
        margins.append(round(float(top2.values[0] - top2.values[1]), 4))
        generated.append(token)
        ids.append(token)
    check = model.generate(
        torch.tensor([prompt], dtype=torch.long),
        attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
        do_sample=False, num_beams=1, max_new_tokens=steps, min_new_tokens=steps,
        eos_token_id=None, bos_token_id=None, pad_token_id=0, top_k=None, top_p=None, temperature=None,
    )
    check = [int(x) for x in check[0, len(prompt):]]
    if check != generated:
        raise SystemExit(f"generate() disagrees:\n {generated}\n {check}")
    return generated, margins


def variant(model, **changes):
    """The same weights under a changed config (for the sensitivity checks)."""
    config = model.config.__class__.from_dict(model.config.to_dict())
    for k, v in changes.items():
        setattr(config, k, v)
    config._attn_implementation = "eager"
    other = model.__class__(config).to(torch.float32).eval()
    other.load_state_dict(model.state_dict())
    return other


# --------------------------------------------------------------------------
# Conversion (llama.cpp convert_hf_to_gguf.py, in-process)
# --------------------------------------------------------------------------

_PRE_NAME: dict[str, str] = {}


def _patch_converter():
    import ast
    import inspect
    from conversion import base
    from conversion.gemma import Gemma3Model

    if getattr(base.TextModel, "_nibble_patched", False):
        return
    # The converter's check text (a plain string literal in get_vocab_base_pre).
    source = inspect.getsource(base.TextModel.get_vocab_base_pre)
    start = source.index("chktxt = ") + len("chktxt = ")
    chktxt = ast.literal_eval(source[start:source.index("\n", start)])

    def get_vocab_base_pre(self, tokenizer) -> str:
        # Same check text and hash as the original (recorded in the fixture), but the
        # name comes from the tokenizer this script built: the original knows only
        # the hashes of published tokenizers and raises NotImplementedError otherwise.
        _PRE_NAME["chkhsh"] = hashlib.sha256(str(tokenizer.encode(chktxt)).encode()).hexdigest()
        return _PRE_NAME["name"]

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre

    original_gemma3 = Gemma3Model.set_gguf_parameters

    def gemma3_set_gguf_parameters(self):
        original_gemma3(self)
        layer_types = self.hparams.get("layer_types")
        if layer_types:
            self.gguf_writer.add_sliding_window_pattern([t == "sliding_attention" for t in layer_types])

    Gemma3Model.set_gguf_parameters = gemma3_set_gguf_parameters
    base.TextModel._nibble_patched = True


def convert(fam: Family, folder: Path, out: Path) -> str | None:
    import convert_hf_to_gguf
    _patch_converter()
    _PRE_NAME.clear()
    _PRE_NAME["name"] = fam.pre or ""
    argv = sys.argv
    sys.argv = ["convert_hf_to_gguf.py", "--outtype", "f32", "--outfile", str(out), str(folder)]
    logging.disable(logging.INFO)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            convert_hf_to_gguf.main()
    finally:
        sys.argv = argv
        logging.disable(logging.NOTSET)
    return _PRE_NAME.get("chkhsh")


# --------------------------------------------------------------------------
# GGUF reading
# --------------------------------------------------------------------------

def _plain(value):
    if isinstance(value, float):
        return f32(value)
    if isinstance(value, (np.floating,)):
        return f32(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def read_gguf(path: Path) -> tuple[dict[str, Any], dict[str, Any], list[list[Any]], dict[str, np.ndarray]]:
    reader = gguf.GGUFReader(path)
    meta: dict[str, Any] = {}
    tok: dict[str, Any] = {}
    for key, fld in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        value = _plain(fld.contents())
        if key in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
                   "tokenizer.ggml.merges"):
            tok[key] = {"count": len(value), "first": value[:8]}
            if key == "tokenizer.ggml.token_type":
                tok[key]["counts_by_type"] = {str(t): value.count(t) for t in sorted(set(value))}
            continue
        meta[key] = value
    tensors, arrays = [], {}
    for t in reader.tensors:
        assert t.tensor_type == gguf.GGMLQuantizationType.F32, (t.name, t.tensor_type)
        tensors.append([t.name, t.tensor_type.name, [int(s) for s in t.shape]])
        arrays[t.name] = np.array(t.data, dtype=np.float32).reshape([int(s) for s in reversed(t.shape)])
    return meta, tok, tensors, arrays


# --------------------------------------------------------------------------
# Independent float64 forward pass on the GGUF tensors (llama.cpp's graphs)
# --------------------------------------------------------------------------

@dataclass
class Engine:
    """Everything the numpy forward needs besides the tensors.  Built from the
    GGUF metadata plus the per-arch rules of llama.cpp (and, where the GGUF lost
    it, the HF config)."""
    arch: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    norm: str                      # "rms" or "layer"
    eps: float
    rope: str                      # "norm" (adjacent pairs), "neox" (halves) or "none"
    n_rot: int
    rope_base: float
    rope_base_swa: float
    rope_factors: str | None       # GGUF tensor name holding per-pair divisors, or None
    rope_mscale: float             # multiplies cos and sin (phi3 LongRoPE attn_factor)
    attn_scale: float
    sliding_window: int            # 0: none
    swa_layers: list[bool]
    embd_scale: float              # 0: none
    ffn: str                       # "silu" / "gelu" gated, "gelu_seq" (gpt2), "swiglu_fused" (phi3)
    final_softcap: float           # 0: none
    gqa_interleaved: bool = False  # wrong on purpose: head h uses KV head h % n_head_kv

    def describe(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.pop("gqa_interleaved")
        if not any(self.swa_layers) or self.arch != "gemma3":
            d["rope_base_swa"] = None  # only Gemma 3 has a second base
        if self.rope == "none":
            d["rope_base"] = None
        return {k: (f32(v) if isinstance(v, float) else v) for k, v in d.items()}


def engine_from_gguf(meta: dict[str, Any], tensor_names: list[str], n_ctx: int) -> Engine:
    """The rules of llama.cpp's graph for the arch, from the GGUF metadata; n_ctx is the
    context size (Phi-3 picks its long or short rope factors by it)."""
    a = meta["general.architecture"]
    g = lambda k, d=None: meta.get(f"{a}.{k}", d)  # noqa: E731
    n_embd, n_head = g("embedding_length"), g("attention.head_count")
    head_dim = g("attention.key_length", n_embd // n_head)
    n_layer = g("block_count")
    rope = {"llama": "norm", "qwen2": "neox", "qwen3": "neox", "gemma3": "neox", "phi3": "neox", "gpt2": "none"}[a]
    window = g("attention.sliding_window", 0) or 0
    swa_layers = [False] * n_layer
    if a == "gemma3" and window:
        pattern = g("attention.sliding_window_pattern", 6)
        swa_layers = (list(pattern) if isinstance(pattern, list)
                      else [i % pattern < pattern - 1 for i in range(n_layer)])
    if a == "phi3":
        window = 0  # llama.cpp disables Phi-3 SWA (and the model has none)
    factors, mscale = None, 1.0
    if a == "phi3" and "rope_factors_long.weight" in tensor_names:
        orig = g("rope.scaling.original_context_length")
        factors = "rope_factors_long.weight" if n_ctx > orig else "rope_factors_short.weight"
        mscale = g("rope.scaling.attn_factor", 1.0)
    # All these graphs scale q.k by 1/sqrt(head_dim); llama.cpp's gemma3 too, except for
    # the 27B (1/sqrt(n_embd / n_head)): it ignores query_pre_attn_scalar, which no key stores.
    attn_scale = 1.0 / math.sqrt(head_dim)
    return Engine(
        arch=a, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_head_kv=g("attention.head_count_kv", n_head),
        head_dim=head_dim,
        norm="layer" if a == "gpt2" else "rms",
        eps=g("attention.layer_norm_epsilon") if a == "gpt2" else g("attention.layer_norm_rms_epsilon"),
        rope=rope, n_rot=g("rope.dimension_count", head_dim) if rope != "none" else 0,
        rope_base=g("rope.freq_base", 10000.0), rope_base_swa=g("rope.freq_base_swa", 10000.0),
        rope_factors=factors, rope_mscale=mscale, attn_scale=attn_scale,
        sliding_window=window if any(swa_layers) else 0, swa_layers=swa_layers,
        embd_scale=f32(math.sqrt(n_embd)) if a == "gemma3" else 0.0,
        ffn={"gemma3": "gelu", "gpt2": "gelu_seq", "phi3": "swiglu_fused"}.get(a, "silu"),
        final_softcap=g("final_logit_softcapping", 0.0) or 0.0,
    )


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def ggml_forward(e: Engine, tensors: dict[str, np.ndarray], tokens: list[int]) -> np.ndarray:
    """Float64 transliteration of llama.cpp's graph for e.arch on GGUF-layout tensors
    (numpy shape = reversed GGUF shape = torch shape).  Returns [n_tokens, vocab]."""
    t = {k: v.astype(np.float64) for k, v in tensors.items()}
    n = len(tokens)
    hd, nh, nkv = e.head_dim, e.n_head, e.n_head_kv

    def norm(x, name):
        w = t[name + ".weight"]
        if e.norm == "rms":
            return x / np.sqrt((x * x).mean(-1, keepdims=True) + e.eps) * w
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + e.eps) * w + t[name + ".bias"]

    def linear(x, name):
        y = x @ t[name + ".weight"].T
        if name + ".bias" in t:
            y = y + t[name + ".bias"]
        return y

    pos = np.arange(n, dtype=np.float64)

    def rope(x, base):  # x: [n, heads, hd]
        if e.rope == "none":
            return x
        half = e.n_rot // 2
        inv = base ** (-2.0 * np.arange(half) / e.n_rot)
        if e.rope_factors:
            inv = inv / t[e.rope_factors]
        ang = pos[:, None] * inv[None, :]
        cos = (np.cos(ang) * e.rope_mscale)[:, None, :]
        sin = (np.sin(ang) * e.rope_mscale)[:, None, :]
        out = x.copy()
        if e.rope == "norm":
            x0, x1 = x[..., 0:e.n_rot:2], x[..., 1:e.n_rot:2]
            out[..., 0:e.n_rot:2] = x0 * cos - x1 * sin
            out[..., 1:e.n_rot:2] = x0 * sin + x1 * cos
        else:
            x0, x1 = x[..., :half], x[..., half:e.n_rot]
            out[..., :half] = x0 * cos - x1 * sin
            out[..., half:e.n_rot] = x0 * sin + x1 * cos
        return out

    x = t["token_embd.weight"][tokens]
    if e.embd_scale:
        x = x * e.embd_scale
    if "position_embd.weight" in t:
        x = x + t["position_embd.weight"][:n]
    q_pos, k_pos = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    causal = np.where(k_pos <= q_pos, 0.0, -np.inf)
    windowed = np.where((k_pos <= q_pos) & (q_pos - k_pos < max(e.sliding_window, 1)), 0.0, -np.inf)
    for il in range(e.n_layer):
        p = f"blk.{il}."
        swa = e.sliding_window > 0 and e.swa_layers[il]
        h = norm(x, p + "attn_norm")
        if p + "attn_qkv.weight" in t:
            qkv = linear(h, p + "attn_qkv")
            q, k, v = np.split(qkv, [nh * hd, nh * hd + nkv * hd], axis=-1)
        else:
            q, k, v = linear(h, p + "attn_q"), linear(h, p + "attn_k"), linear(h, p + "attn_v")
        q, k, v = q.reshape(n, nh, hd), k.reshape(n, nkv, hd), v.reshape(n, nkv, hd)
        if p + "attn_q_norm.weight" in t:
            rms = lambda y, w: y / np.sqrt((y * y).mean(-1, keepdims=True) + e.eps) * w  # noqa: E731
            q = rms(q, t[p + "attn_q_norm.weight"])
            k = rms(k, t[p + "attn_k_norm.weight"])
        base = e.rope_base_swa if (e.arch == "gemma3" and e.swa_layers[il]) else e.rope_base
        q, k = rope(q, base), rope(k, base)
        mask = windowed if swa else causal
        heads = []
        for head in range(nh):
            kv = head % nkv if e.gqa_interleaved else head // (nh // nkv)
            s = (q[:, head] @ k[:, kv].T) * e.attn_scale + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            heads.append((s / s.sum(-1, keepdims=True)) @ v[:, kv])
        o = linear(np.concatenate(heads, -1), p + "attn_output")
        if p + "post_attention_norm.weight" in t:
            o = norm(o, p + "post_attention_norm")
        x = x + o
        h = norm(x, p + "ffn_norm")
        if e.ffn == "gelu_seq":
            f = linear(gelu_tanh(linear(h, p + "ffn_up")), p + "ffn_down")
        elif e.ffn == "swiglu_fused":
            gu = linear(h, p + "ffn_up")
            g, u = np.split(gu, 2, axis=-1)  # first half gate, second half up
            f = linear(g / (1 + np.exp(-g)) * u, p + "ffn_down")
        else:
            g, u = linear(h, p + "ffn_gate"), linear(h, p + "ffn_up")
            act = gelu_tanh(g) if e.ffn == "gelu" else g / (1 + np.exp(-g))
            f = linear(act * u, p + "ffn_down")
        if p + "post_ffw_norm.weight" in t:
            f = norm(f, p + "post_ffw_norm")
        x = x + f
    x = norm(x, "output_norm")
    out = t["output.weight"] if "output.weight" in t else t["token_embd.weight"]
    logits = x @ out.T
    if "output.bias" in t:
        logits = logits + t["output.bias"]
    if e.final_softcap:
        logits = e.final_softcap * np.tanh(logits / e.final_softcap)
    return logits


# --------------------------------------------------------------------------
# Per-family notes (what the engine must know; checked by the numpy forward)
# --------------------------------------------------------------------------

def family_notes(fam: Family, e: Engine, meta: dict[str, Any], tensor_names: list[str], model) -> list[str]:
    """What an engine must know to reproduce the logits from the GGUF, in words.
    Every statement here is what ggml_forward does (and the mistakes checked)."""
    cfg = model.config
    a = e.arch
    ratio = e.n_head // e.n_head_kv
    gqa = (f"GQA: {e.n_head} query heads, {e.n_head_kv} KV head(s); query head h uses KV head h // {ratio}"
           if e.n_head_kv > 1 else f"GQA: all {e.n_head} query heads share the single KV head")
    dims = (f"head_dim {e.head_dim} ({a}.attention.key_length"
            + (")" if f"{a}.attention.key_length" in meta else " absent: n_embd / head_count)")
            + (f"; q is {e.n_head * e.head_dim} wide, hidden {e.n_embd}" if e.n_head * e.head_dim != e.n_embd else ""))
    tied = ("tied embeddings: there is no output.weight, the output matrix is token_embd.weight"
            if "output.weight" not in tensor_names else "untied: output.weight is the output matrix")
    rms = "RMSNorm: x / sqrt(mean(x^2) + eps) * w, eps = {a}.attention.layer_norm_rms_epsilon".format(a=a)
    neox = (f"rope NEOX (rotates the pairs (i, i + {e.n_rot // 2}) of each head, i.e. halves), no permutation, "
            f"theta_i = pos * freq_base^(-2i/{e.n_rot})")
    scale = f"attention scores scaled by 1/sqrt(head_dim) = {f32(e.attn_scale)!r}"
    common = [
        "tensors: float32, shape in GGUF order [ne0, ne1] (reversed torch shape): a torch Linear weight [out, in] is "
        "GGUF [in, out], y = W x with row j of W (ne0 = in values) contiguous",
        "checks.numpy_vs_transformers_max_abs_diff: a float64 numpy forward pass reading only the GGUF tensors and "
        "`engine` reproduces transformers' logits to that distance; a float32 engine should be within ~1e-4",
    ]
    if fam.name == "llama":
        n = [
            f"arch llama; {tied}",
            "attn_q / attn_k rows are permuted by the converter (LlamaModel.permute, k with head_count_kv): within "
            "each head, rows 2i and 2i+1 form rope pair i: ggml NORM rope (adjacent pairs) on the GGUF tensors "
            "equals transformers' rotate_half (pairs i, i + head_dim/2) on the HF ones; "
            f"theta_i = pos * freq_base^(-2i/{e.n_rot}), freq_base {e.rope_base}, no scaling",
            gqa, dims, scale, rms, "FFN: down(silu(gate x) * up x); no biases",
        ]
    elif fam.name == "mistral":
        w = cfg.sliding_window
        n = [
            "LOUD: llama.cpp's converter turns MistralForCausalLM into arch llama and WRITES NO SLIDING-WINDOW KEY. "
            f"This model applies a sliding window of {w} on every layer (transformers), which the GGUF does not "
            "record anywhere; llama.cpp's llama graph has no sliding window and runs this GGUF with full causal "
            f"attention, which changes the logits from position {w} on "
            "(checks.mistakes_max_abs_diff, 'no sliding window'; checks.no_window_* give the last position's "
            "logits and the argmaxes of full attention). An engine must take the window from config.json "
            "(sliding_window) or from engine.sliding_window; the reference logits are transformers', with the window",
            f"sliding window {w}, all layers: a query at position p attends to the keys at positions k with "
            f"p - {w} < k <= p ({w} keys, itself included); positions < {w} see the whole prefix",
            f"otherwise exactly llama: arch llama, {tied}, attn_q / attn_k rows permuted (NORM rope, adjacent "
            f"pairs), freq_base {e.rope_base}",
            gqa, dims, scale, rms, "FFN: down(silu(gate x) * up x)",
        ]
    elif fam.name == "qwen2":
        n = [
            f"arch qwen2; {tied}",
            "blk.N.attn_q.bias, attn_k.bias and attn_v.bias (non-zero here) are added after the projections; "
            "attn_output has no bias",
            neox + f", freq_base {e.rope_base}",
            gqa, dims, scale, rms, "FFN: down(silu(gate x) * up x)",
        ]
    elif fam.name == "qwen3":
        n = [
            f"arch qwen3; {tied}; no biases",
            "blk.N.attn_q_norm.weight / attn_k_norm.weight [head_dim]: RMSNorm of each head's q and k vector (same "
            "eps), after the projection and before rope",
            neox + f", freq_base {e.rope_base}",
            gqa, dims, scale, rms, "FFN: down(silu(gate x) * up x)",
        ]
    elif fam.name == "gemma3":
        w = cfg.sliding_window
        n = [
            f"arch gemma3; {tied}; tensors blk.N.{{attn_norm, attn_q, attn_k, attn_v, attn_q_norm, attn_k_norm, "
            "attn_output, post_attention_norm, ffn_norm, ffn_gate, ffn_up, ffn_down, post_ffw_norm}, output_norm",
            "norms: Gemma3RMSNorm multiplies by (1 + weight); the converter stores 1 + weight, so the engine "
            "multiplies by the stored value as for Llama: x / sqrt(mean(x^2) + eps) * w_gguf (all norms, "
            "including q/k norms and output_norm). The HF safetensors hold the weight without the 1",
            f"embeddings scaled by sqrt(n_embd) = {f32(e.embd_scale)!r} (a float32 constant, not stored) before layer 0",
            "layer: h = x + post_attention_norm(attention(attn_norm(x))); "
            "x' = h + post_ffw_norm(ffn(ffn_norm(h))); ffn = down(gelu_tanh(gate h) * up h)",
            "attention: q = q_norm(q), k = k_norm(k) per head, then " + neox,
            f"queries scaled by query_pre_attn_scalar^-0.5 ({cfg.query_pre_attn_scalar}^-0.5), which the GGUF does not "
            "store: llama.cpp uses 1/sqrt(key_length) (and 1/sqrt(n_embd/head_count) for the 27B). Here "
            f"query_pre_attn_scalar = head_dim = {e.head_dim}, so both agree; n_embd/head_count = "
            f"{e.n_embd / e.n_head:g} would not",
            f"sliding layers: {e.swa_layers} (true = sliding; HF layer_types {cfg.layer_types}, sliding_window_pattern "
            "2). The stock converter does not write which layers slide; this script adds "
            "gemma3.attention.sliding_window_pattern (bool array), which llama.cpp reads. Without that key llama.cpp "
            "(and an engine) must assume Gemma 3's pattern 6: layer i slides unless i % 6 == 5, as in Gemma 3 270M",
            f"sliding window {w} (gemma3.attention.sliding_window): on a sliding layer a query at position p attends "
            f"to the keys at positions k with p - {w} < k <= p; full layers are plain causal",
            f"rope bases: full layers gemma3.rope.freq_base = {e.rope_base}, sliding layers "
            f"gemma3.rope.freq_base_swa = {e.rope_base_swa} (written by this converter; the Gemma 3 270M file has no "
            "such key and llama.cpp then uses 10000)",
            f"final logit soft-capping {e.final_softcap} (gemma3.final_logit_softcapping): logits = cap * "
            "tanh(logits / cap). Real Gemma 3 models have none (key absent). attn_logit_softcapping: none (the "
            "converter asserts it is None; Gemma 3 has none)",
            gqa, dims,
        ]
    elif fam.name == "phi3":
        fac = meta["phi3.rope.scaling.attn_factor"]
        orig = meta["phi3.rope.scaling.original_context_length"]
        q, kv = e.n_head * e.head_dim, e.n_head_kv * e.head_dim
        n = [
            f"arch phi3; {tied}",
            f"blk.N.attn_qkv.weight [{e.n_embd}, {q + 2 * kv}]: HF qkv_proj, not split; output rows 0..{q - 1} are q, "
            f"{q}..{q + kv - 1} k, {q + kv}..{q + 2 * kv - 1} v (heads contiguous in each)",
            f"blk.N.ffn_up.weight [{e.n_embd}, {2 * cfg.intermediate_size}]: HF gate_up_proj, not split; output rows "
            f"0..{cfg.intermediate_size - 1} are the gate, the rest the up projection: ffn = down(silu(gate) * up) "
            "(llama.cpp LLM_FFN_SWIGLU on the fused tensor)",
            "LongRoPE: rope_factors_long.weight and rope_factors_short.weight (global tensors, one divisor per rope "
            f"pair): {neox} / factor_i; cos and sin are both multiplied by phi3.rope.scaling.attn_factor = {fac!r} "
            f"(= sqrt(1 + ln(context_length / {orig}) / ln({orig})), the converter's and transformers' formula), so q "
            "and k are each scaled by it (scores by its square)",
            f"long or short: transformers uses the long factors for a whole forward pass when its largest position "
            f"+ 1 > {orig} (phi3.rope.scaling.original_context_length), else the short ones; llama.cpp chooses by "
            f"context size (n_ctx > {orig}: long). The reference runs {N_TOKENS} (and up to {N_TOKENS + N_GREEDY}) "
            f"positions: long factors at every position, including those < {orig}. checks.short_factor_run: the "
            f"first {orig} tokens alone, short factors (engine context <= {orig})",
            "phi3.attention.sliding_window = 0: no sliding window",
            gqa, dims, scale, rms,
        ]
    elif fam.name == "gpt2":
        nf = 4 * e.n_embd
        n = [
            f"arch gpt2; {tied}; no rope: position_embd.weight [{e.n_embd}, {meta['gpt2.context_length']}] "
            "(learned) row p is added to the token embedding at position p before layer 0",
            "LayerNorm with bias everywhere: (x - mean) / sqrt(var + eps) * w + b (biased variance), "
            "eps gpt2.attention.layer_norm_epsilon; pre-norm blocks, final output_norm",
            f"blk.N.attn_qkv.weight [{e.n_embd}, {3 * e.n_embd}] + bias: HF c_attn (a Conv1D stored [in, out]) "
            f"transposed by the converter into Linear layout, not split: output rows 0..{e.n_embd - 1} are q, then "
            f"k, then v, each {e.n_embd} wide with heads contiguous",
            f"attn_output, ffn_up [{e.n_embd}, {nf}], ffn_down [{nf}, {e.n_embd}]: Conv1D weights transposed likewise, "
            "all with biases; ffn = down(gelu_tanh(up x + b_up)) + b_down (HF gelu_new = tanh approximation); the "
            "converter always writes feed_forward_length = 4 * n_embd",
            "no head_count_kv key (= head_count); " + scale,
        ]
    else:
        raise ValueError(fam.name)
    return n + common


# --------------------------------------------------------------------------
# One family
# --------------------------------------------------------------------------

def run_family(fam: Family, out_dir: Path) -> None:
    print(f"== {fam.name}")
    folder = out_dir / fam.name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    tok_summary = write_tokenizer(fam, folder)
    model = make_model(fam)
    model.save_pretrained(folder)
    for extra in set(os.listdir(folder)) - {"config.json", "generation_config.json", "model.safetensors",
                                              "tokenizer.json", "tokenizer_config.json", "tokenizer.model"}:
        raise SystemExit(f"unexpected file {extra} in {folder}")
    # Reload from the folder: the reference is what the committed files give.
    model = getattr(transformers, fam.hf_class).from_pretrained(folder, dtype=torch.float32,
                                                                attn_implementation="eager").eval()
    gguf_path = folder / f"{fam.name}.gguf"
    chkhsh = convert(fam, folder, gguf_path)
    meta, tok_meta, tensor_list, arrays = read_gguf(gguf_path)
    assert meta["general.architecture"] == fam.arch, meta["general.architecture"]

    tokens = [int(x) for x in np.random.default_rng(TOKENS_SEED).integers(0, VOCAB, N_TOKENS)]
    total = N_TOKENS + N_GREEDY
    logits = all_logits(model, tokens).astype("<f4")
    assert logits.shape == (N_TOKENS, VOCAB)
    e = engine_from_gguf(meta, list(arrays), n_ctx=total)
    cfg = model.config
    if fam.name == "mistral":
        assert not any(k.endswith("sliding_window") for k in meta), "the converter now writes a sliding window"
        e.sliding_window = cfg.sliding_window  # lost by the GGUF: from config.json
        e.swa_layers = [True] * e.n_layer
    ref = ggml_forward(e, arrays, tokens)
    diff = float(np.abs(ref - logits).max())
    print(f"numpy (GGUF tensors) vs transformers: max |diff| {diff:.3g}")
    assert diff < 1e-4, f"{fam.name}: GGUF recomputation differs from transformers by {diff}"
    assert (ref.argmax(-1) == logits.argmax(-1)).all()
    spread = logits.std(-1)
    assert spread.min() > 0.5, f"logits too close to uniform ({spread.min()})"

    # Deliberate mistakes: each must move the logits.
    wrong: dict[str, np.ndarray] = {}

    def mistake(what: str, **changes):
        bad = Engine(**{**e.__dict__, **changes})
        wrong[what] = ggml_forward(bad, arrays, tokens)

    if e.rope != "none":
        mistake("rope layout swapped (norm <-> neox)", rope="neox" if e.rope == "norm" else "norm")
    if 1 < e.n_head_kv < e.n_head:
        mistake("GQA: head h uses KV head h % n_head_kv", gqa_interleaved=True)
    checks: dict[str, Any] = {"numpy_vs_transformers_max_abs_diff": diff}
    if fam.name in ("mistral", "gemma3"):
        w = e.sliding_window
        mistake(f"sliding window {w - 1}", sliding_window=w - 1)
        mistake(f"sliding window {w + 1}", sliding_window=w + 1)
        if fam.name == "mistral":
            mistake("no sliding window (what the GGUF alone says; llama.cpp)", sliding_window=0)
        # transformers itself: the window matters, one position either way.
        for ww in (w - 1, w + 1):
            other = all_logits(variant(model, sliding_window=ww), tokens)
            d = float(np.abs(other - logits).max())
            first = int(np.argmax(np.abs(other - logits).max(-1) > 1e-6))
            print(f"transformers with sliding_window {ww}: max |diff| {d:.3g}, first differing position {first}")
            assert d > 0.01 and first == min(w, ww), (ww, d, first)
            checks[f"transformers_window_{ww}_max_abs_diff"] = d
            checks[f"transformers_window_{ww}_first_changed_position"] = first
    if fam.name == "gemma3":
        mistake("all layers full attention", swa_layers=[False] * e.n_layer)
        mistake("sliding pattern inverted", swa_layers=[not s for s in e.swa_layers])
        mistake("llama.cpp default pattern 6 (all sliding here)", swa_layers=[True] * e.n_layer)
        mistake("local rope base = global", rope_base_swa=e.rope_base)
        mistake("no embedding scale", embd_scale=0.0)
        mistake("no final soft-capping", final_softcap=0.0)
        mistake("attention scale 1/sqrt(hidden/heads)", attn_scale=1 / math.sqrt(e.n_embd / e.n_head))
        minus_one = {k: (v - 1 if k.endswith("norm.weight") else v) for k, v in arrays.items()}
        wrong["norm weights without the +1 (HF values)"] = ggml_forward(e, minus_one, tokens)
    if fam.name == "qwen2":
        no_bias = {k: v for k, v in arrays.items() if not k.endswith(".bias")}
        wrong["q/k/v biases ignored"] = ggml_forward(e, no_bias, tokens)
    if fam.name == "qwen3":
        no_qk = {k: v for k, v in arrays.items() if "_norm" not in k or "attn_norm" in k or "ffn_norm" in k
                 or k.startswith("output_norm")}
        wrong["q/k norms ignored"] = ggml_forward(e, no_qk, tokens)
    if fam.name == "phi3":
        mistake("short factors at 40 positions", rope_factors="rope_factors_short.weight")
        mistake("no rope factors", rope_factors=None)
        mistake("no attn_factor", rope_mscale=1.0)
        swapped = dict(arrays)
        for i in range(e.n_layer):
            up = arrays[f"blk.{i}.ffn_up.weight"]
            swapped[f"blk.{i}.ffn_up.weight"] = np.concatenate(np.split(up, 2, axis=0)[::-1], axis=0)
        wrong["gate/up halves swapped"] = ggml_forward(e, swapped, tokens)
        # Short factors: a run of exactly original_max_position_embeddings tokens.
        orig = meta["phi3.rope.scaling.original_context_length"]
        short_tokens = tokens[:orig]
        short_hf = all_logits(model, short_tokens).astype("<f4")
        e_short = engine_from_gguf(meta, list(arrays), n_ctx=orig)
        assert e_short.rope_factors == "rope_factors_short.weight"
        short_ref = ggml_forward(e_short, arrays, short_tokens)
        ds = float(np.abs(short_ref - short_hf).max())
        dl = float(np.abs(short_hf - logits[:orig]).max())
        print(f"phi3 short run ({orig} tokens): numpy vs transformers {ds:.3g}; vs the long-factor logits {dl:.3g}")
        assert ds < 1e-4 and dl > 0.1
        checks["short_factor_run"] = {
            "what": f"the first {orig} tokens alone (largest position + 1 = {orig} = original context: short factors, "
                    "what llama.cpp does with n_ctx <= original); logits of its last position",
            "n_tokens": orig,
            "numpy_vs_transformers_max_abs_diff": ds,
            "max_abs_diff_vs_long_factor_logits": dl,
            "argmax": [int(i) for i in short_hf.argmax(-1)],
            "last_position_logits_f32_le_base64": b64_f32(short_hf[-1]),
        }
    if fam.name == "gpt2":
        no_pos = {k: v for k, v in arrays.items() if k != "position_embd.weight"}
        wrong["position embeddings ignored"] = ggml_forward(e, no_pos, tokens)
        swapped = dict(arrays)
        for i in range(e.n_layer):
            for suffix in ("weight", "bias"):
                name = f"blk.{i}.attn_qkv.{suffix}"
                q, k, v = np.split(arrays[name], 3, axis=0)
                swapped[name] = np.concatenate([k, q, v], axis=0)
        wrong["fused qkv read as k, q, v"] = ggml_forward(e, swapped, tokens)
    sens = {}
    for what, bad in wrong.items():
        d = float(np.abs(bad - logits).max())
        print(f"sensitivity, {what}: max |diff| {d:.3g}")
        sens[what] = round(d, 4)
        assert d > 0.1, (fam.name, what, d)
    checks["mistakes_max_abs_diff"] = sens
    if fam.name == "mistral":
        full = ggml_forward(Engine(**{**e.__dict__, "sliding_window": 0}), arrays, tokens)
        checks["no_window_last_position_logits_f32_le_base64"] = b64_f32(full[-1])
        checks["no_window_argmax"] = [int(i) for i in full.argmax(-1)]

    generated, margins = greedy(model, tokens, N_GREEDY)
    print(f"greedy: {generated}\n margins: {margins}")

    raw = logits.tobytes()
    hf_config = json.loads((folder / "config.json").read_text())
    files = {f: {"bytes": (folder / f).stat().st_size, "sha256": _common.sha256_file(folder / f)}
             for f in sorted(os.listdir(folder)) if f != "reference.json"}
    _common.write_json(folder / "reference.json", {
        "generator": "Tools/reference_families.py",
        "family": fam.name,
        "transformers_class": fam.hf_class,
        "gguf_arch": fam.arch,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "sentencepiece": sentencepiece.__version__,
        "tokenizers": tokenizers.__version__,
        "converter": f"llama.cpp convert_hf_to_gguf.py from llama-cpp-python 0.3.36 (vendor/llama.cpp), --outtype f32",
        "dtype": "float32",
        "attn_implementation": "eager",
        "seed": SEED,
        "init": f"torch.manual_seed({SEED}); per named_parameters(): 2-D normal(0, {MATRIX_STD}), biases "
                f"normal(0, {BIAS_STD}), norm weights "
                + (f"{NORM_STD} * normal(0, 1) (Gemma: used as 1 + w)" if fam.gemma_norms
                   else f"1 + {NORM_STD} * normal(0, 1)"),
        "files": files,
        # a numbered object, so that each note gets a line of its own in the stable JSON
        "notes": numbered(family_notes(fam, e, meta, list(arrays), model)),
        "engine": e.describe(),
        "hf_config": hf_config,
        "tokenizer": {**tok_summary, **({"gguf_pre": fam.pre, "chkhsh": chkhsh} if fam.pre else {})},
        "gguf": {
            "file": gguf_path.name,
            "sha256": _common.sha256_file(gguf_path),
            "metadata": meta,
            "tokenizer_arrays": tok_meta,
            "tensors": tensor_list,
        },
        "tokens": tokens,
        "n_tokens": N_TOKENS,
        "vocab_size": VOCAB,
        "argmax": [int(i) for i in logits.argmax(-1)],
        "logits_sha256": _common.sha256_bytes(raw),
        "logits_f32_le_base64": base64.b64encode(raw).decode("ascii"),
        "greedy_ids": generated,
        "greedy_margins": margins,
        "checks": checks,
    })


# --------------------------------------------------------------------------
# Gemma 3 270M
# --------------------------------------------------------------------------

def spm_tokenize(text: str, vocab: dict[str, int], scores: list[float]) -> list[int]:
    """llama.cpp's SPM tokenizer (llm_tokenizer_spm), for a text whose symbols are all
    in the vocabulary: spaces become U+2581, no dummy prefix (add_space_prefix false),
    then repeatedly merge the adjacent pair whose concatenation is a token with the
    highest score (leftmost first on ties)."""
    symbols = list(text.replace(" ", "\u2581"))
    assert all(s in vocab for s in symbols)
    while True:
        best = None
        for i in range(len(symbols) - 1):
            merged = symbols[i] + symbols[i + 1]
            if merged in vocab:
                score = scores[vocab[merged]]
                if best is None or score > best[0]:
                    best = (score, i)
        if best is None:
            return [vocab[s] for s in symbols]
        i = best[1]
        symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]


def run_gemma_270m(out: Path) -> None:
    print("== Gemma 3 270M")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    path = _common.gemma_path()
    reader = gguf.GGUFReader(path)
    fields = reader.fields
    tokens = fields["tokenizer.ggml.tokens"].contents()
    scores = fields["tokenizer.ggml.scores"].contents()
    bos = int(fields["tokenizer.ggml.bos_token_id"].contents())
    add_bos = bool(fields["tokenizer.ggml.add_bos_token"].contents())
    assert add_bos and not fields["tokenizer.ggml.add_space_prefix"].contents()
    vocab = {tok: i for i, tok in enumerate(tokens)}
    del reader, fields
    prompt = "The capital of France is"
    ids = [bos] + spm_tokenize(prompt, vocab, scores)

    folder = str(path.parent)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=path.name)
    hf_ids = tokenizer(prompt).input_ids
    assert hf_ids == ids, f"transformers' GGUF tokenizer gives {hf_ids}, llama.cpp's SPM rule {ids}"
    print(f"prompt ids {ids}: {[tokens[i] for i in ids]}")

    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=path.name, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    cfg = model.config
    print(f"config: layers {cfg.num_hidden_layers}, window {cfg.sliding_window}, layer_types {cfg.layer_types}, "
          f"rope {cfg.rope_parameters}, query_pre_attn_scalar {cfg.query_pre_attn_scalar}, "
          f"softcap {cfg.final_logit_softcapping}")
    assert cfg.query_pre_attn_scalar == cfg.head_dim == 256
    assert cfg.final_logit_softcapping is None
    assert cfg.layer_types == ["full_attention" if i % 6 == 5 else "sliding_attention"
                               for i in range(cfg.num_hidden_layers)]
    assert cfg.rope_parameters["sliding_attention"]["rope_theta"] == 10000.0
    assert cfg.rope_parameters["full_attention"]["rope_theta"] == 1000000.0
    last = all_logits(model, ids)[-1].astype("<f4")
    order = np.argsort(-last.astype(np.float64), kind="stable")[:50]
    n_greedy = 32
    generated, margins = greedy(model, ids, n_greedy)
    text = tokenizer.decode(generated)
    print(f"greedy: {generated}\n {text!r}\n margins: {margins}")
    _common.write_json(out, {
        "generator": "Tools/reference_families.py",
        "model": path.name,
        "model_sha256": _common.sha256_file(path),
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "dtype": "float32 (every tensor dequantized by gguf-py, as transformers loads a GGUF)",
        "attn_implementation": "eager",
        "notes": numbered([
            "transformers builds Gemma3ForCausalLM from the GGUF metadata: 18 layers, sliding window 512, layer i "
            "sliding unless i % 6 == 5 (the file has no sliding_window_pattern key; llama.cpp's default 6 agrees), "
            "local rope base 10000 (no freq_base_swa key; llama.cpp's default agrees), global 1e6, "
            "query_pre_attn_scalar 256 = head_dim, no final soft-capping",
            "prompt_ids: BOS (the GGUF sets add_bos_token) then llama.cpp's SPM tokenization (no space prefix); "
            "cross-checked with transformers' tokenizer built from the GGUF",
            "greedy_ids: argmax (first index on ties) recomputed from scratch each step on the whole sequence, "
            "cross-checked with model.generate(do_sample=False); no stop at end-of-turn tokens",
            "greedy_margins: best minus second best logit per step; a quantized engine may legitimately branch "
            "where the margin is small",
            "last_prompt_logits_top50: [id, logit] of the 50 largest float32 logits at the last prompt position "
            "(ties: lower id first); last_prompt_logits_sha256: sha256 of the whole vector, float32 little-endian",
        ]),
        "prompt": prompt,
        "prompt_ids": ids,
        "prompt_pieces": [tokens[i] for i in ids],
        "n_greedy": n_greedy,
        "greedy_ids": generated,
        "greedy_text": text,
        "greedy_margins": margins,
        "vocab_size": int(last.shape[0]),
        "last_prompt_logits_sha256": _common.sha256_bytes(last.tobytes()),
        "last_prompt_logits_top50": [[int(i), f32(last[i])] for i in order],
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help=f"comma-separated subset of {','.join(FAMILIES)}")
    parser.add_argument("--out-dir", default=_common.output_path(OUT_DIR))
    parser.add_argument("--gemma-out", default=_common.output_path(GEMMA_OUT))
    parser.add_argument("--llama-cpp", default=str(LLAMACPP), help="vendored llama.cpp folder (make vocab)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--no-gemma-270m", action="store_true", help="skip the Gemma 3 270M greedy fixture")
    group.add_argument("--only-gemma-270m", action="store_true", help="only the Gemma 3 270M greedy fixture")
    args = parser.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    if not args.only_gemma_270m:
        names = [n for n in args.families.split(",") if n]
        unknown = set(names) - set(FAMILIES)
        if unknown:
            parser.error(f"unknown families {sorted(unknown)}")
        for name in names:
            run_family(FAMILIES[name], Path(args.out_dir))
            # No model file is committed: the GGUF, safetensors and tokenizer.model go into
            # binaries.json, which the tests write back out (Tests/TestFixtures).
            import pack_tiny_models
            pack_tiny_models.pack(Path(args.out_dir) / name)
    if not args.no_gemma_270m:
        run_gemma_270m(Path(args.gemma_out))


if __name__ == "__main__":
    main()
