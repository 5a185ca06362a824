"""Shared helpers for the fixture generators in this folder.

Not a script: imported by ``reference_generate.py``, ``reference_tokenize.py``,
``reference_dequant.py``, ``reference_tiny_llama.py`` and ``reference_families.py``.  It knows

* where the repository root is (this file lives in ``<root>/Tools``),
* where the models are (``$NIBBLE_MODEL`` or the ``make model`` location;
  ``$NIBBLE_GEMMA`` or the ``make gemma`` location),
* how to hash files / bytes,
* how to write the fixtures as stable, diff-friendly JSON (objects indented,
  lists of numbers or strings on a single line).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

# Nothing here may ever touch the network: the model hub is unreachable and the
# fixtures must only depend on the local GGUF file.  Set before transformers is
# imported by any of the scripts.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parent.parent

MODEL_DIR = Path.home() / ".cache" / "nibble" / "models"
DEFAULT_MODEL = MODEL_DIR / "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_GEMMA = MODEL_DIR / "gemma-3-270m-q4_k_m.gguf"


def _existing(variable: str, default: Path, target: str) -> Path:
    env = os.environ.get(variable)
    path = Path(env).expanduser() if env else default
    if not path.is_file():
        sys.exit(f"model not found: {path} (run `make {target}` or set {variable})")
    return path.resolve()


def model_path() -> Path:
    """The GGUF model to read: ``$NIBBLE_MODEL`` or the ``make model`` default."""
    return _existing("NIBBLE_MODEL", DEFAULT_MODEL, "model")


def gemma_path() -> Path:
    """The Gemma 3 GGUF: ``$NIBBLE_GEMMA`` or the ``make gemma`` default."""
    return _existing("NIBBLE_GEMMA", DEFAULT_GEMMA, "gemma")


def output_path(relative: str) -> Path:
    """Path of a fixture, given relative to the repository root."""
    return REPO_ROOT / relative


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------
# JSON output
# --------------------------------------------------------------------------

_SCALARS = (str, int, float, bool, type(None))


def _scalar(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"non-finite float {value!r} cannot be written to JSON")
    # Python's float repr is the shortest string that round-trips to the same
    # double; for a value that came from a float32 it therefore parses back to
    # exactly that float32 (whether parsed as Double or as Float).
    return json.dumps(value, ensure_ascii=False)


def _encode(value: Any, indent: int, level: int) -> str:
    pad = " " * (indent * (level + 1))
    end = " " * (indent * level)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{pad}{json.dumps(str(k), ensure_ascii=False)}: {_encode(v, indent, level + 1)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + end + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        if all(isinstance(v, _SCALARS) for v in value):
            # ids, samples, values: one line.
            return "[" + ", ".join(_scalar(v) for v in value) + "]"
        if all(isinstance(v, (list, tuple)) and all(isinstance(x, _SCALARS) for x in v) for v in value):
            # [[id, logit], ...] / [[index, value], ...]: one pair per line.
            rows = [pad + "[" + ", ".join(_scalar(x) for x in v) + "]" for v in value]
            return "[\n" + ",\n".join(rows) + "\n" + end + "]"
        rows = [pad + _encode(v, indent, level + 1) for v in value]
        return "[\n" + ",\n".join(rows) + "\n" + end + "]"
    return _scalar(value)


def dumps(value: Any, indent: int = 2) -> str:
    """Stable JSON: key order as given (callers build dicts in a fixed order)."""
    text = _encode(value, indent, 0) + "\n"
    json.loads(text)  # sanity: the hand-rolled encoder must produce valid JSON
    return text


def write_json(path: Path | str, value: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(value)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    try:
        shown = path.relative_to(REPO_ROOT)
    except ValueError:
        shown = path
    print(f"wrote {shown} ({len(text.encode('utf-8'))} bytes)")
