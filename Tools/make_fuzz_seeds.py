#!/usr/bin/env python3
"""Writes the libFuzzer seed corpora in Fuzz/Corpus (small files, committed).

gguf/: tiny well-formed GGUF files (a Llama config with a byte-level BPE vocabulary and
SentencePiece one, f32 and q8_0 tensors), written by hand so no package is needed;
template/: real chat templates from the jinja2 fixture; tokenizer/: varied text.
Run from the repository root: python3 Tools/make_fuzz_seeds.py
"""
import json, os, struct

OUT = "Fuzz/Corpus"

def gguf(metadata, tensors, version=3, alignment=32):
    def s(text):
        b = text.encode()
        return struct.pack("<Q", len(b)) + b
    def value(v):
        if isinstance(v, bool): return struct.pack("<I", 7) + struct.pack("<?", v)
        if isinstance(v, int): return struct.pack("<I", 4) + struct.pack("<I", v)
        if isinstance(v, float): return struct.pack("<I", 6) + struct.pack("<f", v)
        if isinstance(v, str): return struct.pack("<I", 8) + s(v)
        if isinstance(v, list):
            t = v[0]
            if isinstance(t, str): return struct.pack("<IIQ", 9, 8, len(v)) + b"".join(s(x) for x in v)
            if isinstance(t, float): return struct.pack("<IIQ", 9, 6, len(v)) + b"".join(struct.pack("<f", x) for x in v)
            return struct.pack("<IIQ", 9, 5, len(v)) + b"".join(struct.pack("<i", x) for x in v)
        raise TypeError(v)
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(metadata))
    for k, v in metadata.items():
        out += s(k) + value(v)
    offset, data = 0, b""
    for name, ggml_type, shape, raw in tensors:
        out += s(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
        out += struct.pack("<IQ", ggml_type, offset)
        data += raw + b"\0" * ((-len(raw)) % alignment)
        offset = len(data)
    out += b"\0" * ((-len(out)) % alignment)
    return out + data

def llama(vocab_model):
    dim, ff, layers = 32, 64, 1
    md = {"general.architecture": "llama", "general.name": "seed", "general.alignment": 32,
          "llama.block_count": layers, "llama.context_length": 64, "llama.embedding_length": dim,
          "llama.feed_forward_length": ff, "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2,
          "llama.rope.freq_base": 10000.0, "llama.attention.layer_norm_rms_epsilon": 1e-5}
    if vocab_model == "gpt2":
        tokens = ["a", "b", "c", "Ġ", "ab", "Ġa", "<|im_start|>", "<|im_end|>"]
        md.update({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "smollm", "tokenizer.ggml.tokens": tokens,
                   "tokenizer.ggml.token_type": [1, 1, 1, 1, 1, 1, 3, 3], "tokenizer.ggml.merges": ["a b", "Ġ a"],
                   "tokenizer.ggml.eos_token_id": 7, "tokenizer.chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"})
    else:
        tokens = ["<unk>", "<s>", "</s>", "▁", "a", "b", "▁a", "<0x41>"]
        md.update({"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens,
                   "tokenizer.ggml.scores": [0.0, 0.0, 0.0, -1.0, -2.0, -2.0, -0.5, 0.0],
                   "tokenizer.ggml.token_type": [2, 3, 3, 1, 1, 1, 1, 6], "tokenizer.ggml.bos_token_id": 1})
    n = len(tokens)
    f32 = lambda count: struct.pack(f"<{count}f", *[0.01 * (i % 7) for i in range(count)])
    q8 = lambda rows, k: b"".join(struct.pack("<e", 0.01) + bytes(range(32)) for _ in range(rows * k // 32))
    tensors = [("token_embd.weight", 0, [dim, n], f32(dim * n)), ("output_norm.weight", 0, [dim], f32(dim))]
    for l in range(layers):
        p = f"blk.{l}."
        tensors += [(p + "attn_norm.weight", 0, [dim], f32(dim)), (p + "ffn_norm.weight", 0, [dim], f32(dim)),
                    (p + "attn_q.weight", 8, [dim, dim], q8(dim, dim)), (p + "attn_k.weight", 8, [dim, 16], q8(16, dim)),
                    (p + "attn_v.weight", 8, [dim, 16], q8(16, dim)), (p + "attn_output.weight", 8, [dim, dim], q8(dim, dim)),
                    (p + "ffn_gate.weight", 0, [dim, ff], f32(dim * ff)), (p + "ffn_up.weight", 0, [dim, ff], f32(dim * ff)),
                    (p + "ffn_down.weight", 0, [ff, dim], f32(dim * ff))]
    return gguf(md, tensors)

def main():
    for kind in ["gguf", "template", "tokenizer"]:
        os.makedirs(f"{OUT}/{kind}", exist_ok=True)
    open(f"{OUT}/gguf/llama-bpe.seed", "wb").write(llama("gpt2"))
    open(f"{OUT}/gguf/llama-spm.seed", "wb").write(llama("llama"))
    open(f"{OUT}/gguf/header-only.seed", "wb").write(gguf({"general.architecture": "llama"}, []))
    # Nibble's fallback templates and a few real ones from llama.cpp's collection (the
    # sdist `make vocab` unpacks), when it is there.
    import glob, shutil
    sources = sorted(glob.glob("Prompts/templates/*.jinja"))
    vendored = os.path.expanduser("~/.cache/nibble/llama-cpp-python-0.3.36/vendor/llama.cpp/models/templates")
    for name in ["Qwen-Qwen3-0.6B.jinja", "google-gemma-2-2b-it.jinja", "meta-llama-Llama-3.1-8B-Instruct.jinja",
                 "mistralai-Mistral-Nemo-Instruct-2407.jinja", "microsoft-Phi-3.5-mini-instruct.jinja",
                 "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja"]:
        if os.path.exists(os.path.join(vendored, name)): sources.append(os.path.join(vendored, name))
    for path in sources:
        shutil.copy(path, f"{OUT}/template/{os.path.basename(path)}")
    texts = ["Hello, world!", "  leading spaces and\ttabs\n\nnewlines", "numbers 1234567 3.14 -42", "héllo wörld 日本語 🙂",
             "<|im_start|>user\nhi<|im_end|>", "don't won't it's", "def f(x):\n    return x ** 2\n", "\u00a0\u2028\u200b"]
    for i, t in enumerate(texts):
        open(f"{OUT}/tokenizer/text{i}.txt", "w").write(t)

if __name__ == "__main__":
    main()
