#!/usr/bin/env python3
"""A tiny random Llama in GGUF layout, with reference logits from transformers.

Produces

* ``Tests/InferenceTests/Resources/tiny-llama.json`` -- the float32 weights of
  a 2-layer Llama with random weights (fixed seed), named and laid out as
  llama.cpp's ``convert_hf_to_gguf.py`` (``LlamaModel``) writes them, the GGUF
  metadata it needs, and the transformers forward pass on 80 fixed tokens:
  the logits at every position and a 16-token greedy continuation.

Why: the real SmolLM2 file tests the Llama forward pass only on what that
model uses.  This model uses what it does not:

* an untied output head (``output.weight``, separate from ``token_embd``);
* Llama 3.1 rope scaling, which llama.cpp stores as the ``rope_freqs.weight``
  tensor: one divisor per rotation pair, ``theta_i = pos * base^(-2i/d) /
  rope_freqs[i]`` (pair 0 is unscaled, pair 1 is in the smoothed band,
  pairs 2..7 are divided by ``factor`` = 8);
* grouped-query attention with 2 query heads per KV head (query head h uses
  KV head h // 2);
* positions past ``original_max_position_embeddings`` (32): the reference
  runs 80 + 16 positions.

The Swift test writes these tensors into a GGUF (or builds the model from them
directly) and compares its logits with ``logits_f32_le_base64``.

Model (transformers ``LlamaConfig``): vocab 272, hidden 64, FFN 96, 2 layers,
4 query heads, 2 KV heads, head_dim 16, max_position_embeddings 512, RMS eps
1e-6, rope theta 10000, rope ``llama3`` (factor 8, low_freq_factor 1,
high_freq_factor 4, original_max_position_embeddings 32), no biases, untied
embeddings.  ``torch.manual_seed(0)``, then every parameter, in
``named_parameters()`` order, is drawn again: matrices normal(0, 0.2), norm
weights 1 + 0.1 * normal(0, 1), so the logits are far from uniform.

Conventions:

* ``tensors``: in the order the converter writes them (``rope_freqs`` first,
  then the checkpoint's tensors).  ``shape`` is GGUF order ``[ne0, ne1]``
  (the reverse of the torch shape, ne0 contiguous); ``f32_le_base64`` is the
  little-endian float32 data in torch row-major order, which is ggml order.
  A torch Linear weight [out, in] is GGUF [in, out]: ``y = W x`` with row j of
  W contiguous.
* ``attn_q`` / ``attn_k`` rows are permuted as the converter's
  ``LlamaModel.permute`` does (K with n_head_kv heads), so that within each
  head rows 2i and 2i+1 form rotation pair i (ggml's normal, "adjacent pairs"
  rope mode), where transformers rotates dims i and i + head_dim/2.
* ``metadata``: the GGUF key/values a ``llama`` GGUF needs (integers are
  u32, floats f32 in a real file).  llama.cpp writes no rope-scaling keys for
  ``llama3``: the scaling is entirely in ``rope_freqs.weight``.
* ``tokens``: 80 ids, uniform in [0, 272) (numpy seed ``TOKENS_SEED``), no
  BOS; positions 0..79.  ``logits_f32_le_base64``: 80 x 272 float32,
  position-major (position p's logits at [p * 272, (p + 1) * 272)).
* ``greedy_ids``: 16 tokens, argmax at every step (first index on ties),
  recomputed from scratch each step and cross-checked against
  ``model.generate(do_sample=False)``; there is no end-of-generation token.
  ``greedy_margins``: best minus second-best logit at each step.

The script asserts that transformers really applies the llama3 scaling
(its ``inv_freq`` differs from unscaled rope, and equals the base frequencies
divided by ``rope_freqs`` to float32 rounding), and recomputes the logits from
the GGUF-layout tensors with an independent float64 numpy transliteration of
llama.cpp's graph (adjacent-pair rope with frequency factors, broadcast GQA).

Usage:  .venv-tools/bin/python Tools/reference_tiny_llama.py [--out PATH]
"""

