#!/usr/bin/env python3
"""Reference outputs of the default model, computed with PyTorch/transformers.

Produces

* ``Tests/InferenceTests/Resources/smollm2-greedy.json`` -- greedy
  continuations (argmax at every step, no sampling) of three short prompts,
  up to 48 new tokens or the first end-of-generation token;
* ``Tests/InferenceTests/Resources/smollm2-logits.json`` -- the float32 logits
  of the last position of one prompt, for the whole vocabulary.

Why: Nibble runs the GGUF with its own engine.  transformers can load the
same GGUF file (it dequantizes every tensor to float32 and un-permutes the
Q/K projections that the llama.cpp converter permuted), so it gives an
independent implementation of the same network to test against: the logits
fixture checks the forward pass numerically, the greedy fixture checks the
whole decode loop (tokens, KV cache, stopping).

Everything runs in float32 on the CPU with eager attention (no SDPA kernels),
and every greedy step is recomputed from scratch on the full sequence (no KV
cache) so the reference does not depend on transformers' cache code; it is
cross-checked against ``model.generate(do_sample=False)``.

Prompts are tokenized WITHOUT special tokens: the GGUF says
``tokenizer.ggml.add_bos_token = false`` (recorded in the JSON), so a
llama.cpp-style engine adds no BOS either.

Each greedy case also records ``margins``: the gap between the best and the
second best logit at every step.  A small margin marks a step where an engine
with different (but legitimate) rounding, e.g. quantized dot products, may pick
another token; tests can use it to decide how strict to be.

Usage:  .venv-tools/bin/python Tools/reference_generate.py
        [--greedy-out PATH] [--logits-out PATH]      (model: $NIBBLE_MODEL)
"""

from __future__ import annotations

import argparse
import base64

import _common  # sets HF_HUB_OFFLINE before transformers is imported
import gguf
import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

GREEDY_PROMPTS = ["Once upon a time", "The capital of France is", "def fibonacci(n):"]
LOGITS_PROMPT = "The quick brown fox jumps over the lazy dog"
MAX_NEW_TOKENS = 48


def gguf_add_bos(path) -> bool | None:
    """``tokenizer.ggml.add_bos_token`` from the GGUF metadata (None if absent)."""
    field = gguf.GGUFReader(path).fields.get("tokenizer.ggml.add_bos_token")
    return None if field is None else bool(field.contents())


def stop_token_ids(model, tokenizer) -> list[int]:
    """End-of-generation ids: the generation config's eos ids and the tokenizer's EOS."""
    ids: set[int] = set()
    eos = model.generation_config.eos_token_id
    if isinstance(eos, int):
        ids.add(eos)
    elif eos is not None:
        ids.update(int(i) for i in eos)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return sorted(ids)


@torch.no_grad()
def last_logits(model, ids: list[int]) -> torch.Tensor:
    """float32 logits of the last position, full forward pass, no cache."""
    out = model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0, -1].to(torch.float32)


@torch.no_grad()
def greedy(model, prompt_ids: list[int], stops: list[int]) -> tuple[list[int], list[float]]:
    ids = list(prompt_ids)
    generated: list[int] = []
    margins: list[float] = []
    for _ in range(MAX_NEW_TOKENS):
        logits = last_logits(model, ids)
        top2 = torch.topk(logits, 2)
        token = int(torch.argmax(logits))  # first index on ties
        assert token == int(top2.indices[0]) or top2.values[0] == top2.values[1]
        margins.append(round(float(top2.values[0] - top2.values[1]), 4))
        generated.append(token)
        ids.append(token)
        if token in stops:
            break
    return generated, margins


@torch.no_grad()
def generate_check(model, prompt_ids: list[int], stops: list[int]) -> list[int]:
    """The same greedy decode via transformers' own generate() (with KV cache)."""
    out = model.generate(
        torch.tensor([prompt_ids], dtype=torch.long),
        attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
        do_sample=False,
        num_beams=1,
        max_new_tokens=MAX_NEW_TOKENS,
        eos_token_id=stops,
        pad_token_id=stops[0],
    )
    return [int(t) for t in out[0, len(prompt_ids):]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--greedy-out", default=_common.output_path(
        "Tests/InferenceTests/Resources/smollm2-greedy.json"))
    parser.add_argument("--logits-out", default=_common.output_path(
        "Tests/InferenceTests/Resources/smollm2-logits.json"))
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)

    path = _common.model_path()
    sha = _common.sha256_file(path)
    add_bos = gguf_add_bos(path)

    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    stops = stop_token_ids(model, tokenizer)
    print(f"stop tokens: {stops} {tokenizer.convert_ids_to_tokens(stops)}")

    header = {
        "model": path.name,
        "sha256": sha,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "gguf": gguf.__version__ if hasattr(gguf, "__version__") else None,
        "dtype": "float32",
        "attn_implementation": "eager",
        "add_special_tokens": False,
        "gguf_add_bos_token": add_bos,
    }
    if header["gguf"] is None:
        del header["gguf"]

    # ---- greedy --------------------------------------------------------
    cases = []
    for prompt in GREEDY_PROMPTS:
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
        generated, margins = greedy(model, prompt_ids, stops)
        check = generate_check(model, prompt_ids, stops)
        if check != generated:
            raise SystemExit(f"generate() disagrees for {prompt!r}:\n {generated}\n {check}")
        stop = generated[-1] if generated and generated[-1] in stops else None
        body = generated[:-1] if stop is not None else generated
        text = tokenizer.decode(body, skip_special_tokens=False)
        where = f"stop token {stop} as token #{len(generated)}" if stop is not None else "no stop token"
        print(f"{prompt!r}: {len(generated)} tokens, {where}\n  {text!r}\n  {generated}")
        cases.append({
            "prompt": prompt,
            "prompt_ids": prompt_ids,
            "generated_ids": generated,
            "stop_token": stop,
            "text": text,
            "margins": margins,
        })
    _common.write_json(args.greedy_out, {
        **header,
        "max_new_tokens": MAX_NEW_TOKENS,
        "stop_token_ids": stops,
        "cases": cases,
    })

    # ---- logits --------------------------------------------------------
    prompt_ids = tokenizer.encode(LOGITS_PROMPT, add_special_tokens=False)
    logits = last_logits(model, prompt_ids).numpy().astype("<f4")
    raw = logits.tobytes()
    order = np.argsort(-logits, kind="stable")[:5]
    top5 = [[int(i), float(logits[i])] for i in order]
    print(f"logits: argmax {int(np.argmax(logits))} "
          f"({tokenizer.convert_ids_to_tokens(int(np.argmax(logits)))!r}) top5 {top5}")
    _common.write_json(args.logits_out, {
        **header,
        "prompt": LOGITS_PROMPT,
        "prompt_ids": prompt_ids,
        "position": len(prompt_ids) - 1,
        "vocab_size": int(logits.shape[0]),
        "argmax": int(np.argmax(logits)),
        "max": float(logits.max()),
        "min": float(logits.min()),
        "mean": float(logits.astype(np.float64).mean()),
        "top5": top5,
        "logits_sha256": _common.sha256_bytes(raw),
        "logits_f32_le_base64": base64.b64encode(raw).decode("ascii"),
    })


if __name__ == "__main__":
    main()
