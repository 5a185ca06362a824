#!/usr/bin/env python3
"""Reference tokenizations of a varied text set with the SmolLM2 tokenizer.

Produces ``Tests/TokenizersTests/Resources/smollm2-tokenize.json``.

Why: Nibble has its own byte-level BPE tokenizer reading the vocabulary and
merges from the GGUF file.  This fixture gives, for ~50 tricky strings
(scripts, emoji with ZWJ and flags, whitespace runs, digits, contractions,
special-token text, the empty string), the ids the reference implementation
(Hugging Face ``tokenizers``) produces.

Which tokenizer exactly.  transformers can build a tokenizer from the GGUF, but
its converter gives it a plain ``ByteLevel`` pre-tokenizer (GPT-2 regex only).
The original HuggingFaceTB/SmolLM2-135M-Instruct ``tokenizer.json`` -- and
llama.cpp's ``smollm`` pre-tokenizer named in the GGUF (``tokenizer.ggml.pre``)
-- first split every digit on its own.  So the reference (field ``ids``) is
the GGUF-converted backend tokenizer with its pre-tokenizer replaced by

    Sequence([Digits(individual_digits=True),
              ByteLevel(add_prefix_space=False, use_regex=True)])

Fields per case:

* ``ids``: special-token text is tokenized as PLAIN text (as llama.cpp does
  with ``parse_special = false``, and as a chat program must treat user
  input): ``<|im_start|>`` becomes ``<``, ``|``, ``im``, ``_``, ``start``,
  ``|``, ``>``.  Obtained with ``Tokenizer.encode_special_tokens = True`` and
  verified (no id of a special token appears, the pieces are the ones an
  independent regex + BPE implementation in this script produces).
* ``ids_special`` (only for strings containing special-token text): special
  tokens recognised as single ids (``parse_special = true``).
* ``ids_gguf_converted``: transformers' GGUF-converted tokenizer as it is
  (ByteLevel pre-tokenizer without the digit split, special tokens
  recognised); documents where the missing digit split matters.
* ``decoded``: decode of ``ids``; equals ``text`` (checked) except in the
  cases marked ``"lossy": true``, whose text holds bytes that have no token
  (see below) and are silently dropped -- by tokenizers and by llama.cpp.

Every ``ids`` list is also recomputed by a small pure-Python implementation
(``regex`` module: the digit split then the GPT-2 pattern, GPT-2
bytes_to_unicode, greedy lowest-rank BPE merges from the GGUF) and the script
fails if the two disagree.

Top level ``missing_byte_values`` lists the byte values b (0..255) whose
single-character token bytes_to_unicode(b) is not in the vocabulary: such a
byte can never be encoded (byte-level BPE has no fallback), so an engine must
decide what to do with it.

Usage:  .venv-tools/bin/python Tools/reference_tokenize.py [--out PATH]
        (model: $NIBBLE_MODEL)
"""

from __future__ import annotations

import argparse
import json

import _common  # sets HF_HUB_OFFLINE before transformers is imported
import gguf
import regex
import tokenizers
from tokenizers import Tokenizer, pre_tokenizers
from transformers import AutoTokenizer

