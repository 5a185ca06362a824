#!/usr/bin/env python3
"""Reference ids of Hugging Face ``tokenizers`` for tokenizer.json files.

Produces ``Tests/TokenizersTests/Resources/tokenizer-json.json`` and the trimmed
tokenizer files ``Tests/TokenizersTests/Resources/tokenizer-json/<name>/``;
with ``--make-tokenizers DIR`` it only writes the large tokenizer.json files the
fixture is computed from (the Makefile's ``hf-tokenizers`` target).

Why: Nibble runs a Hugging Face folder's ``tokenizer.json`` with its own Swift
pipeline (added tokens, normalizers, pre-tokenizers, BPE, post-processor,
decoders).  This fixture gives, for the project's varied text set (the 58
strings of ``reference_tokenize.py``), the ids ``tokenizers`` produces:

* ``ids``: ``encode(text, add_special_tokens=False)`` (special-token text
  becomes the special token, as Nibble's ``parseSpecial: true``);
* ``ids_added``: ``add_special_tokens=True`` (Nibble's ``addBOS: true``),
  written only where it differs from ``added_prefix + ids + added_suffix``;
* ``ids_plain``: with ``encode_special_tokens = True`` (special-token text is
  plain text: Nibble's ``parseSpecial: false``), only where it differs;
* ``decoded`` / ``decoded_skip``: ``decode(ids)`` without / with
  ``skip_special_tokens``, only where they differ from the text.

Tokenizers:

* each tiny model's committed tokenizer.json
  (``Tests/InferenceTests/Resources/tiny-models/<family>``);
* tokenizer.json files made from GGUF files with transformers' own GGUF
  tokenizer conversion (``transformers.integrations.gguf.gguf_tokenizer_mapping``,
  no torch needed; the GGUF metadata is read by a small reader below, because
  ``gguf.GGUFReader`` takes a minute on Gemma 3):
  ``smollm2`` (SmolLM2-135M-Instruct, ``make model``), ``gemma3`` (Gemma 3
  270M, ``make gemma``), and from llama.cpp's vocab-only GGUFs (``make
  vocab``): ``llama-bpe`` (Llama 3: Split with the Llama 3 regex + ByteLevel),
  ``qwen2`` (Split with the Qwen 2 regex + ByteLevel), ``gpt-2`` (ByteLevel
  with its regex) and ``llama-spm`` (Llama 2: Metaspace, byte fallback).

  Two adjustments follow the models' published tokenizer.json files, which a
  GGUF does not carry: SmolLM2's pre-tokenizer is
  ``Sequence[Digits(individual_digits=True), ByteLevel]`` (the converter gives
  plain ByteLevel; llama.cpp's ``smollm`` also splits digits), and where the
  GGUF says ``add_bos_token`` the post-processor is the template ``<bos> $A``
  (inside ``Sequence[ByteLevel, TemplateProcessing]`` for byte-level
  vocabularies, as Llama 3's file has it), which transformers adds at load
  time from ``tokenizer_config.json``.

  Variants of these (``VARIANTS``, ``make_variant``) cover what no converted
  file has: ``llama-spm-legacy`` (the published Llama 2 / Mistral layout:
  Prepend + Replace normalizers, no pre-tokenizer), ``gpt-2-nfkc`` (an NFKC
  normalizer) and ``llama-spm-metaspace`` (Metaspace with ``split`` and
  ``prepend_scheme: always``, the Metaspace decoder), each with added tokens
  of every flag (``lstrip``, ``rstrip``, ``single_word``, ``normalized``,
  special or not) and 9 more texts (``ADDED_TEXTS``, the entry's
  ``extra_texts``).  Qwen 2's file gets the NFC normalizer of the published one.

  These files are 3.5 to 33 MB, so they are not committed: the fixture's ids
  are computed on them, then each is trimmed (``trim``) to the tokens and
  merges the text set uses (26 to 90 KB), ``tokenizers`` is run again on the
  trimmed file and must give the same ids and decoded text, and the trimmed
  file is committed for the Swift test (which needs no Python and no GGUF).
  The Swift test also runs on the full files when ``make hf-tokenizers`` has
  written them.

The fixture records the sha256 of each committed file (``sha256``) and of the
full file (``source_sha256``), so the Swift test fails clearly when it finds a
different file.

Usage (``make fixtures`` runs both; the packages are those of
``requirements-hf-tokenizers.txt``, also pinned in ``requirements.txt``):
    make hf-tokenizers    # = --make-tokenizers ~/.cache/nibble/hf-tokenizers
    .venv-tools/bin/python Tools/reference_tokenizer_json.py --tokenizers ~/.cache/nibble/hf-tokenizers
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, output_path, sha256_file, write_json  # noqa: E402

import numpy as np  # noqa: E402
from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors  # noqa: E402

FIXTURE = "Tests/TokenizersTests/Resources/tokenizer-json.json"
TRIMMED_DIR = "Tests/TokenizersTests/Resources/tokenizer-json"
TINY_DIR = REPO_ROOT / "Tests/InferenceTests/Resources/tiny-models"
TINY_FAMILIES = ["llama", "mistral", "phi3", "gemma3", "qwen2", "qwen3", "gpt2"]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nibble"
VOCAB_DIR = Path(os.environ.get("NIBBLE_VOCAB_DIR") or CACHE / "llama-cpp-python-0.3.36/vendor/llama.cpp/models")
NAMES = ["smollm2", "gemma3", "llama-bpe", "qwen2", "gpt-2", "llama-spm"]
# Variants of the files above for what no converted file has (see make_variant):
# name → (base, extra texts).
ADDED_TEXTS = [
    ("added_lstrip", "a <mask> b  <mask>c"),
    ("added_lstrip_start", "  <mask>x"),
    ("added_rstrip", "x [SEP]  y[SEP]z"),
    ("added_both", "a  [BR]  b[BR]c [BR]"),
    ("added_single_word", "ping pong pinging (ping) xping ping"),
    ("added_normalized", "hello world, say hello world! hello  world"),
    ("added_raw", "Ünïcode Ünï ünï"),
    ("added_fullwidth", "ｆｉｎｅ ﬁne fine"),
    ("added_mixed", "<mask>[SEP]ping hello world [BR] Ünï ﬁne"),
]
VARIANTS = {
    # The layout of the published Llama 2 / Mistral files: Prepend + Replace normalizers, no
    # pre-tokenizer; with added tokens of every flag (`normalized` ones see "▁" for spaces).
    "llama-spm-legacy": "llama-spm",
    # Byte-level BPE behind an NFKC normalizer, with the same added tokens.
    "gpt-2-nfkc": "gpt-2",
    # Metaspace splitting at every "▁" with prepend_scheme "always" (also after added tokens), and
    # the Metaspace decoder after ByteFallback, with the same added tokens.
    "llama-spm-metaspace": "llama-spm",
}


def gguf_sources(vocab_dir: Path) -> dict[str, Path]:
    """name → the GGUF file its tokenizer.json is made from."""
    return {
        "smollm2": Path(os.environ.get("NIBBLE_MODEL") or CACHE / "models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        "gemma3": Path(os.environ.get("NIBBLE_GEMMA") or CACHE / "models/gemma-3-270m-q4_k_m.gguf"),
        **{name: vocab_dir / f"ggml-vocab-{name}.gguf" for name in NAMES[2:]},
    }


def varied_texts() -> list[tuple[str, str]]:
    """The (name, text) cases of reference_tokenize.py, read without importing it (it needs `regex`)."""
    tree = ast.parse((REPO_ROOT / "Tools/reference_tokenize.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "CASES":
            return eval(compile(ast.Expression(node.value), "reference_tokenize.py", "eval"), {})
    raise SystemExit("CASES not found in reference_tokenize.py")


# --------------------------------------------------------------------------
# GGUF metadata (only the header; arrays of numbers through numpy)
# --------------------------------------------------------------------------

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1", 10: "<u8", 11: "<i8", 12: "<f8"}


def read_gguf_metadata(path: Path) -> dict:
    data = path.read_bytes() if path.stat().st_size < (64 << 20) else _read_header(path)
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        pos += n
        return data[pos - n:pos]

    def string() -> str:
        (n,) = struct.unpack("<Q", take(8))
        return take(n).decode("utf-8", errors="surrogateescape")

    def value(t: int):
        nonlocal pos
        if t == 8:
            return string()
        if t == 9:
            (item, n) = struct.unpack("<IQ", take(12))
            if item == 8:
                return [string() for _ in range(n)]
            if item in _NUMPY:
                arr = np.frombuffer(data, dtype=_NUMPY[item], count=n, offset=pos)
                pos += arr.nbytes
                return arr.tolist()
            return [value(item) for _ in range(n)]
        return struct.unpack(_SCALAR[t], take(struct.calcsize(_SCALAR[t])))[0]

    assert take(4) == b"GGUF", f"{path} is not a GGUF file"
    (_version, _tensors, count) = struct.unpack("<IQQ", take(20))
    metadata = {}
    for _ in range(count):
        key = string()
        (t,) = struct.unpack("<I", take(4))
        metadata[key] = value(t)
    return metadata


def _read_header(path: Path) -> bytes:
    # Model files: the metadata lies in the first tens of MB (Gemma 3's vocabulary ~ 10 MB).
    with open(path, "rb") as f:
        return f.read(64 << 20)


# --------------------------------------------------------------------------
# tokenizer.json from a GGUF, with transformers' converter
# --------------------------------------------------------------------------

def make_tokenizer(name: str, gguf_path: Path, out_dir: Path) -> None:
    from transformers.integrations.gguf.gguf_tokenizer_mapping import (
        GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer)

    metadata = read_gguf_metadata(gguf_path)
    architecture = metadata["general.architecture"]
    tokenizer_dict = {n: metadata[f"tokenizer.{k}"] for k, n in GGUF_TOKENIZER_MAPPING["tokenizer"].items()
                      if f"tokenizer.{k}" in metadata}
    backend, _ = convert_gguf_tokenizer(architecture, tokenizer_dict)
    tokens = tokenizer_dict["tokens"]
    byte_level = tokenizer_dict.get("tokenizer_type") == "gpt2"

    if name == "smollm2":
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ])
    if name == "qwen2":
        backend.normalizer = normalizers.NFC()  # as Qwen2's published tokenizer.json

    # tokenizer_config.json as transformers' get_gguf_tokenizer derives it.
    add_bos = metadata.get("tokenizer.ggml.add_bos_token")
    if add_bos is None and (tokenizer_dict.get("tokenizer_type") == "llama" or name == "llama-bpe"):
        add_bos = True  # llama.cpp's default for these, and what the published Llama 2 / 3 files do
    config = {}
    for key, meta in [("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"),
                      ("unk_token", "unknown_token_id"), ("pad_token", "padding_token_id")]:
        token_id = metadata.get(f"tokenizer.ggml.{meta}")
        config[key] = tokens[token_id] if token_id is not None and token_id < len(tokens) else None
    config["add_bos_token"] = bool(add_bos)
    config["add_eos_token"] = bool(metadata.get("tokenizer.ggml.add_eos_token", False))

    if config["add_bos_token"] and config["bos_token"] is not None:
        bos = config["bos_token"]
        template = processors.TemplateProcessing(single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                                                 special_tokens=[(bos, backend.token_to_id(bos))])
        backend.post_processor = (processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
                                  if byte_level else template)

    out_dir.mkdir(parents=True, exist_ok=True)
    backend.save(str(out_dir / "tokenizer.json"))
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def make_variant(name: str, base: Path, out_dir: Path) -> None:
    """A copy of ``base`` with other normalizers and added tokens of every kind (``VARIANTS``)."""
    tokenizer = Tokenizer.from_file(str(base / "tokenizer.json"))
    if name == "llama-spm-legacy":
        tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tokenizer.pre_tokenizer = None
    elif name == "gpt-2-nfkc":
        tokenizer.normalizer = normalizers.NFKC()
    elif name == "llama-spm-metaspace":
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
        tokenizer.decoder = decoders.Sequence([
            decoders.ByteFallback(), decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)])
    tokenizer.add_special_tokens([
        AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True),
        AddedToken("[SEP]", lstrip=False, rstrip=True, normalized=False, special=True),
    ])
    tokenizer.add_tokens([
        AddedToken("[BR]", lstrip=True, rstrip=True, normalized=True, special=False),
        AddedToken("ping", single_word=True, normalized=False, special=False),
        AddedToken("hello world", normalized=True, special=False),
        AddedToken("Ünï", normalized=False, special=False),
        AddedToken("ﬁne", normalized=True, special=False),  # NFKC: "fine"
    ])
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    (out_dir / "tokenizer_config.json").write_bytes((base / "tokenizer_config.json").read_bytes())


def make_tokenizers(root: Path, vocab_dir: Path) -> None:
    for name, path in gguf_sources(vocab_dir).items():
        start = time.time()
        if not path.exists():
            raise SystemExit(f"{path} is missing (make model gemma vocab)")
        make_tokenizer(name, path, root / name)
        print(f"{root / name}/tokenizer.json ({(root / name / 'tokenizer.json').stat().st_size / 1e6:.1f} MB, "
              f"{time.time() - start:.1f} s)")
    for name, base in VARIANTS.items():
        make_variant(name, root / base, root / name)
        print(f"{root / name}/tokenizer.json (variant of {base})")


# --------------------------------------------------------------------------
# Reference ids
# --------------------------------------------------------------------------

def reference(folder: Path, label: str, cases: list[tuple[str, str]]) -> dict:
    path = folder / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(path))
    # add_special_tokens=True wraps the ids in the template's tokens (checked for every case below).
    # (All template tokens come first in the files here; a suffix would show as ids_added.)
    empty = tokenizer.encode("", add_special_tokens=True).ids
    out = {"name": label, "sha256": sha256_file(path), "added_prefix": empty, "added_suffix": [], "cases": []}
    for name, text in cases:
        tokenizer.encode_special_tokens = False
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        added = tokenizer.encode(text, add_special_tokens=True).ids
        tokenizer.encode_special_tokens = True
        plain = tokenizer.encode(text, add_special_tokens=False).ids
        tokenizer.encode_special_tokens = False
        case = {"name": name, "ids": ids}
        if added != out["added_prefix"] + ids + out["added_suffix"]:
            case["ids_added"] = added
        if plain != ids:
            case["ids_plain"] = plain
        decoded = tokenizer.decode(ids, skip_special_tokens=False)
        skipped = tokenizer.decode(ids, skip_special_tokens=True)
        if decoded != text:
            case["decoded"] = decoded
        if skipped != decoded:
            case["decoded_skip"] = skipped
        out["cases"].append(case)
    return out


def trim(source: Path, out_dir: Path, cases: list[tuple[str, str]]) -> None:
    """Writes ``out_dir/tokenizer.json``: ``source`` with only what encoding ``cases`` uses.

    Kept: every token any case encodes to (each mode, ``add_special_tokens`` too), and, closed
    under merging, every merge whose result is kept with its two parts; the byte-fallback
    tokens, the highest id (so the vocabulary size stays), the tokens tokenizer_config.json and
    the post-processor name, and the added tokens whose text occurs in a case (raw or
    normalized) or whose id is kept.  BPE applies the lowest-ranked available merge at each
    step, so dropping merges that never fire leaves the ids of these texts unchanged; the
    caller checks that ``tokenizers`` gives the same ids and decodes on the trimmed file.
    """
    data = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    config = json.loads((source / "tokenizer_config.json").read_text(encoding="utf-8"))
    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    model = data["model"]
    vocab: dict[str, int] = model["vocab"]
    text_of = {i: t for t, i in vocab.items()}
    for token in data.get("added_tokens") or []:
        text_of.setdefault(token["id"], token["content"])
    pairs = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    producers: dict[str, list[int]] = {}
    for rank, (a, b) in enumerate(pairs):
        producers.setdefault(a + b, []).append(rank)

    used: set[int] = set()
    normalized_texts = []
    for _, text in cases:
        for special in (False, True):
            tokenizer.encode_special_tokens = special
            for add in (False, True):
                used.update(tokenizer.encode(text, add_special_tokens=add).ids)
        tokenizer.encode_special_tokens = False
        if tokenizer.normalizer is not None:
            normalized_texts.append(tokenizer.normalizer.normalize_str(text))
    for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
        if config.get(key) is not None and config[key] in vocab:
            used.add(vocab[config[key]])
    for special in ((data.get("post_processor") or {}).get("special_tokens") or {}).values():
        used.update(special["ids"])
    for processor in (data.get("post_processor") or {}).get("processors") or []:
        for special in (processor.get("special_tokens") or {}).values():
            used.update(special["ids"])
    haystack = [t for _, t in cases] + normalized_texts
    added = [t for t in data.get("added_tokens") or []
             if t["id"] in used or any(t["content"] in h for h in haystack)
             or t["content"] in ("<start_of_turn>", "<end_of_turn>", "<|im_start|>", "<|im_end|>", "<|eot_id|>")]
    used.update(t["id"] for t in added)
    used.add(max(vocab.values()))

    keep = {text_of[i] for i in used if i in text_of}
    if model.get("unk_token"):
        keep.add(model["unk_token"])
    if model.get("byte_fallback"):
        keep.update(f"<0x{b:02X}>" for b in range(256) if f"<0x{b:02X}>" in vocab)
    stack = list(keep)
    while stack:
        for rank in producers.get(stack.pop(), []):
            for part in pairs[rank]:
                if part not in keep:
                    keep.add(part)
                    stack.append(part)
    # An added token missing from the model's vocabulary gets the id len(vocab) when loaded
    # (AddedVocabulary::add_tokens), which trimming changes: it goes into the vocabulary with its id
    # (Llama 3's <|endoftext|>; no pre-tokenized word can equal it, and the ids are checked).
    for token in added:
        vocab.setdefault(token["content"], token["id"])
        keep.add(token["content"])
    model["vocab"] = {t: i for t, i in sorted(vocab.items(), key=lambda item: item[1]) if t in keep}
    model["merges"] = [m for m, (a, b) in zip(model["merges"], pairs) if a + b in keep]
    data["added_tokens"] = added

    out_dir.mkdir(parents=True, exist_ok=True)
    # One vocabulary entry / merge per line keeps the committed files diffable.
    text = json.dumps(data, ensure_ascii=False, indent=1)
    (out_dir / "tokenizer.json").write_text(text + "\n", encoding="utf-8")
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n",
                                                    encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--make-tokenizers", type=Path, metavar="DIR",
                        help="write DIR/<name>/tokenizer.json (+ tokenizer_config.json) from the GGUF files and exit")
    parser.add_argument("--vocab-dir", type=Path, default=VOCAB_DIR,
                        help="llama.cpp's models/ folder with ggml-vocab-*.gguf (default: %(default)s)")
    parser.add_argument("--tokenizers", type=Path, metavar="DIR", default=CACHE / "hf-tokenizers",
                        help="where --make-tokenizers wrote them (default: %(default)s)")
    args = parser.parse_args()
    if args.make_tokenizers:
        make_tokenizers(args.make_tokenizers, args.vocab_dir)
        return

    cases = varied_texts()
    import tokenizers
    fixture = {
        "generator": "Tools/reference_tokenizer_json.py",
        "tokenizers_version": tokenizers.__version__,
        "texts": [{"name": n, "text": t} for n, t in cases],
        "tokenizers": [],
    }
    for family in TINY_FAMILIES:
        fixture["tokenizers"].append(dict(reference(TINY_DIR / family, f"tiny-{family}", cases),
                                          folder=f"Tests/InferenceTests/Resources/tiny-models/{family}"))
    for name in NAMES + list(VARIANTS):
        texts = cases + ADDED_TEXTS if name in VARIANTS else cases
        full = reference(args.tokenizers / name, name, texts)
        folder = f"{TRIMMED_DIR}/{name}"
        trim(args.tokenizers / name, REPO_ROOT / folder, texts)
        trimmed = reference(REPO_ROOT / folder, name, texts)
        if trimmed["cases"] != full["cases"] or trimmed["added_prefix"] != full["added_prefix"]:
            bad = [c["name"] for c, d in zip(full["cases"], trimmed["cases"]) if c != d]
            raise SystemExit(f"{name}: the trimmed tokenizer.json gives other ids or text for {bad or 'the template'}")
        print(f"{folder}/tokenizer.json: {(REPO_ROOT / folder / 'tokenizer.json').stat().st_size / 1e3:.0f} KB "
              f"(from {(args.tokenizers / name / 'tokenizer.json').stat().st_size / 1e6:.1f} MB)")
        entry = dict(full, sha256=trimmed["sha256"], source_sha256=full["sha256"], folder=folder)
        if name in VARIANTS:
            entry["extra_texts"] = [{"name": n, "text": t} for n, t in ADDED_TEXTS]
        fixture["tokenizers"].append(entry)
    write_json(output_path(FIXTURE), fixture)


if __name__ == "__main__":
    main()
