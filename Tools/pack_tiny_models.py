#!/usr/bin/env python3
"""Packs the binary files of each tiny model folder into one JSON fixture, so that no
model file (.gguf, .safetensors) is committed.

For ``Tests/InferenceTests/Resources/tiny-models/<family>/`` it writes ``binaries.json``:

* ``gguf``: the converter's GGUF as data: ``version``, ``alignment``, ``metadata`` (in
  file order, each ``[key, type, value]`` or ``[key, "array", item_type, [values]]``, types
  as gguf's value-type names in lower case) and ``tensors`` (each ``[name, ggml type name,
  shape (ne0 first), base64 data]``). The tests write it back with Nibble's GGUFWriter.
* ``safetensors``: ``header`` (the file's JSON header, verbatim) and ``data`` (base64 of the
  data section), which the tests join back byte for byte.
* ``tokenizer.model``: base64 of the SentencePiece protobuf, when the folder has one.

Then it deletes those files. ``reference_families.py`` calls ``pack`` after converting.
Usage: .venv-tools/bin/python Tools/pack_tiny_models.py  (needs the ``gguf`` package)
"""
from __future__ import annotations

import base64
import json
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "Tests/InferenceTests/Resources/tiny-models"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def gguf_as_data(path: Path) -> dict:
    import gguf
    reader = gguf.GGUFReader(path)
    metadata = []
    for field in reader.fields.values():
        if field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        name = kind.name.lower()
        if kind == gguf.GGUFValueType.ARRAY:
            item = field.types[1]
            if item == gguf.GGUFValueType.STRING:
                values = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
            else:
                values = [field.parts[i].tolist()[0] for i in field.data]
            metadata.append([field.name, "array", item.name.lower(), values])
        elif kind == gguf.GGUFValueType.STRING:
            metadata.append([field.name, name, bytes(field.parts[field.data[0]]).decode("utf-8")])
        else:
            metadata.append([field.name, name, field.parts[field.data[0]].tolist()[0]])
    tensors = [[t.name, t.tensor_type.name, [int(x) for x in t.shape], b64(bytes(t.data.tobytes()))]
               for t in reader.tensors]
    version = int(reader.fields["GGUF.version"].parts[-1][0])
    return {"version": version, "alignment": int(reader.alignment), "metadata": metadata, "tensors": tensors}


def safetensors_as_data(path: Path) -> dict:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return {"header": raw[8:8 + n].decode("utf-8"), "data": b64(raw[8 + n:])}


def pack(folder: Path) -> None:
    family = folder.name
    out = {"gguf": gguf_as_data(folder / f"{family}.gguf"),
           "safetensors": safetensors_as_data(folder / "model.safetensors")}
    if (folder / "tokenizer.model").is_file():
        out["tokenizer.model"] = b64((folder / "tokenizer.model").read_bytes())
    (folder / "binaries.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    for name in (f"{family}.gguf", "model.safetensors", "tokenizer.model"):
        (folder / name).unlink(missing_ok=True)


if __name__ == "__main__":
    for folder in sorted(p for p in TINY.iterdir() if p.is_dir()):
        if (folder / f"{folder.name}.gguf").is_file():
            pack(folder)
            print(folder.name, (folder / "binaries.json").stat().st_size, file=sys.stderr)