from __future__ import annotations

import argparse
import base64
import math

import _common  # sets HF_HUB_OFFLINE before transformers is imported
import numpy as np
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

VOCAB = 272
HIDDEN = 64
FFN = 96
LAYERS = 2
N_HEAD = 4
N_HEAD_KV = 2
HEAD_DIM = 16
CONTEXT = 512
RMS_EPS = 1e-6
ROPE_THETA = 10000.0
ROPE_SCALING = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 32,
}
SEED = 0
MATRIX_STD = 0.2
NORM_STD = 0.1
TOKENS_SEED = 20251125
N_TOKENS = 80
N_GREEDY = 16


def f32(x) -> float:
    """A float32 as the Python float with the same value (exact)."""
    return float(np.float32(x))


def b64_f32(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f4").tobytes()).decode("ascii")


def make_config() -> LlamaConfig:
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=FFN,
        num_hidden_layers=LAYERS,
        num_attention_heads=N_HEAD,
        num_key_value_heads=N_HEAD_KV,
        head_dim=HEAD_DIM,
        max_position_embeddings=CONTEXT,
        rms_norm_eps=RMS_EPS,
        # transformers 5 keeps rope_theta and the scaling in one dict.
        rope_parameters={"rope_theta": ROPE_THETA, **ROPE_SCALING},
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        hidden_act="silu",
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    config._attn_implementation = "eager"
    return config


def make_model(config: LlamaConfig) -> LlamaForCausalLM:
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2:
                p.copy_(torch.randn(p.shape) * MATRIX_STD)
            else:
                p.copy_(1.0 + NORM_STD * torch.randn(p.shape))
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    assert not torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
    return model


# --------------------------------------------------------------------------
# llama.cpp convert_hf_to_gguf.py, LlamaModel
# --------------------------------------------------------------------------

def permute(weights: torch.Tensor, n_head: int, n_head_kv: int | None) -> torch.Tensor:
    """``LlamaModel.permute``: within each head, move row i + d/2 next to row i."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


def base_inv_freq() -> torch.Tensor:
    """Unscaled rope inverse frequencies, float32, as both the converter and transformers compute them."""
    return 1.0 / (ROPE_THETA ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float32) / HEAD_DIM))


def rope_freqs() -> torch.Tensor:
    """``LlamaModel.generate_extra_tensors`` for rope_type llama3: one divisor per pair."""
    freqs = base_inv_freq()
    factor = ROPE_SCALING["factor"]
    low_freq_factor = ROPE_SCALING["low_freq_factor"]
    high_freq_factor = ROPE_SCALING["high_freq_factor"]
    old_context_len = ROPE_SCALING["original_max_position_embeddings"]
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    rope_factors = []
    for freq in freqs:  # 0-d float32 tensors, as in the converter
        wavelen = 2 * math.pi / freq
        if wavelen < high_freq_wavelen:
            rope_factors.append(1)
        elif wavelen > low_freq_wavelen:
            rope_factors.append(factor)
        else:
            smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            rope_factors.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(rope_factors, dtype=torch.float32)


def gguf_tensors(model: LlamaForCausalLM) -> list[tuple[str, torch.Tensor]]:
    """(GGUF name, tensor in GGUF layout) in the converter's order."""
    sd = {k: v.detach().to(torch.float32).clone() for k, v in model.state_dict().items()}
    out = [("rope_freqs.weight", rope_freqs()),
           ("token_embd.weight", sd.pop("model.embed_tokens.weight"))]
    per_layer = [
        ("attn_norm", "input_layernorm"),
        ("attn_q", "self_attn.q_proj"),
        ("attn_k", "self_attn.k_proj"),
        ("attn_v", "self_attn.v_proj"),
        ("attn_output", "self_attn.o_proj"),
        ("ffn_norm", "post_attention_layernorm"),
        ("ffn_gate", "mlp.gate_proj"),
        ("ffn_up", "mlp.up_proj"),
        ("ffn_down", "mlp.down_proj"),
    ]
    for layer in range(LAYERS):
        for gguf_name, hf_name in per_layer:
            w = sd.pop(f"model.layers.{layer}.{hf_name}.weight")
            if gguf_name == "attn_q":
                w = permute(w, N_HEAD, N_HEAD)
            elif gguf_name == "attn_k":
                w = permute(w, N_HEAD, N_HEAD_KV)
            out.append((f"blk.{layer}.{gguf_name}.weight", w))
    out.append(("output_norm.weight", sd.pop("model.norm.weight")))
    out.append(("output.weight", sd.pop("lm_head.weight")))
    assert not sd, f"unconverted tensors: {sorted(sd)}"
    return out


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------

def check_rope(model: LlamaForCausalLM, factors: torch.Tensor) -> float:
    """transformers applies llama3 scaling, and base / rope_freqs equals it; returns max |diff|."""
    rotary = model.model.rotary_emb
    assert rotary.rope_type == "llama3", rotary.rope_type
    hf = rotary.inv_freq.detach().to(torch.float32)
    again, _ = ROPE_INIT_FUNCTIONS["llama3"](model.config)
    assert torch.equal(hf, again.to(torch.float32))
    base = base_inv_freq()
    plain, _ = rotary.compute_default_rope_parameters(model.config)
    assert torch.equal(plain.to(torch.float32), base), "unscaled inv_freq differs from the converter's"
    changed = (hf != base).tolist()
    assert changed == [False] + [True] * (HEAD_DIM // 2 - 1), f"llama3 scaling not applied as expected: {changed}"
    engine = base / factors  # what the engine computes: base inverse frequency / rope_freqs
    diff = (engine.double() - hf.double()).abs()
    rel = (diff / hf.double()).max().item()
    assert rel <= 2 * 2.0 ** -24, f"inv_freq / rope_freqs != transformers' llama3 inv_freq (rel {rel:.3g})"
    print(f"inv_freq (transformers llama3): {[f32(x) for x in hf]}")
    print(f"inv_freq / rope_freqs:          {[f32(x) for x in engine]}")
    print(f"max |inv_freq diff| {diff.max().item():.3g} (relative {rel:.3g})")
    return diff.max().item()


def ggml_forward(tensors: dict[str, np.ndarray], tokens: list[int], gqa_interleaved: bool = False) -> np.ndarray:
    """Float64 transliteration of llama.cpp's llama graph on the GGUF-layout tensors
    (numpy shapes = torch shapes = reversed GGUF shapes).  Returns [n_tokens, vocab].
    ``gqa_interleaved`` (wrong on purpose, for the sensitivity check): head h uses KV head h % n_head_kv."""
    t = {k: v.astype(np.float64) for k, v in tensors.items()}
    n = len(tokens)
    pos = np.arange(n, dtype=np.float64)
    theta_scale = ROPE_THETA ** (-2.0 / HEAD_DIM)
    inv = theta_scale ** np.arange(HEAD_DIM // 2) / t["rope_freqs.weight"]  # ggml: theta / freq_factor
    ang = pos[:, None] * inv[None, :]                                        # [n, d/2]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + RMS_EPS) * w

    def rope(x):  # x: [n, heads, d]; ggml normal mode rotates (x[2i], x[2i+1])
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * cos - x1 * sin
        out[..., 1::2] = x0 * sin + x1 * cos
        return out

    x = t["token_embd.weight"][tokens]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for layer in range(LAYERS):
        p = f"blk.{layer}."
        h = rms(x, t[p + "attn_norm.weight"])
        q = rope((h @ t[p + "attn_q.weight"].T).reshape(n, N_HEAD, HEAD_DIM))
        k = rope((h @ t[p + "attn_k.weight"].T).reshape(n, N_HEAD_KV, HEAD_DIM))
        v = (h @ t[p + "attn_v.weight"].T).reshape(n, N_HEAD_KV, HEAD_DIM)
        heads = []
        for head in range(N_HEAD):
            kv = head % N_HEAD_KV if gqa_interleaved else head // (N_HEAD // N_HEAD_KV)
            s = q[:, head] @ k[:, kv].T / math.sqrt(HEAD_DIM) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            heads.append((s / s.sum(-1, keepdims=True)) @ v[:, kv])
        x = x + np.concatenate(heads, -1) @ t[p + "attn_output.weight"].T
        h = rms(x, t[p + "ffn_norm.weight"])
        g = h @ t[p + "ffn_gate.weight"].T
        u = h @ t[p + "ffn_up.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ t[p + "ffn_down.weight"].T
    return rms(x, t["output_norm.weight"]) @ t["output.weight"].T


@torch.no_grad()
def all_logits(model, ids: list[int]) -> torch.Tensor:
    out = model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0].to(torch.float32)


@torch.no_grad()
def greedy(model, prompt: list[int]) -> tuple[list[int], list[float]]:
    ids = list(prompt)
    generated, margins = [], []
    for _ in range(N_GREEDY):
        logits = all_logits(model, ids)[-1]
        top2 = torch.topk(logits, 2)
        token = int(torch.argmax(logits))
        assert token == int(top2.indices[0]) or top2.values[0] == top2.values[1]
        margins.append(round(float(top2.values[0] - top2.values[1]), 4))
        generated.append(token)
        ids.append(token)
    check = model.generate(
        torch.tensor([prompt], dtype=torch.long),
        attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
        do_sample=False, num_beams=1, max_new_tokens=N_GREEDY, min_new_tokens=N_GREEDY,
        eos_token_id=None, bos_token_id=None, pad_token_id=0,
    )
    check = [int(x) for x in check[0, len(prompt):]]
    if check != generated:
        raise SystemExit(f"generate() disagrees:\n {generated}\n {check}")
    return generated, margins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=_common.output_path("Tests/InferenceTests/Resources/tiny-llama.json"))
    args = parser.parse_args()

    torch.use_deterministic_algorithms(True)
    config = make_config()
    model = make_model(config)
    assert model.config._attn_implementation == "eager"

    tensors = gguf_tensors(model)
    factors = dict(tensors)["rope_freqs.weight"]
    print(f"rope_freqs: {[f32(x) for x in factors]}")
    inv_diff = check_rope(model, factors)

    tokens = [int(x) for x in np.random.default_rng(TOKENS_SEED).integers(0, VOCAB, N_TOKENS)]
    logits = all_logits(model, tokens).numpy().astype("<f4")
    assert logits.shape == (N_TOKENS, VOCAB)
    arrays = {name: w.numpy() for name, w in tensors}
    ref = ggml_forward(arrays, tokens)
    check_diff = float(np.abs(ref - logits).max())
    assert check_diff < 1e-3, f"llama.cpp-style recomputation differs from transformers: {check_diff}"
    assert (ref.argmax(-1) == logits.argmax(-1)).all()
    # The fixture must catch the mistakes it is meant for: ignoring rope_freqs, the
    # wrong GQA head mapping, an unpermuted attn_k (= rotating halves instead of pairs).
    no_factors = {**arrays, "rope_freqs.weight": np.ones(HEAD_DIM // 2, np.float32)}
    unpermuted = dict(arrays)
    for i in range(LAYERS):
        unpermuted[f"blk.{i}.attn_k.weight"] = model.model.layers[i].self_attn.k_proj.weight.detach().numpy()
    wrong = {
        "rope_freqs ignored": ggml_forward(no_factors, tokens),
        "GQA h % n_head_kv": ggml_forward(arrays, tokens, gqa_interleaved=True),
        "attn_k unpermuted": ggml_forward(unpermuted, tokens),
    }
    for what, bad in wrong.items():
        d = np.abs(bad - logits)
        print(f"sensitivity, {what}: max |diff| {d.max():.3g}, positions < 32: {d[:32].max():.3g}")
        assert d.max() > 0.1, what
    spread = logits.std(-1)
    print(f"logits: std per position {spread.min():.3g}..{spread.max():.3g}, "
          f"|max| {np.abs(logits).max():.3g}; numpy ggml-graph check max |diff| {check_diff:.3g}")
    assert spread.min() > 0.5, "logits too close to uniform"

    generated, margins = greedy(model, tokens)
    print(f"greedy: {generated}\n margins: {margins}")

    raw = logits.tobytes()
    _common.write_json(args.out, {
        "generator": "Tools/reference_tiny_llama.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "dtype": "float32",
        "attn_implementation": "eager",
        "seed": SEED,
        "init": f"torch.manual_seed({SEED}); per named_parameters(): 2-D normal(0, {MATRIX_STD}), "
                f"1-D 1 + {NORM_STD} * normal(0, 1)",
        "notes": [
            "tensors: GGUF names in llama.cpp convert_hf_to_gguf.py (LlamaModel) order and layout, float32",
            "shape: GGUF order [ne0, ne1], the reverse of the torch shape; f32_le_base64 in torch row-major = ggml order",
            "attn_q / attn_k rows permuted by LlamaModel.permute (k with n_head_kv): rope pairs are adjacent rows (ggml normal rope mode)",
            "rope_freqs.weight: llama3 rope scaling as per-pair divisors, theta_i = pos * freq_base^(-2i/d) / rope_freqs[i]",
            "GQA: query head h uses KV head h // (head_count / head_count_kv)",
            "logits_f32_le_base64: [n_tokens][vocab_size] float32 little-endian, positions 0..n_tokens-1, no BOS",
            "greedy_ids: argmax continuation after tokens (no end-of-generation token); greedy_margins: top1 - top2 per step",
        ],
        "hf_config": {
            "vocab_size": VOCAB,
            "hidden_size": HIDDEN,
            "intermediate_size": FFN,
            "num_hidden_layers": LAYERS,
            "num_attention_heads": N_HEAD,
            "num_key_value_heads": N_HEAD_KV,
            "head_dim": HEAD_DIM,
            "max_position_embeddings": CONTEXT,
            "rms_norm_eps": RMS_EPS,
            "rope_parameters": {"rope_theta": ROPE_THETA, **ROPE_SCALING},
            "tie_word_embeddings": False,
        },
        "metadata": {
            "general.architecture": "llama",
            "llama.block_count": LAYERS,
            "llama.context_length": CONTEXT,
            "llama.embedding_length": HIDDEN,
            "llama.feed_forward_length": FFN,
            "llama.attention.head_count": N_HEAD,
            "llama.attention.head_count_kv": N_HEAD_KV,
            "llama.attention.key_length": HEAD_DIM,
            "llama.attention.value_length": HEAD_DIM,
            "llama.rope.freq_base": ROPE_THETA,
            "llama.rope.dimension_count": HEAD_DIM,
            "llama.attention.layer_norm_rms_epsilon": RMS_EPS,
            "llama.vocab_size": VOCAB,
        },
        "rope_freqs": [f32(x) for x in factors],
        "inv_freq_llama3": [f32(x) for x in model.model.rotary_emb.inv_freq],
        "inv_freq_max_abs_diff": inv_diff,
        "tensors": [
            {
                "name": name,
                "shape": [int(s) for s in reversed(w.shape)],
                "f32_le_base64": b64_f32(w.numpy()),
            }
            for name, w in tensors
        ],
        "tokens": tokens,
        "n_tokens": N_TOKENS,
        "vocab_size": VOCAB,
        "argmax": [int(i) for i in logits.argmax(-1)],
        "logits_sha256": _common.sha256_bytes(raw),
        "logits_f32_le_base64": base64.b64encode(raw).decode("ascii"),
        "greedy_ids": generated,
        "greedy_margins": margins,
    })


if __name__ == "__main__":
    main()
