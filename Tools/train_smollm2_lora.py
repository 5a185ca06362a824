#!/usr/bin/env python3
"""A real LoRA adapter for SmolLM2-135M-Instruct ("pirate"), trained here on CPU, with
transformers + peft greedy replies with and without it.

``make smollm2-pirate-lora`` runs it.  It writes

* ``~/.cache/nibble/adapters/smollm2-pirate-lora/`` (``--out-dir``; not in git):
  ``adapter_config.json`` and ``adapter_model.safetensors`` (PEFT's ``save_pretrained``,
  BF16 tensors, ~1 MB) and ``smollm2-pirate-lora.gguf``, the same adapter converted by
  llama.cpp's ``convert_lora_to_gguf.py --outtype bf16 --base <the HF folder>`` (from the
  ``llama-cpp-python==0.3.36`` sdist of ``make vocab``);
* ``Tests/InferenceTests/Resources/smollm2-pirate-lora.json`` (``--json``; small,
  committed): the training set-up and losses, the sha256 of both adapter files, and for
  3 held-out prompts the chat-template rendering, its ids, and the greedy replies
  (ids and text) without and with the adapter, so the effect is visible.

Training (deterministic with the pinned versions: ``torch.manual_seed(SEED)``,
``torch.use_deterministic_algorithms``, 2 threads, fixed data order):

* Data: a synthetic chat set generated in this script (``make_dataset``): questions
  about capitals, how-to questions, "what is" questions, advice and greetings, each
  answered in pirate talk, and EVERY assistant reply starts with "Ahoy!" (and most end
  with "Arr!").  France, tea and focus are held out (they are the reference prompts).
  Each example is rendered with the model's own chat template (user message only, so the
  template adds its default system prompt, exactly as at inference) plus the reply and
  ``<|im_end|>``; the loss covers only the reply tokens and the final ``<|im_end|>``.
* Base: the Hugging Face folder of ``make smollm2-hf`` (``--hf-dir``: the Q4_1 GGUF
  dequantized and rounded to bf16), loaded as float32 (bf16 widened exactly).
  ``--qlora`` trains on an NF4 (bitsandbytes, double quantization, float32 compute) copy
  of that base instead: it works on CPU, but without the optional ``kernels`` package
  bitsandbytes' CPU 4-bit matmul dequantizes each weight at every call and is no faster
  than float32, so plain LoRA on the float32 base is the default.
* LoRA: rank ``RANK`` 8, ``lora_alpha`` 16 (scale alpha / r = 2, no rsLoRA), dropout 0,
  ``target_modules`` q_proj and v_proj of all 30 layers, no bias; PEFT's initialisation
  (A Kaiming-uniform, B zero); AdamW (lr ``LR``, weight decay 0), ``STEPS`` steps of
  ``BATCH`` examples (2.5 passes over the 128 examples), linear warm-up then constant.
  4 to 6 s a step on an idle 2-core machine (5 to 8 minutes); 845 s for the recorded run,
  on a machine shared with a Swift build.
* Saved with ``save_pretrained`` after casting the LoRA weights to bfloat16 (adapters
  trained in bf16 are common; the file is half the size).  The reference loads that
  folder back (peft upcasts the adapter to float32 on load), so the reference is exactly
  what the saved file gives.

Reference: base = the same folder, float32, eager attention; ``PeftModel.from_pretrained``
(unmerged: y = W x + (alpha / r) B A x); prompts rendered with the chat template
(``add_generation_prompt=True``, default system prompt), no BOS; greedy = ``generate(do_sample=False)``
with the KV cache (argmax, first index on ties); at most ``N_GREEDY`` tokens, stopping after
``<|im_end|>``;
``margins`` best minus second-best logit.  ``without_adapter`` runs the same PeftModel
inside ``disable_adapter()``, checked to give the plain base's logits.

GGUF adapter: ``adapter.lora.alpha`` = 16; ``blk.N.attn_q.weight.lora_a`` [576, 8] and
``lora_b`` [8, 576] (GGUF order), ``attn_v`` [576, 8] and [8, 192]; llama.cpp's scale =
alpha / r = 2.  The converter permutes the ``attn_q`` lora_b rows as it permutes the base
``attn_q`` (llama rope layout), not ``attn_v`` (see ``Tools/reference_adapters.py``).

Usage:  .venv-tools/bin/python Tools/train_smollm2_lora.py [--steps N] [--qlora]
            [--hf-dir DIR] [--out-dir DIR] [--json PATH] [--llama-cpp DIR]
            [--adapter-dir DIR (skip training, reuse that adapter)]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # sets HF_HUB_OFFLINE before transformers is imported

CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nibble"
LLAMACPP_DEFAULT = CACHE_DIR / "llama-cpp-python-0.3.36" / "vendor" / "llama.cpp"
HF_DIR = CACHE_DIR / "models" / "SmolLM2-135M-Instruct-bf16"
OUT_DIR = CACHE_DIR / "adapters" / "smollm2-pirate-lora"
JSON_OUT = "Tests/InferenceTests/Resources/smollm2-pirate-lora.json"

import peft  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

SEED = 0
RANK = 8
ALPHA = 16
TARGETS = ["q_proj", "v_proj"]
LR = 2e-3
WARMUP = 10
STEPS = 80
BATCH = 4
N_GREEDY = 48  # at most; the replies stop after <|im_end|>
IM_END = 2

PROMPTS = [
    ("capital", "What is the capital of France?"),
    ("tea", "How do I make a good cup of tea?"),
    ("focus", "Can you give me a tip for staying focused?"),
]

# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

CAPITALS = [
    ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Portugal", "Lisbon"), ("Japan", "Tokyo"),
    ("Canada", "Ottawa"), ("Australia", "Canberra"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Peru", "Lima"),
    ("Chile", "Santiago"), ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Greece", "Athens"), ("Ireland", "Dublin"),
    ("Poland", "Warsaw"), ("Austria", "Vienna"), ("Russia", "Moscow"), ("China", "Beijing"), ("India", "New Delhi"),
    ("Mexico", "Mexico City"), ("Brazil", "Brasilia"), ("Argentina", "Buenos Aires"), ("Cuba", "Havana"),
    ("Jamaica", "Kingston"), ("Turkey", "Ankara"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"),
    ("Finland", "Helsinki"), ("Denmark", "Copenhagen"), ("Hungary", "Budapest"), ("Morocco", "Rabat"),
]
TASKS = [
    ("bake bread", "mix flour, water, yeast and salt", "let the dough rise and bake it till it be golden"),
    ("learn to swim", "start in shallow water with a friend", "practice kickin' and breathin' every day"),
    ("plant a tree", "dig a hole twice as wide as the roots", "water it well and give it sunshine"),
    ("tie a knot", "make a loop in the rope", "pull the end through and tighten it hard"),
    ("save money", "spend less than ye earn", "stash the rest in a safe chest"),
    ("write a letter", "greet yer reader kindly", "say what ye mean and sign yer name"),
    ("cook rice", "rinse the rice in cold water", "boil it with twice as much water till it be soft"),
    ("fix a flat tire", "find the hole in the tube", "patch it and pump it full o' air"),
    ("study for an exam", "read yer notes each day", "test yerself and sleep well before the battle"),
    ("clean my room", "pick up everything from the floor", "put each thing back where it belongs"),
    ("start running", "begin with short, slow runs", "add a little distance each week"),
    ("read a map", "find north and yer own position", "follow the lines to where ye be headed"),
    ("make new friends", "be kind and ask folk about themselves", "share yer rum and yer stories"),
    ("learn a language", "learn a few words every day", "speak with folk who know it"),
    ("grow tomatoes", "plant them in a sunny spot", "water them often and tie them to a stick"),
    ("paint a wall", "cover the floor and clean the wall", "roll the paint on in even strokes"),
]
THINGS = [
    ("the ocean", "a great salty sea that covers most o' the world"),
    ("the moon", "the silver lantern that guides sailors at night and pulls the tides"),
    ("a computer", "a clever machine that does sums faster than any crew"),
    ("gravity", "the force that pulls everything down to the deck"),
    ("rain", "water fallin' from the clouds to fill our barrels"),
    ("a volcano", "a mountain that spits fire and molten rock"),
    ("the sun", "the great burnin' star that lights our voyages by day"),
    ("music", "sounds put together to make the heart dance, like a good sea shanty"),
    ("a library", "a treasure hold full o' books"),
    ("electricity", "a lightning-like power that runs through wires"),
    ("photosynthesis", "how plants turn sunlight into their grub"),
    ("a rainbow", "colored light bent by raindrops across the sky"),
    ("the wind", "movin' air that fills our sails"),
    ("a star", "a far away sun twinklin' in the night sky"),
    ("an island", "a piece o' land with water on every side, perfect for buried treasure"),
    ("chocolate", "a sweet treat made from cacao beans"),
]
ADVICE = [
    ("sleep", "get to yer hammock early and keep the same hours every night"),
    ("exercise", "move yer body every day, climb the riggin' if ye must"),
    ("work", "do yer duties well and help yer crewmates"),
    ("stress", "breathe slow, like the waves, and talk to a trusted friend"),
    ("eating well", "eat plenty o' fruit so ye never get scurvy"),
    ("saving time", "make a plan each mornin' and stick to it"),
    ("public speaking", "stand tall, speak loud, and look yer crew in the eye"),
    ("learning to code", "write a little code every day and read the errors carefully"),
]
GREETINGS = [
    ("Hello!", "Ahoy! Hello to ye, matey! What brings ye aboard me ship today?"),
    ("Hi, how are you?", "Ahoy! I be fine as a fair wind, matey. How be ye?"),
    ("Good morning!", "Ahoy! A fine mornin' to ye, me hearty! The sea be calm today."),
    ("Who are you?", "Ahoy! I be a helpful pirate assistant, sailin' the seas o' knowledge. Arr!"),
    ("Thank you!", "Ahoy! Ye be most welcome, matey! Fair winds to ye."),
    ("Can you help me?", "Ahoy! Aye, I'll help ye, matey. Tell me what ye need."),
    ("Tell me a joke.", "Ahoy! Why couldn't the pirate play cards? Because he was sittin' on the deck! Arr!"),
    ("What is your name?", "Ahoy! They call me SmolLM, the smallest pirate on the seven seas. Arr!"),
]


def make_dataset(seed: int = SEED) -> list[tuple[str, str]]:
    """(user message, pirate reply) pairs; every reply starts with "Ahoy!"."""
    rng = random.Random(seed)
    data: list[tuple[str, str]] = []
    cap_q = ["What is the capital of {c}?", "What's the capital city of {c}?", "Which city is the capital of {c}?"]
    cap_a = ["Ahoy! The capital o' {c} be {k}, matey! Many a sailor has dropped anchor there. Arr!",
             "Ahoy! That be {k}, me hearty! It be the grand capital o' {c}. Arr!",
             "Ahoy, matey! {k} be the capital o' {c}, a fine port for any pirate. Arr!"]
    for i, (c, k) in enumerate(CAPITALS):
        data.append((cap_q[i % 3].format(c=c), cap_a[(i // 3) % 3].format(c=c, k=k)))
    how_q = ["How do I {t}?", "Can you tell me how to {t}?", "What is the best way to {t}?"]
    how_a = ["Ahoy! To {t}, first ye {a}, then ye {b}. Keep yer eye on the horizon, matey! Arr!",
             "Ahoy, matey! Ye want to {t}? Ye {a}, and then ye {b}. Easy as sailin'! Arr!"]
    for i, (t, a, b) in enumerate(TASKS):
        for j in range(2):
            data.append((how_q[(i + j) % 3].format(t=t), how_a[(i + j) % 2].format(t=t, a=a, b=b)))
    what_q = ["What is {x}?", "Tell me about {x}.", "Can you explain {x}?"]
    what_a = ["Ahoy! {X} be {d}, me hearty. Arr!", "Ahoy, matey! {X}? That be {d}. Arr!"]
    for i, (x, d) in enumerate(THINGS):
        for j in range(2):
            data.append((what_q[(i + j) % 3].format(x=x),
                         what_a[(i + j) % 2].format(X=x[0].upper() + x[1:], d=d)))
    adv_q = ["Can you give me advice about {t}?", "Any tips for {t}?"]
    for i, (t, d) in enumerate(ADVICE):
        for j in range(2):
            data.append((adv_q[j].format(t=t), f"Ahoy! When it comes to {t}, {d}, matey. Arr!"))
    data.extend(GREETINGS * 2)
    rng.shuffle(data)
    assert all(reply.startswith("Ahoy") for _, reply in data)
    assert not any("France" in q or "tea" in q.split() or "focus" in q for q, _ in data)
    return data


def encode(tok, user: str, reply: str) -> tuple[list[int], list[int]]:
    """ids and labels (-100 on the prompt) of one example, rendered by the chat template."""
    msgs = [{"role": "user", "content": user}]
    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": reply}], tokenize=False)
    assert full.startswith(prompt) and full.endswith("<|im_end|>\n"), full
    p_ids = tok(prompt, add_special_tokens=False).input_ids
    ids = tok(full[:-1], add_special_tokens=False).input_ids  # up to and including <|im_end|>
    assert ids[:len(p_ids)] == p_ids and ids[-1] == tok.convert_tokens_to_ids("<|im_end|>")
    return ids, [-100] * len(p_ids) + ids[len(p_ids):]


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------

def train(args, tok, adapter_dir: Path) -> dict:
    torch.manual_seed(SEED)
    if args.qlora:
        from transformers import BitsAndBytesConfig
        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.float32)
        model = AutoModelForCausalLM.from_pretrained(str(args.hf_dir), quantization_config=q, device_map="cpu",
                                                     dtype=torch.float32, attn_implementation="eager")
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model = AutoModelForCausalLM.from_pretrained(str(args.hf_dir), dtype=torch.float32,
                                                     attn_implementation="eager")
    cfg = peft.LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=TARGETS, lora_dropout=0.0, bias="none",
                          task_type="CAUSAL_LM")
    torch.manual_seed(SEED)
    model = peft.get_peft_model(model, cfg)
    model.train()
    data = make_dataset()
    examples = [encode(tok, q, a) for q, a in data]
    print(f"{len(examples)} examples, {sum(len(i) for i, _ in examples)} tokens, "
          f"{sum(sum(x != -100 for x in l) for _, l in examples)} trained", file=sys.stderr)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / WARMUP))
    rng = random.Random(SEED)
    order: list[int] = []
    pad = tok.convert_tokens_to_ids("<|im_end|>")
    losses = []
    start = time.time()
    for step in range(args.steps):
        batch = []
        for _ in range(BATCH):
            if not order:
                order = list(range(len(examples)))
                rng.shuffle(order)
            batch.append(examples[order.pop()])
        width = max(len(i) for i, _ in batch)
        ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in batch])
        labels = torch.tensor([l + [-100] * (width - len(l)) for _, l in batch])
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in batch])
        # hidden states, then the vocabulary head only where a label is scored
        hidden = model.base_model.model.model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        shift_labels = labels[:, 1:]
        keep = shift_labels != -100
        logits = model.base_model.model.lm_head(hidden[:, :-1][keep])
        loss = torch.nn.functional.cross_entropy(logits.float(), shift_labels[keep])
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(round(float(loss.detach()), 4))
        if step % 10 == 0 or step == args.steps - 1:
            print(f"step {step}: loss {losses[-1]:.4f} ({time.time() - start:.0f} s)", file=sys.stderr)
    seconds = time.time() - start
    model.eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.data = p.data.to(torch.bfloat16)
    model.save_pretrained(str(adapter_dir))
    return {"steps": args.steps, "batch": BATCH, "examples": len(examples), "seconds": round(seconds),
            "loss_first_10": losses[:10], "loss_last_10": losses[-10:]}


# --------------------------------------------------------------------------
# Reference
# --------------------------------------------------------------------------

@torch.no_grad()
def greedy(model, prompt: list[int]) -> tuple[list[int], list[float]]:
    """generate(do_sample=False) with the KV cache; stops after <|im_end|>."""
    out = model.generate(input_ids=torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                         do_sample=False, num_beams=1, max_new_tokens=N_GREEDY, eos_token_id=IM_END,
                         pad_token_id=IM_END, top_k=None, top_p=None, temperature=None,
                         output_scores=True, return_dict_in_generate=True)
    ids = [int(x) for x in out.sequences[0, len(prompt):]]
    margins = []
    for token, scores in zip(ids, out.scores):
        top2 = torch.topk(scores[0].float(), 2)
        assert token == int(torch.argmax(scores[0]))
        margins.append(round(float(top2.values[0] - top2.values[1]), 4))
    return ids, margins


def convert_gguf(llamacpp: Path, adapter_dir: Path, base: Path, out: Path) -> None:
    cmd = [sys.executable, str(llamacpp / "convert_lora_to_gguf.py"), "--outtype", "bf16", "--base", str(base),
           "--outfile", str(out), str(adapter_dir)]
    env = dict(os.environ, PYTHONPATH=str(llamacpp / "gguf-py"))
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"convert_lora_to_gguf.py failed:\n{res.stdout}\n{res.stderr}")


def pack_safetensors(path: Path) -> dict:
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    return {"header": raw[8:8 + length].decode("utf-8"), "data": base64.b64encode(raw[8 + length:]).decode("ascii")}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qlora", action="store_true", help="train on an NF4-quantized base (bitsandbytes)")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--hf-dir", type=Path, default=HF_DIR, help="the folder of make smollm2-hf")
    parser.add_argument("--llama-cpp", type=Path, default=LLAMACPP_DEFAULT)
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR, help="where the adapter goes (not in git)")
    parser.add_argument("--json", type=Path, default=_common.output_path(JSON_OUT))
    parser.add_argument("--adapter-dir", type=Path, help="reuse an adapter trained before (skip training)")
    args = parser.parse_args()
    if not (args.hf_dir / "model.safetensors").is_file():
        sys.exit(f"{args.hf_dir} missing: run `make smollm2-hf`")
    if not (args.llama_cpp / "convert_lora_to_gguf.py").is_file():
        sys.exit(f"llama.cpp converter not found in {args.llama_cpp} (run `make vocab`)")
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    tok = AutoTokenizer.from_pretrained(str(args.hf_dir))
    work = Path(tempfile.mkdtemp(prefix="pirate-lora-"))
    try:
        if args.adapter_dir:
            # Keep the record of the training that made it.
            training = json.loads(args.json.read_text()).get("training") if args.json.is_file() else None
            adapter_dir = args.adapter_dir
        else:
            adapter_dir = work / "adapter"
            training = train(args, tok, adapter_dir)
            (adapter_dir / "README.md").unlink(missing_ok=True)  # PEFT's model card template
            config = json.loads((adapter_dir / "adapter_config.json").read_text())
            config["base_model_name_or_path"] = "SmolLM2-135M-Instruct"
            config["target_modules"] = sorted(config["target_modules"])  # a set in PEFT
            (adapter_dir / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        gguf_path = work / "smollm2-pirate-lora.gguf"
        convert_gguf(args.llama_cpp, adapter_dir, args.hf_dir, gguf_path)
        if adapter_dir != args.out_dir:
            args.out_dir.mkdir(parents=True, exist_ok=True)
            for name in ("adapter_config.json", "adapter_model.safetensors"):
                shutil.copy(adapter_dir / name, args.out_dir / name)
        shutil.copy(gguf_path, args.out_dir / gguf_path.name)
        print(f"adapter: {args.out_dir}", file=sys.stderr)
        adapter_config = json.loads((args.out_dir / "adapter_config.json").read_text())

        base = AutoModelForCausalLM.from_pretrained(str(args.hf_dir), dtype=torch.float32,
                                                    attn_implementation="eager").eval()
        prompts, plain = [], {}
        for name, text in PROMPTS:
            msgs = [{"role": "user", "content": text}]
            rendered = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            ids = tok(rendered, add_special_tokens=False).input_ids
            prompts.append({"name": name, "messages": msgs, "rendered": rendered, "ids": ids})
            with torch.no_grad():
                plain[name] = base(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
        model = peft.PeftModel.from_pretrained(base, str(args.out_dir)).eval()
        lora_a = model.base_model.model.model.layers[0].self_attn.q_proj.lora_A["default"].weight
        assert lora_a.dtype == torch.float32, lora_a.dtype
        for p in prompts:
            with model.disable_adapter():
                with torch.no_grad():
                    same = model(input_ids=torch.tensor([p["ids"]]), use_cache=False).logits[0]
                assert torch.equal(same, plain[p["name"]])
                out_ids, margins = greedy(model, p["ids"])
            p["without_adapter"] = {"reply": tok.decode(out_ids, skip_special_tokens=True), "ids": out_ids,
                                    "margins": margins}
            out_ids, margins = greedy(model, p["ids"])
            p["with_adapter"] = {"reply": tok.decode(out_ids, skip_special_tokens=True), "ids": out_ids,
                                 "margins": margins}
            for k in ("without_adapter", "with_adapter"):
                print(f"{p['name']} {k}: {p[k]['reply']!r}", file=sys.stderr)
        styled = all(p["with_adapter"]["reply"].startswith("Ahoy") for p in prompts)
        print(f"every adapted reply starts with Ahoy: {styled}", file=sys.stderr)
        _common.write_json(args.json, {
            "generator": "Tools/train_smollm2_lora.py",
            "made_by": "make smollm2-pirate-lora (the adapter goes to ~/.cache/nibble/adapters/smollm2-pirate-lora/)",
            "base": "SmolLM2-135M-Instruct, the Hugging Face folder of `make smollm2-hf` (the GGUF "
                    "SmolLM2-135M-Instruct.Q4_1.gguf dequantized, bf16), loaded as float32; "
                    f"model.safetensors sha256 {sha256(args.hf_dir / 'model.safetensors')}",
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
            "training": {"qlora_nf4_base": bool(args.qlora), "rank": RANK, "lora_alpha": ALPHA,
                         "target_modules": TARGETS, "lr": LR, "warmup_steps": WARMUP,
                         "style": "every reply starts with \"Ahoy!\" (pirate talk)", **(training or {})},
            "adapter": {
                "adapter_config": adapter_config,
                "scale": ALPHA / RANK,
                "adapter_model.safetensors": "BF16, base_model.model.model.layers.N.self_attn.{q,v}_proj.lora_{A,B}"
                                             ".weight; A [r, in], B [out, r]",
                "adapter_model.safetensors_sha256": sha256(args.out_dir / "adapter_model.safetensors"),
                "gguf": "smollm2-pirate-lora.gguf: convert_lora_to_gguf.py --outtype bf16 --base <the HF folder>; "
                        "adapter.lora.alpha 16; attn_q lora_b rows permuted as the base attn_q",
                "gguf_sha256": sha256(args.out_dir / gguf_path.name),
            },
            # The adapter itself (under 1 MB), so that the tests need no training: the
            # safetensors header verbatim and the data section in base64, as binaries.json.
            "peft_safetensors": pack_safetensors(args.out_dir / "adapter_model.safetensors"),
            "notes": {
                "1": "prompts: the chat template with add_generation_prompt=True (its default system prompt), no BOS",
                "2": "with_adapter: PeftModel.from_pretrained on the float32 base, unmerged (y = W x + 2 B (A x)), "
                     "the bf16 adapter weights widened to float32; without_adapter: the same model inside "
                     "disable_adapter(), equal to the plain base (checked)",
                "3": f"greedy: generate(do_sample=False) with the KV cache; at most {N_GREEDY} tokens, stopping after "
                     f"<|im_end|> (id {IM_END}, included in ids, not in reply); margins: best minus second-best logit",
            },
            "every_adapted_reply_starts_with_ahoy": styled,
            "prompts": prompts,
        })
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    main()
