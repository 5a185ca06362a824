#!/usr/bin/env python3
"""Reference renders of real chat templates with jinja2, exactly as transformers does.

Produces ``Tests/TemplatesTests/Resources/chat-templates.json`` and copies the
chat templates stored in our GGUF models to
``Tests/TemplatesTests/Resources/model-templates/<model>.jinja``.

Why: Nibble renders a model's ``tokenizer.chat_template`` with its own Jinja
interpreter (``Sources/Templates``).  The prompt the model sees must be byte for
byte the one transformers' ``apply_chat_template`` would give, so this script
renders every template we care about with the reference: Python jinja2 in the
environment transformers builds (``_compile_jinja_template`` in
``transformers/utils/chat_template_utils.py``: ``ImmutableSandboxedEnvironment``
with ``trim_blocks=True``, ``lstrip_blocks=True``, the extensions
``AssistantTracker`` (``{% generation %}``) and ``jinja2.ext.loopcontrols``, its
``tojson`` filter and the globals ``raise_exception``, ``strftime_now``,
``dict`` and ``namespace``).  The compiled template is transformers' own object;
only the ``strftime_now`` global is replaced by one that formats the fixed
``NOW`` below, so the renders do not depend on the clock.

Templates (field ``origin``):

* ``vocab``: every ``models/templates/*.jinja`` of the llama.cpp copy vendored
  in the llama-cpp-python sdist (``$NIBBLE_VOCAB_DIR``, default
  ``~/.cache/nibble/llama-cpp-python-0.3.36/vendor/llama.cpp/models``; ``make
  vocab`` installs it).  They are not committed: the test reads them from the
  same folder and checks their ``sha256``.
* ``model``: ``tokenizer.chat_template`` of each GGUF in ``MODELS`` that has one
  (SmolLM2-135M-Instruct; the Gemma 3 270M base model has none).  The text is
  committed next to the fixture (``file`` is relative to the Resources folder).
* ``prompts``: Nibble's fallback templates ``Prompts/templates/*.jinja``.

Variables given to each render, as ``apply_chat_template`` gives them:
``messages`` (a list of ``{"role", "content"}`` dicts, keys in that order),
``add_generation_prompt`` (both values), ``bos_token`` and ``eos_token`` (a
fixed plausible pair per template family, see ``SPECIAL_TOKENS``).  One
deliberate difference: transformers also passes ``tools=None`` and
``documents=None``; here ``tools`` and ``documents`` are absent (undefined),
which is what a chat without tools gives in Nibble (and in llama.cpp).  The two
differ only for the three ``*-tool_use`` templates that iterate ``tools``
unconditionally (transformers fails on them with ``tools=None``).

Each case holds either ``output`` (the rendered string) or ``error`` (``str()``
of the exception jinja2 raised, e.g. ``"System role not supported"`` from
``raise_exception``) with ``error_type`` (its class name).

Usage:  .venv-tools/bin/python Tools/reference_templates.py [--out PATH] [--vocab-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path

import _common  # sets HF_HUB_OFFLINE before transformers is imported
import gguf
import jinja2
import transformers
from transformers.utils.chat_template_utils import _compile_jinja_template

RESOURCES = "Tests/TemplatesTests/Resources"
DEFAULT_OUT = f"{RESOURCES}/chat-templates.json"
DEFAULT_VOCAB_DIR = Path.home() / ".cache" / "nibble" / "llama-cpp-python-0.3.36" / "vendor" / "llama.cpp" / "models"

# strftime_now() formats this time.  Naive, like transformers' datetime.now() (so %z
# and %Z are empty); the fixture records it as UTC and Nibble's tests render in UTC.
NOW = datetime(2026, 11, 25, 16, 0, 0)

# GGUF models whose embedded chat template is part of the fixture: (name, path getter).
MODELS = [
    ("SmolLM2-135M-Instruct", _common.model_path),
    ("gemma-3-270m", _common.gemma_path),
]

# (name prefix, bos_token, eos_token), first match wins; names are template file
# stems.  Plausible pairs per family; the exact tokens matter less than that they
# are fixed and distinct.
SPECIAL_TOKENS: list[tuple[str, str, str]] = [
    ("meta-llama", "<|begin_of_text|>", "<|eot_id|>"),
    ("llama3", "<|begin_of_text|>", "<|eot_id|>"),
    ("NousResearch-Hermes-3", "<|begin_of_text|>", "<|im_end|>"),
    ("fireworks-ai", "<|begin_of_text|>", "<|eot_id|>"),
    ("meetkai", "<|begin_of_text|>", "<|eot_id|>"),
    ("deepseek-ai-DeepSeek-R1-Distill-Llama", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    ("deepseek", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    ("llama-cpp-deepseek", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    ("google-gemma", "<bos>", "<eos>"),
    ("gemma", "<bos>", "<eos>"),
    ("Qwen", "", "<|im_end|>"),
    ("SmolLM2", "<|im_start|>", "<|im_end|>"),
    ("chatml", "<|im_start|>", "<|im_end|>"),
    ("HuggingFaceTB", "", "<|im_end|>"),
    ("ibm-granite", "<|end_of_text|>", "<|end_of_text|>"),
    ("CohereForAI", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    ("Cohere2", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    ("openai-gpt-oss", "<|startoftext|>", "<|return|>"),
    ("microsoft-Phi", "<s>", "<|endoftext|>"),
    ("GLM", "[gMASK]<sop>", "<|endoftext|>"),
    ("moonshotai", "[BOS]", "[EOS]"),
    ("Kimi", "[BOS]", "[EOS]"),
    ("LFM2", "<|startoftext|>", "<|im_end|>"),
    ("MiniMax", "]~!b[", "[e~["),
    ("NVIDIA", "<s>", "</s>"),
]
DEFAULT_TOKENS = ("<s>", "</s>")


def special_tokens(name: str) -> tuple[str, str]:
    for prefix, bos, eos in SPECIAL_TOKENS:
        if name.startswith(prefix):
            return bos, eos
    return DEFAULT_TOKENS


def msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


# (name, messages).  Order is the fixture order.
CONVERSATIONS: list[tuple[str, list[dict[str, str]]]] = [
    ("system_user", [
        msg("system", "You are a helpful assistant."),
        msg("user", "What is the capital of France?"),
    ]),
    ("user_only", [
        msg("user", "Hello!"),
    ]),
    ("multi_turn", [
        msg("system", "You are a concise assistant. Answer in one sentence."),
        msg("user", "Name a prime number."),
        msg("assistant", "7 is a prime number."),
        msg("user", "And an even one?"),
        msg("assistant", "2 is the only even prime."),
        msg("user", "Thanks! What about 9?"),
    ]),
    ("ends_with_assistant", [
        msg("user", "Say hi."),
        msg("assistant", "Hi!"),
        msg("user", "Again."),
        msg("assistant", "Hi again!"),
    ]),
    ("whitespace", [
        msg("system", "  Leading and trailing spaces.  \n"),
        msg("user", "\n\n  indented line\n\ttabbed line\n\n"),
        msg("assistant", " "),
        msg("user", ""),
    ]),
    ("unicode", [
        msg("system", "Réponds en français 🇫🇷."),
        msg("user", "你好，世界! 👩‍👩‍👧‍👦 e\u0301 café مرحبا بالعالم \u2028 Ωmega ß"),
        msg("assistant", "こんにちは 🌍 — «ok» \u200d\u00a0nbsp"),
        msg("user", "Ünïcödé ñ 한국어 \U0001F600"),
    ]),
    ("quotes_and_braces", [
        msg("user", "He said \"hi\" and 'bye'. Path: C:\\temp\\new\\x.txt \\n is not a newline."),
        msg("assistant", "{{ not a tag }} {% if x %}raw{% endif %} {# comment #} <|im_end|> </s> [INST]"),
        msg("user", "JSON: {\"a\": [1, 2, {\"b\": null}], \"c\": \"\\u00e9\"} and <b>html</b> & stuff"),
    ]),
    ("reasoning", [
        msg("system", "Think step by step."),
        msg("user", "What is 2+2?"),
        msg("assistant", "<think>\nThe user asks 2+2. That is 4.\n</think>\n\nThe answer is 4."),
        msg("user", "And 3+3?"),
    ]),
]


def fixed_strftime_now(fmt: str) -> str:
    return NOW.strftime(fmt)


def render(source: str, messages: list[dict[str, str]], add_generation_prompt: bool, bos: str, eos: str) -> dict:
    template = _compile_jinja_template(source)
    template.environment.globals["strftime_now"] = fixed_strftime_now
    try:
        output = template.render(
            messages=[dict(m) for m in messages],
            add_generation_prompt=add_generation_prompt,
            bos_token=bos,
            eos_token=eos,
        )
    except Exception as e:  # noqa: BLE001 -- every failure is part of the reference
        return {"error": str(e), "error_type": type(e).__name__}
    return {"output": output}


def model_templates() -> list[tuple[str, str, str]]:
    """(name, file relative to Resources, text) of the templates stored in our GGUF models."""
    found = []
    for name, getter in MODELS:
        path = getter()
        reader = gguf.GGUFReader(str(path))
        field = reader.fields.get("tokenizer.chat_template")
        if field is None:
            print(f"{path.name}: no tokenizer.chat_template", file=sys.stderr)
            continue
        text = field.contents()
        relative = f"model-templates/{name}.jinja"
        out = _common.output_path(f"{RESOURCES}/{relative}")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {RESOURCES}/{relative} ({len(text.encode('utf-8'))} bytes)")
        found.append((name, relative, text))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=_common.output_path(DEFAULT_OUT), type=Path)
    parser.add_argument("--vocab-dir", type=Path,
                        default=Path(os.environ.get("NIBBLE_VOCAB_DIR") or DEFAULT_VOCAB_DIR))
    args = parser.parse_args()

    template_dir = args.vocab_dir.expanduser() / "templates"
    vocab_files = sorted(template_dir.glob("*.jinja"))
    if not vocab_files:
        sys.exit(f"no templates in {template_dir} (run `make vocab` or set NIBBLE_VOCAB_DIR)")
    prompt_files = sorted(_common.output_path("Prompts/templates").glob("*.jinja"))

    sources: list[dict] = []
    for path in vocab_files:
        text = path.read_text(encoding="utf-8")
        sources.append({"name": path.stem, "origin": "vocab", "file": path.name, "text": text})
    for name, relative, text in model_templates():
        sources.append({"name": name, "origin": "model", "file": relative, "text": text})
    for path in prompt_files:
        text = path.read_text(encoding="utf-8")
        sources.append({"name": path.stem, "origin": "prompts", "file": path.name, "text": text})

    templates = []
    n_cases = n_errors = 0
    for source in sources:
        bos, eos = special_tokens(source["name"])
        cases = []
        for conversation, messages in CONVERSATIONS:
            for add_generation_prompt in (False, True):
                case = {"conversation": conversation, "add_generation_prompt": add_generation_prompt}
                case.update(render(source["text"], messages, add_generation_prompt, bos, eos))
                n_errors += "error" in case
                cases.append(case)
        n_cases += len(cases)
        templates.append({
            "name": source["name"],
            "origin": source["origin"],
            "file": source["file"],
            "sha256": _common.sha256_bytes(source["text"].encode("utf-8")),
            "bos_token": bos,
            "eos_token": eos,
            "cases": cases,
        })

    fixture = {
        "generator": "Tools/reference_templates.py",
        "jinja2_version": jinja2.__version__,
        "transformers_version": transformers.__version__,
        "environment": "transformers.utils.chat_template_utils._compile_jinja_template "
                       "(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, AssistantTracker, loopcontrols)",
        "now": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),  # naive time, read as UTC
        "conversations": {name: messages for name, messages in CONVERSATIONS},
        "templates": templates,
    }
    _common.write_json(args.out, fixture)
    print(f"{len(templates)} templates, {n_cases} cases, {n_errors} expected errors")


if __name__ == "__main__":
    main()