# (name, text).  Names are unique and short; order is the fixture order.
CASES: list[tuple[str, str]] = [
    ("empty", ""),
    ("single_space", " "),
    ("hello", "Hello world"),
    ("hello_leading_space", " Hello world"),
    ("english_sentence", "The quick brown fox jumps over the lazy dog."),
    ("english_story", "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine!"),
    ("czech", "Příliš žluťoučký kůň úpěl ďábelské ódy"),
    ("korean", "안녕하세요, 세계! 한국어 토큰화 테스트입니다."),
    ("chinese", "我爱自然语言处理。今天天气很好！"),
    ("japanese", "こんにちは世界、カタカナとひらがなと漢字。"),
    ("russian", "Привет, мир! Съешь же ещё этих мягких французских булок."),
    ("arabic", "مرحبا بالعالم، كيف حالك؟"),
    ("hindi", "नमस्ते दुनिया"),
    ("accents_nfc", "café naïve résumé"),
    ("accents_nfd", "cafe\u0301 nai\u0308ve"),
    ("mixed_scripts", "Hello мир 世界 🌍!"),
    ("emoji", "I love pizza 🍕🔥😀"),
    ("emoji_zwj", "👨‍👩‍👧‍👦 family, 👩🏽‍💻 coder, 🏳️‍🌈"),
    ("emoji_flags", "🇨🇿🇺🇸🇯🇵 flags"),
    ("code_python_tabs", "def f(x):\n\tif x:\n\t\treturn x * 2\n    else:\n        return None\n"),
    ("code_mixed_indent", "int main() {\n  \tprintf(\"%d\\n\", 42);\n\t  return 0;\n}"),
    ("json", "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}"),
    ("html", "<div class=\"x\">Hello &amp; goodbye</div>"),
    *[(f"spaces_{k}", "a" + " " * k + "b") for k in range(1, 9)],
    ("spaces_only_4", "    "),
    ("spaces_before_digits", "a  1   22    333"),
    ("newlines_1", "a\nb"),
    ("newlines_2", "a\n\nb"),
    ("newlines_4", "a\n\n\n\nb"),
    ("newlines_only", "\n\n\n"),
    ("crlf", "line1\r\nline2\r\n"),
    ("tabs_only", "\t\t\t"),
    ("mixed_whitespace", " \t \n \u00a0 nbsp\u3000ideographic"),
    ("trailing_spaces", "trailing spaces   "),
    ("leading_spaces", "   leading spaces"),
    ("pi", "3.14159265358979"),
    ("long_number", "1234567890123"),
    ("numbers_in_text", "Version 2.0.1 costs $1,299.99 in 2024 (0xDEADBEEF, 1e-9)"),
    ("unicode_numbers", "x² + y² = z², ½ ⅓ Ⅻ ٣"),
    ("url", "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct?x=1&y=2#top"),
    ("contractions", "I'm sure you don't know what we'll do; they've said it's fine"),
    ("contractions_odd", "'ll 'VE 'Re 's 'S I'M"),
    ("punctuation", "Wait... what?!?! (yes) [no] {maybe} -- ***bold*** ~~~ @@@ ###"),
    ("repeated_letters", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    ("long_word", "Pneumonoultramicroscopicsilicovolcanoconiosis"),
    ("special_chatml", "<|im_start|>user\nhi<|im_end|>"),
    ("special_eot", "<|endoftext|>"),
    ("special_chat_prompt", "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"),
    ("special_lookalikes", "<s> </s> [INST] <|im_start <|unknown|>"),
    # Bytes without a single-byte token (see missing_byte_values) cannot be
    # encoded; tokenizers (like llama.cpp) silently drops them, so these two
    # cases do NOT round-trip.  They are marked "lossy": true.
    ("missing_bytes", "a\x04b\x1d c\x06"),
    ("missing_lead_byte", "\U00040000z"),  # UTF-8 F1 80 80 80: lead byte 0xF1 has no token
]

PRE_TOKENIZER_DESCRIPTION = (
    "Sequence([Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)]) "
    "-- the original SmolLM2 tokenizer.json pre-tokenizer, equivalent to llama.cpp 'smollm': "
    "regex \\p{N} then 's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
)

# The GPT-2 pattern (as used by tokenizers' ByteLevel pre-tokenizer) and the
# digit split applied before it.
GPT2_PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
DIGIT_PATTERN = regex.compile(r"\p{N}")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


class MiniBPE:
    """Independent byte-level BPE (regex split + lowest-rank merges), no special tokens."""

    def __init__(self, tokens: list[str], merges: list[str]):
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.ranks = {tuple(m.split(" ", 1)): r for r, m in enumerate(merges)}
        self.byte_map = bytes_to_unicode()

    def split(self, text: str) -> list[str]:
        pieces: list[str] = []
        pos = 0
        for m in DIGIT_PATTERN.finditer(text):  # isolate every digit
            if m.start() > pos:
                pieces.append(text[pos:m.start()])
            pieces.append(m.group())
            pos = m.end()
        if pos < len(text):
            pieces.append(text[pos:])
        return [w for p in pieces for w in GPT2_PATTERN.findall(p)]

    def bpe(self, word: str) -> list[str]:
        parts = list(word)
        while len(parts) > 1:
            ranked = [(self.ranks.get((a, b)), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            ranked = [(r, i) for r, i in ranked if r is not None]
            if not ranked:
                break
            best = min(ranked)[0]
            pair = next((a, b) for (a, b) in zip(parts, parts[1:]) if self.ranks.get((a, b)) == best)
            merged, i = [], 0
            while i < len(parts):  # merge every occurrence, left to right
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == pair:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for word in self.split(text):
            mapped = "".join(self.byte_map[b] for b in word.encode("utf-8"))
            for piece in self.bpe(mapped):
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                else:  # a byte with no token (merges only ever build vocab tokens): dropped
                    assert len(piece) == 1, piece
        return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=_common.output_path(
        "Tests/TokenizersTests/Resources/smollm2-tokenize.json"))
    args = parser.parse_args()

    names = [n for n, _ in CASES]
    assert len(names) == len(set(names)), "case names must be unique"

    path = _common.model_path()
    reader = gguf.GGUFReader(path)
    gguf_tokens = [str(t) for t in reader.fields["tokenizer.ggml.tokens"].contents()]
    gguf_merges = [str(m) for m in reader.fields["tokenizer.ggml.merges"].contents()]
    gguf_types = list(reader.fields["tokenizer.ggml.token_type"].contents())
    gguf_pre = str(reader.fields["tokenizer.ggml.pre"].contents())

    # transformers' GGUF-converted tokenizer, unchanged.
    hf = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    converted = hf.backend_tokenizer

    # The reference: same model/vocab/merges/decoder, original pre-tokenizer.
    reference = Tokenizer.from_str(converted.to_str())
    reference.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    assert reference.get_vocab_size(with_added_tokens=True) == len(gguf_tokens)

    special_tokens = {t.content: i for i, t in reference.get_added_tokens_decoder().items() if t.special}
    special_ids = set(special_tokens.values())
    control_ids = {i for i, t in enumerate(gguf_types) if t == gguf.TokenType.CONTROL}
    assert special_ids == control_ids, (special_ids, control_ids)

    mini = MiniBPE(gguf_tokens, gguf_merges)

    byte_map = bytes_to_unicode()
    vocab = reference.get_vocab(with_added_tokens=True)
    missing = [b for b in range(256) if byte_map[b] not in vocab]

    def encode_plain(text: str) -> list[int]:
        reference.encode_special_tokens = True
        try:
            return reference.encode(text, add_special_tokens=False).ids
        finally:
            reference.encode_special_tokens = False

    cases = []
    differ = []
    for name, text in CASES:
        ids = encode_plain(text)
        if any(i in special_ids for i in ids):
            raise SystemExit(f"{name}: special id in plain-text tokenization {ids}")
        if ids != mini.encode(text):
            raise SystemExit(f"{name}: tokenizers and MiniBPE disagree:\n {ids}\n {mini.encode(text)}")
        decoded = reference.decode(ids, skip_special_tokens=False)
        raw = text.encode("utf-8")
        lossy = any(b in missing for b in raw)
        # Expected decode: the text minus the bytes that have no token
        # (invalid UTF-8 left behind decodes to U+FFFD per byte, as in Rust).
        expected = bytes(b for b in raw if b not in missing).decode("utf-8", errors="replace")
        if decoded != expected:
            raise SystemExit(f"{name}: unexpected decode: {decoded!r} != {expected!r}")
        record = {"name": name, "text": text, "ids": ids}
        if lossy:
            record["lossy"] = True
        if any(s in text for s in special_tokens):
            record["ids_special"] = reference.encode(text, add_special_tokens=False).ids
        record["ids_gguf_converted"] = hf.encode(text, add_special_tokens=False)
        record["decoded"] = decoded
        cases.append(record)
        plain_converted = converted.encode(text, add_special_tokens=False).ids if not any(
            s in text for s in special_tokens) else None
        if plain_converted is not None and plain_converted != ids:
            differ.append(name)
        print(f"{name:22} {len(ids):3} ids" + ("" if plain_converted in (None, ids) else "   (differs without digit split)"))

    print(f"missing byte values ({len(missing)}): {missing}")
    print(f"cases where the GGUF-converted pre-tokenizer differs: {differ}")

    _common.write_json(args.out, {
        "model": path.name,
        "sha256": _common.sha256_file(path),
        "tokenizers": tokenizers.__version__,
        "gguf_tokenizer_pre": gguf_pre,
        "pre_tokenizer": PRE_TOKENIZER_DESCRIPTION,
        "pre_tokenizer_json": json.loads(reference.pre_tokenizer.__getstate__()),
        "special_tokens": {k: v for k, v in sorted(special_tokens.items(), key=lambda kv: kv[1])},
        "missing_byte_values": missing,
        "gguf_converted_differs": differ,
        "notes": [
            "ids: special-token text tokenized as plain text (tokenizers encode_special_tokens=True), no BOS/EOS added",
            "ids_special: only for texts containing special-token text; special tokens recognised as single ids",
            "ids_gguf_converted: transformers' GGUF-converted tokenizer as is (ByteLevel only, no digit split, special tokens recognised)",
            "decoded: decode of ids; equals text except for cases marked lossy (bytes without a token are dropped)",
            "missing_byte_values: bytes b whose GPT-2 bytes_to_unicode(b) single-character token is not in the vocabulary",
        ],
        "cases": cases,
    })


if __name__ == "__main__":
    main()
