#!/usr/bin/env python3
"""Compare Nibble with llama.cpp on the same GGUF files, in one run.

Run by ``make compare`` (``python3 Tools/compare_llamacpp.py``).  Standard library
only: it runs with a plain ``python3``, no virtual environment.

What it does, in order:

1. Builds llama.cpp's ``llama-bench``, ``llama-perplexity`` and ``llama-quantize``
   once, with cmake, from the copy vendored in the ``llama-cpp-python==0.3.36``
   sdist (``make vocab`` downloads and extracts it), into
   ``${XDG_CACHE_HOME:-~/.cache}/nibble/llama.cpp-build``.  An existing build is
   reused as it is.
2. Writes the F32, F16, BF16 and Q8_0 variants of the model (``$NIBBLE_MODEL``,
   default ``~/.cache/nibble/models/SmolLM2-135M-Instruct.Q4_1.gguf``) with
   ``nibble quantize`` into ``${XDG_CACHE_HOME:-~/.cache}/nibble/compare/``,
   unless they are already there and newer than both the model and the
   ``nibble`` binary.  The Q4_1 file is the model itself.  llama.cpp's own best
   4-bit types on x86 (Q4_0 and IQ4_NL, which it repacks into interleaved rows
   at load) are made from the F32 file with ``llama-quantize``: their rows set
   llama.cpp on that file against Nibble's q4 on the Q4_1 file.
3. Speed: for each file, ``-r`` pairs of one ``llama-bench -r 1`` (after its
   warm-up) and one ``nibble bench``, back to back, so that the memory's drift (this
   VM's read rate moved between 36 and 66 GB/s within an hour) hits both alike. The
   speeds are the means of the runs; the ratios are the median of the pairs' ratios.
4. Quality (not with ``--quick``): ``llama-perplexity`` on the GPL-3 text with
   ``-c 512``: once on F32 to save the reference logits
   (``--kl-divergence-base``), then ``--kl-divergence`` for Q8_0 and Q4_1; and
   ``nibble eval --model <model> --precision f32|q8|q4 --context 512``.  Both score
   the second half of each 512-token window; both references are the model
   dequantised to f32 (llama.cpp reads it from the F32 file Nibble wrote).
5. Decode at depth (``--depth``, default 1024; 0 skips it): ``llama-bench -d 0,N``
   and ``nibble bench`` without and with ``--depth N`` (a 16-token prompt) generate
   from (almost) empty and after N tokens of context, back to back, for the F32,
   Q8_0 and Q4_1 rows, and the Q4_1 file once more with 8-bit keys and values on
   both sides (``-ctk q8_0 -ctv q8_0``, ``--kv-cache q8``); the second table sets
   decode at that depth against decode without, from those same runs (issue 13:
   within 20 %), in ``-r`` rounds whose ratios' medians are reported, next to
   Nibble's "bytes bound": the bytes a decoded token reads without the context over
   those it reads with it (``nibble bench``'s roofline), the share decode would keep
   if the cache were read as fast as the weights.
6. Prints one table with Nibble / llama.cpp ratios, the machine, the thread
   count, the date and the exact commands run (``--markdown``: as Markdown for
   BENCHMARKS.md).  Progress goes to stderr, the report to stdout.

Options: ``--threads N`` (default: the CPUs this process may use, as ``nproc``),
``--quick`` (``-p 32 -n 16 -r 1``, no perplexity, depth 0 unless given), ``--depth N``, ``--markdown``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

LLAMACPP_VERSION = "0.3.36"
LLAMA_TARGETS = ("llama-bench", "llama-perplexity", "llama-quantize")
CMAKE_OPTIONS = ["-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF",
                 "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=ON"]  # as the Makefile's llama-server target: one configuration
GPL3 = Path("/usr/share/common-licenses/GPL-3")
EVAL_CTX = 512

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nibble"
SDIST = CACHE / f"llama-cpp-python-{LLAMACPP_VERSION}"
LLAMA_SRC = SDIST / "vendor" / "llama.cpp"
LLAMA_BUILD = CACHE / "llama.cpp-build"
# --isa LEVEL: both engines held to one instruction-set level on a CPU that has more, to stand
# in for a machine that has only that level. llama.cpp gets a build of its own without
# GGML_NATIVE (AVX, AVX2, FMA, F16C, BMI2; no AVX-512), Nibble NIBBLE_ISA=LEVEL.
ISA_BUILDS = {
    "avx2": ["-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
             "-DLLAMA_BUILD_SERVER=OFF"],
    "avxvnni": ["-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=OFF", "-DGGML_AVX_VNNI=ON", "-DLLAMA_CURL=OFF",
                "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF"],
}
WORK = CACHE / "compare"
DEFAULT_MODEL = CACHE / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
NIBBLE = ROOT / ".build" / "release" / "nibble"

COMMANDS: list[str] = []  # every command run, for the report


class StepError(Exception):
    pass


def log(msg: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def short(path: os.PathLike | str) -> str:
    """A path with the home folder written as ~ (for the report only)."""
    s, home = str(path), str(Path.home())
    return "~" + s[len(home):] if s == home or s.startswith(home + os.sep) else s


def quote(arg: os.PathLike | str) -> str:
    """One shell word for the report, with a leading ~/ left unquoted so it still expands."""
    s = short(arg)
    return "~/" + shlex.quote(s[2:]) if s.startswith("~/") else shlex.quote(s)


def join(cmd: list) -> str:
    return " ".join(quote(c) for c in cmd)


def run(cmd: list, what: str, cwd: Path | None = None, record: bool = True,
        stream: bool = False) -> subprocess.CompletedProcess:
    """Runs cmd; on failure raises StepError with the command and its stderr tail."""
    cmd = [str(c) for c in cmd]
    if record:
        COMMANDS.append(join(cmd))
    start = time.monotonic()
    try:
        if stream:  # long builds: let the output through
            proc = subprocess.run(cmd, cwd=cwd, text=True, stdout=sys.stderr, stderr=subprocess.PIPE)
        else:
            proc = subprocess.run(cmd, cwd=cwd, text=True, capture_output=True)
    except OSError as e:
        raise StepError(f"{what}: cannot run {shlex.join(cmd)}: {e}") from None
    if proc.returncode != 0:
        tail = "\n".join(((proc.stderr or "") + (proc.stdout or "")).rstrip().splitlines()[-25:])
        raise StepError(f"{what} failed (exit {proc.returncode}):\n  $ {shlex.join(cmd)}\n"
                        + "\n".join("  | " + line for line in tail.splitlines()))
    log(f"{what}: done in {time.monotonic() - start:.1f} s")
    return proc


# ---------------------------------------------------------------- llama.cpp build

def ensure_cmake() -> str:
    cmake = shutil.which("cmake")
    if cmake:
        return cmake
    log("cmake not found: installing it")
    if shutil.which("apt-get") and os.geteuid() == 0:
        run(["apt-get", "install", "-y", "-q", "cmake"], "apt-get install cmake", record=False)
    else:
        run([sys.executable, "-m", "pip", "install", "--user", "-q", "cmake"], "pip install cmake", record=False)
    cmake = shutil.which("cmake") or shutil.which("cmake", path=str(Path.home() / ".local" / "bin"))
    if not cmake:
        raise StepError("cmake was installed but is not on PATH; install cmake (apt-get install cmake, "
                        "or pip install cmake) and rerun")
    return cmake


def ensure_llamacpp() -> Path:
    bindir = LLAMA_BUILD / "bin"
    if all((bindir / t).is_file() and os.access(bindir / t, os.X_OK) for t in LLAMA_TARGETS):
        log(f"llama.cpp: reusing {short(bindir)}")
        COMMANDS.append("# llama.cpp: reused the build in " + quote(LLAMA_BUILD) + ", made by: "
                        + join(["cmake", "-S", LLAMA_SRC, "-B", LLAMA_BUILD, *CMAKE_OPTIONS]) + " && "
                        + join(["cmake", "--build", LLAMA_BUILD, "-j", usable_cpus(), "--target", *LLAMA_TARGETS]))
        return bindir
    if not (LLAMA_SRC / "CMakeLists.txt").is_file():
        log(f"llama.cpp source missing ({short(LLAMA_SRC)}): running make vocab")
        run(["make", "-C", ROOT, "vocab"], "make vocab (download the llama-cpp-python sdist)", record=False)
        if not (LLAMA_SRC / "CMakeLists.txt").is_file():
            raise StepError(f"make vocab did not produce {LLAMA_SRC}/CMakeLists.txt")
    cmake = ensure_cmake()
    jobs = str(usable_cpus())
    log(f"building llama.cpp into {short(LLAMA_BUILD)} (about 10 min on 2 cores)")
    run([cmake, "-S", LLAMA_SRC, "-B", LLAMA_BUILD, *CMAKE_OPTIONS], "cmake configure llama.cpp", stream=True)
    run([cmake, "--build", LLAMA_BUILD, "-j", jobs, "--target", *LLAMA_TARGETS], "cmake build llama.cpp",
        stream=True)
    missing = [t for t in LLAMA_TARGETS if not (bindir / t).is_file()]
    if missing:
        raise StepError(f"the llama.cpp build finished, but {bindir} lacks {', '.join(missing)}")
    return bindir


# ---------------------------------------------------------------- model files

QUANT_SUFFIX = re.compile(r"[._-](F32|F16|BF16|Q\d+(_[0-9A-Z]+)*)$", re.IGNORECASE)


def ensure_variant(model: Path, precision: str, tag: str) -> Path:
    """The model written by `nibble quantize --precision precision`, cached."""
    stem = QUANT_SUFFIX.sub("", model.name[:-5] if model.name.endswith(".gguf") else model.name)
    out = WORK / f"{stem}.{tag}.gguf"
    fresh_after = max(model.stat().st_mtime, NIBBLE.stat().st_mtime)
    if out.is_file() and out.stat().st_mtime > fresh_after:
        log(f"{tag}: reusing {short(out)}")
        COMMANDS.append(f"# reused (newer than the model and nibble): "
                        + join([NIBBLE, "quantize", "--model", model, "--precision", precision, "--output", out]))
        return out
    WORK.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{stem}.{tag}.partial.gguf")
    run([NIBBLE, "quantize", "--model", model, "--precision", precision, "--output", tmp],
        f"nibble quantize {precision}")
    COMMANDS[-1] = COMMANDS[-1].replace(quote(tmp), quote(out))
    tmp.replace(out)
    return out


def ensure_llama_variant(bindir: Path, f32: Path, qtype: str, threads: int) -> Path:
    """f32 quantised to qtype by llama-quantize, cached like ensure_variant's files."""
    out = f32.with_name(f32.name.replace("nibble-F32", f"llama-{qtype}"))
    if out.is_file() and out.stat().st_mtime > f32.stat().st_mtime:
        log(f"{qtype}: reusing {short(out)}")
        COMMANDS.append("# reused (newer than the F32 file): " + join([bindir / "llama-quantize", f32, out, qtype, threads]))
        return out
    tmp = out.with_name(out.name.replace(".gguf", ".partial.gguf"))
    run([bindir / "llama-quantize", f32, tmp, qtype, threads], f"llama-quantize {qtype}")
    COMMANDS[-1] = COMMANDS[-1].replace(quote(tmp), quote(out))
    tmp.replace(out)
    return out


# ---------------------------------------------------------------- speed

def mean_sd(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def llama_bench(bindir: Path, model: Path, p: int, n: int, reps: int, threads: int, record: bool = True) -> dict:
    proc = run([bindir / "llama-bench", "-m", model, "-p", p, "-n", n, "-t", threads, "-r", reps, "-o", "json"],
               f"llama-bench {model.name}", record=record)
    try:
        rows = json.loads(proc.stdout)
        pp = next(r for r in rows if r["n_prompt"] == p and r["n_gen"] == 0)
        tg = next(r for r in rows if r["n_gen"] == n and r["n_prompt"] == 0)
    except (ValueError, StopIteration, KeyError, TypeError) as e:
        raise StepError(f"llama-bench {model.name}: unexpected JSON ({e!r}):\n{proc.stdout[-2000:]}") from None
    return {"pp": (pp["avg_ts"], pp["stddev_ts"]), "tg": (tg["avg_ts"], tg["stddev_ts"]),
            "type": pp.get("model_type", "?"), "commit": pp.get("build_commit", "?")}


def llama_bench_depth(bindir: Path, model: Path, n: int, depth: int, reps: int, threads: int, extra: list = [],
                      record: bool = True) -> dict:
    """tg n from an empty cache and after `depth` tokens of context, in one llama-bench
    (-d 0,depth: back to back), mean and sd of tok/s by depth."""
    proc = run([bindir / "llama-bench", "-m", model, "-p", 0, "-n", n, "-d", f"0,{depth}", "-t", threads, "-r", reps,
                "-o", "json"] + extra, f"llama-bench -d 0,{depth} {model.name}", record=record)
    try:
        rows = json.loads(proc.stdout)
        return {d: next((r["avg_ts"], r["stddev_ts"]) for r in rows if r["n_gen"] == n and r.get("n_depth") == d)
                for d in (0, depth)}
    except (ValueError, StopIteration, KeyError, TypeError) as e:
        raise StepError(f"llama-bench -d 0,{depth} {model.name}: unexpected JSON ({e!r}):\n{proc.stdout[-2000:]}") from None


def nibble_bench(model: Path, precision: str, p: int, n: int, reps: int, threads: int, depth: int = 0,
                 record: bool = True, extra: list = []) -> dict:
    prefill, decode, read = [], [], []
    for i in range(reps):
        proc = run([NIBBLE, "bench", "--model", model, "--precision", precision, "--prompt-tokens", p,
                    "--gen-tokens", n, "--threads", threads, "--json"] + (["--depth", depth] if depth else []) + extra,
                   f"nibble bench {precision}" + (f" --depth {depth}" if depth else "") + f" ({i + 1}/{reps})",
                   record=record and i == 0)
        try:
            res = next(r for r in json.loads(proc.stdout)["results"] if r["precision"] == precision)
            prefill.append(float(res["prefill_tok_s"]))
            decode.append(float(res["decode_tok_s"]))
            read.append(float(res["decode_bytes_per_token"]))
        except (ValueError, StopIteration, KeyError, TypeError) as e:
            raise StepError(f"nibble bench {precision}: unexpected JSON ({e!r}):\n{proc.stdout[-2000:]}") from None
    if reps > 1 and record:
        COMMANDS[-1] += f"   # × {reps}, mean"
    return {"pp": mean_sd(prefill), "tg": mean_sd(decode), "read": statistics.mean(read)}


def depth_rounds(bindir: Path, r: dict, n: int, depth: int, reps: int, threads: int,
                 llama_extra: list = [], nibble_extra: list = []) -> None:
    """reps rounds of: llama-bench -d 0,depth -r 1, then nibble bench without and with
    --depth, back to back. Speeds: means of the rounds; "kept" (depth / no depth, per
    engine) and Nibble / llama.cpp at the depth: medians of the rounds' ratios (one run
    each swung "kept" by ±15 % on this VM)."""
    l0, ld, n0, nd, read0, readd = [], [], [], [], [], []
    for i in range(reps):
        both = llama_bench_depth(bindir, r["file"], n, depth, 1, threads, llama_extra, record=i == 0)
        l0.append(both[0][0])
        ld.append(both[depth][0])
        a = nibble_bench(r["file"], r["precision"], 16, n, 1, threads, record=i == 0, extra=nibble_extra)
        b = nibble_bench(r["file"], r["precision"], 16, n, 1, threads, depth, record=i == 0, extra=nibble_extra)
        n0.append(a["tg"][0])
        nd.append(b["tg"][0])
        read0.append(a["read"])
        readd.append(b["read"])
    if reps > 1:
        for k in (1, 2, 3):
            COMMANDS[-k] += f"   # × {reps}"
    r["llama_depth0"], r["llama_depth"], r["nibble_depth0"], r["nibble_depth"] = mean_sd(l0), mean_sd(ld), mean_sd(n0), mean_sd(nd)
    r["llama_kept"] = statistics.median(b / a for a, b in zip(l0, ld))
    r["nibble_kept"] = statistics.median(b / a for a, b in zip(n0, nd))
    r["depth_ratio"] = statistics.median(b / a for a, b in zip(ld, nd))
    # What "kept" would be if the cache were read as fast as the weights: the bytes a decoded
    # token reads without the context over those it reads with it (nibble bench's roofline).
    r["nibble_bytes_bound"] = statistics.mean(read0) / statistics.mean(readd)


def paired_speed(bindir: Path, r: dict, p: int, n: int, reps: int, threads: int) -> None:
    """reps pairs of llama-bench -r 1 and nibble bench, back to back: r["llama_bench"] and
    r["nibble_bench"] get the means (and sd) of the runs, r["ratio"] the median of the
    pairs' Nibble / llama.cpp for pp and tg."""
    lpp, ltg, npp, ntg = [], [], [], []
    lb = None
    for i in range(reps):
        lb = llama_bench(bindir, r.get("llama_file", r["file"]), p, n, 1, threads, record=i == 0)
        nb = nibble_bench(r["file"], r["precision"], p, n, 1, threads, record=i == 0)
        lpp.append(lb["pp"][0]); ltg.append(lb["tg"][0]); npp.append(nb["pp"][0]); ntg.append(nb["tg"][0])
    if reps > 1:
        COMMANDS[-2] += f"   # × {reps}, each followed by the nibble bench below"
        COMMANDS[-1] += f"   # × {reps}, mean"
    r["llama_bench"] = {"pp": mean_sd(lpp), "tg": mean_sd(ltg), "type": lb["type"], "commit": lb["commit"]}
    r["nibble_bench"] = {"pp": mean_sd(npp), "tg": mean_sd(ntg)}
    r["ratio"] = {"pp": statistics.median(a / b for a, b in zip(npp, lpp)),
                  "tg": statistics.median(a / b for a, b in zip(ntg, ltg))}


# ---------------------------------------------------------------- quality

NUM = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"


def grab(pattern: str, text: str, what: str, cmd_name: str) -> float:
    m = re.search(pattern, text, re.MULTILINE)
    if not m:
        tail = "\n".join(text.rstrip().splitlines()[-25:])
        raise StepError(f"{cmd_name}: could not find {what} in its output; its tail:\n{tail}")
    return float(m.group(1))


def llama_ppl_base(bindir: Path, f32: Path, base: Path, threads: int) -> dict:
    proc = run([bindir / "llama-perplexity", "-m", f32, "-f", GPL3, "-c", EVAL_CTX, "-t", threads,
                "--kl-divergence-base", base], "llama-perplexity F32 (saves the KLD base)")
    out = proc.stdout + "\n" + proc.stderr
    name = "llama-perplexity F32"
    chunks = int(grab(r"over (\d+) chunks", out, "the chunk count", name))
    return {"ppl": grab(r"Final estimate: PPL = " + NUM, out, "'Final estimate: PPL ='", name),
            "tokens": chunks * (EVAL_CTX - EVAL_CTX // 2 - 1)}


def llama_kld(bindir: Path, model: Path, base: Path, threads: int, tag: str) -> dict:
    proc = run([bindir / "llama-perplexity", "-m", model, "-f", GPL3, "-c", EVAL_CTX, "-t", threads,
                "--kl-divergence", "--kl-divergence-base", base], f"llama-perplexity --kl-divergence {tag}")
    out = proc.stdout + "\n" + proc.stderr
    name = f"llama-perplexity --kl-divergence {tag}"
    chunks = int(grab(r"over (\d+) chunks", out, "the chunk count", name))
    return {"ppl": grab(r"^Mean PPL\(Q\)\s*:\s*" + NUM, out, "'Mean PPL(Q)'", name),
            "ppl_base": grab(r"^Mean PPL\(base\)\s*:\s*" + NUM, out, "'Mean PPL(base)'", name),
            "kld": grab(r"^Mean\s+KLD:\s*" + NUM, out, "'Mean    KLD:'", name),
            "kld_p99": grab(r"^99\.0%\s+KLD:\s*" + NUM, out, "'99.0%   KLD:'", name),
            "top1": grab(r"^Same top p:\s*" + NUM, out, "'Same top p:'", name) / 100,
            "tokens": chunks * (EVAL_CTX - EVAL_CTX // 2 - 1)}


def nibble_eval(model: Path, precision: str, threads: int) -> dict:
    proc = run([NIBBLE, "eval", "--model", model, "--precision", precision, "--file", GPL3, "--context", EVAL_CTX,
                "--threads", threads, "--json"], f"nibble eval {precision}")
    try:
        r = json.loads(proc.stdout)
        return {"ppl": float(r["perplexity"]), "kld": float(r["kld_mean"]), "kld_p99": float(r["kld_p99"]),
                "top1": float(r["top1_agreement"]), "tokens": int(r["tokens"])}
    except (ValueError, KeyError, TypeError) as e:
        raise StepError(f"nibble eval {precision}: unexpected JSON ({e!r}):\n{proc.stdout[-2000:]}") from None


# ---------------------------------------------------------------- machine

def machine() -> str:
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        info = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^(?:model name|Model|Hardware)\s*:\s*(.+)$", info, re.MULTILINE)
        cpu = m.group(1).strip() if m else cpu
        fam = re.search(r"^cpu family\s*:\s*(\d+)$", info, re.MULTILINE)
        if fam:
            cpu += f" (family {fam.group(1)})"
        m = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", info, re.MULTILINE)
        flags = set(m.group(1).split()) if m else set()
    except OSError:
        try:  # macOS
            cpu = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                 text=True).stdout.strip() or cpu
        except OSError:
            pass
    wanted = [("avx", "AVX"), ("avx2", "AVX2"), ("fma", "FMA"), ("f16c", "F16C"), ("avx_vnni", "AVX-VNNI"),
              ("avx512f", "AVX-512"), ("avx512_vnni", "AVX-512 VNNI"), ("avx512_bf16", "AVX-512 BF16"),
              ("amx_tile", "AMX"), ("asimd", "NEON"), ("asimddp", "dotprod"), ("i8mm", "i8mm"),
              ("sve", "SVE")]
    have = [label for flag, label in wanted if flag in flags]
    if flags and "avx2" in flags and "avx512f" not in flags:
        have.append("no AVX-512")
    cores = os.cpu_count() or 0
    text = f"{cpu}, {cores} logical CPUs"
    return text + (", " + " + ".join(have) if have else "")


def load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ---------------------------------------------------------------- report

def fmt_speed(ms: tuple[float, float] | None, plus_minus: bool) -> str:
    if ms is None:
        return "—"
    m, sd = ms
    return f"{m:.1f} ± {sd:.1f}" if plus_minus and sd > 0 else f"{m:.1f}"


def fmt_ratio(a, b) -> str:
    return f"{a[0] / b[0]:.2f}×" if a and b and b[0] > 0 else "—"


def fmt(x: float | None, spec: str, scale: float = 1) -> str:
    return "—" if x is None else format(x * scale, spec)


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.2f} %"


def build_rows(rows: list[dict], p: int, n: int, quality: bool, plus_minus: bool) -> tuple[list[str], list[list[str]]]:
    head = ["type", f"llama.cpp pp{p} tok/s", "Nibble prefill", "ratio",
            f"llama.cpp tg{n} tok/s", "Nibble decode", "ratio"]
    if quality:
        head += ["llama.cpp mean KLD", "Nibble mean KLD", "llama.cpp same top-1", "Nibble top-1",
                 "llama.cpp PPL", "Nibble PPL"]
    out = []
    for r in rows:
        lb, nb, lq, nq = r["llama_bench"], r["nibble_bench"], r.get("llama_q"), r.get("nibble_q")
        ratio = r.get("ratio")
        line = [r["label"], fmt_speed(lb["pp"], plus_minus), fmt_speed(nb["pp"], plus_minus),
                f"{ratio['pp']:.2f}×" if ratio else fmt_ratio(nb["pp"], lb["pp"]),
                fmt_speed(lb["tg"], plus_minus), fmt_speed(nb["tg"], plus_minus),
                f"{ratio['tg']:.2f}×" if ratio else fmt_ratio(nb["tg"], lb["tg"])]
        if quality:
            ref = r["precision"] == "f32" and not r.get("llama_only")
            line += ["— (ref)" if ref else fmt(lq and lq.get("kld"), ".6f"),
                     "— (ref)" if ref else fmt(nq and nq.get("kld"), ".6f"),
                     "—" if ref else pct(lq and lq.get("top1")),
                     "—" if ref else pct(nq and nq.get("top1")),
                     fmt(lq and lq.get("ppl"), ".4f"), fmt(nq and nq.get("ppl"), ".4f")]
        out.append(line)
    return head, out


def depth_rows(rows: list[dict], n: int, depth: int) -> tuple[list[str], list[list[str]]]:
    head = ["type", f"llama.cpp tg{n} @ d0", f"@ d{depth}", "kept", f"Nibble tg{n} @ d0", f"@ d{depth}", "kept",
            "bytes bound", f"Nibble / llama.cpp @ d{depth}"]
    out = []
    for r in rows:
        if "llama_depth" not in r:
            continue
        l0, ld, n0, nd = r["llama_depth0"], r["llama_depth"], r["nibble_depth0"], r["nibble_depth"]
        out.append([r["label"], fmt_speed(l0, False), fmt_speed(ld, False), f"{r['llama_kept'] * 100:.0f} %",
                    fmt_speed(n0, False), fmt_speed(nd, False), f"{r['nibble_kept'] * 100:.0f} %",
                    f"{r['nibble_bytes_bound'] * 100:.0f} %", f"{r['depth_ratio']:.2f}×"])
    return head, out


def text_table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(c) for c in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(head), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def md_table(head: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def report(args, info: dict, rows: list[dict], depth_extra: list[dict] = []) -> str:
    quality = not args.quick
    head, body = build_rows(rows, args.p, args.n, quality, plus_minus=args.r > 1)
    facts = [
        ("date", info["date"]),
        ("machine", info["machine"]),
        ("threads", str(args.threads) + ("" if info["load"] is None else
                                         f" (1-min load average before the run: {info['load']:.2f})")),
        ("model", short(info["model"])),
        ("llama.cpp", f"build {info['commit']} (vendored in llama-cpp-python=={LLAMACPP_VERSION}), "
                      f"{short(LLAMA_BUILD)}, "
                      + (" ".join(o for o in CMAKE_OPTIONS if o.startswith("-DGGML")) if args.isa else "-DGGML_NATIVE=ON")),
        ("Nibble", f"{info['nibble_version']}, {short(NIBBLE)}" + (f", NIBBLE_ISA={args.isa}" if args.isa else "")),
        ("speed", f"prompt {args.p} tokens, {args.n} generated; {args.r} pair(s) of llama-bench -r 1 (after its "
                  f"warm-up) and nibble bench, back to back; speeds: means of the runs; ratio: the median of "
                  f"the pairs' Nibble / llama.cpp"),
    ]
    if quality:
        tok = info.get("tokens", {})
        facts.append(("quality", f"{short(GPL3)}, windows of {EVAL_CTX} tokens, second half scored "
                                 f"(llama.cpp {tok.get('llama', '?')} tokens, Nibble {tok.get('nibble', '?')}); "
                                 "KLD and top-1 against the model dequantised to f32 (llama.cpp: the F32 file)"))
    else:
        facts.append(("quality", "skipped (--quick)"))
    dhead, dbody = depth_rows(rows + depth_extra, args.n, args.depth)
    if any(r.get("llama_only") for r in rows):
        facts.append(("4-bit", "rows marked (llama.cpp): llama.cpp on that type (made by llama-quantize from the F32 "
                               "file; repacked at load), Nibble on its q4 row's file and precision"))
    if args.markdown:
        out = [f"## {info['date'][:10]} — Nibble vs llama.cpp, {info['model'].name}, {args.threads} thread{'s' if args.threads != 1 else ''}", ""]
        out += [f"* {k}: {v}" for k, v in facts]
        out += ["", md_table(head, body)]
        if dbody:
            out += ["", f"Decode after {args.depth} tokens of context against decode without ({args.n} generated, "
                        f"llama-bench -d / nibble bench --depth; {args.r} round(s) of the four runs back to back: "
                        "speeds the means, kept and the ratio the medians of the rounds'; bytes bound: Nibble's bytes "
                        "read a token without the context over those with it, the share kept if the cache were read as "
                        "fast as the weights):", "", md_table(dhead, dbody)]
        out += ["", "Commands:", "```sh"] + COMMANDS + ["```"]
    else:
        out = [f"{k + ':':<10} {v}" for k, v in facts]
        out += ["", text_table(head, body)]
        if dbody:
            out += ["", f"decode after {args.depth} tokens of context:", text_table(dhead, dbody)]
        out += ["", "Commands run:"] + ["  " + c for c in COMMANDS]
    return "\n".join(out)


# ---------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description="Compare Nibble with llama.cpp (speed and quantisation quality) "
                                             "on the same GGUF files and thread count.")
    ap.add_argument("--threads", type=int, default=usable_cpus(), help="threads for both engines (default: nproc)")
    ap.add_argument("--quick", action="store_true", help="-p 32 -n 16 -r 1 and no perplexity: a fast check")
    ap.add_argument("--markdown", action="store_true", help="print the report as Markdown for BENCHMARKS.md")
    ap.add_argument("--depth", type=int, default=None,
                    help="also decode after this many tokens of context (llama-bench -d; 0: skip; default 1024, "
                         "with --quick 0)")
    ap.add_argument("--model", type=Path, default=None,
                    help="the GGUF to compare (default: $NIBBLE_MODEL or SmolLM2 Q4_1). A Q4_1 file gets F32, Q8_0 and "
                         "Q4_1 rows; any other file (e.g. Q4_K_M) an F32 row and its own row, which Nibble runs at "
                         "`native` (each tensor on its own blocks)")
    ap.add_argument("--isa", choices=sorted(ISA_BUILDS), default=None,
                    help="hold both engines to one instruction-set level (a machine with only that level): "
                         "llama.cpp built without -DGGML_NATIVE into llama.cpp-build-LEVEL, Nibble with NIBBLE_ISA")
    args = ap.parse_args()
    if args.isa:
        global LLAMA_BUILD, CMAKE_OPTIONS
        LLAMA_BUILD = CACHE / f"llama.cpp-build-{args.isa}"
        CMAKE_OPTIONS = ISA_BUILDS[args.isa]
        os.environ["NIBBLE_ISA"] = args.isa  # every nibble command below inherits it
        COMMANDS.append(f"export NIBBLE_ISA={args.isa}")
    if args.threads < 1:
        ap.error("--threads must be at least 1")
    args.p, args.n, args.r = (32, 16, 1) if args.quick else (128, 64, 3)
    if args.depth is None:
        args.depth = 0 if args.quick else 1024
    if args.depth < 0:
        ap.error("--depth must be at least 0")

    model = (args.model or Path(os.environ.get("NIBBLE_MODEL") or DEFAULT_MODEL)).expanduser()
    if not model.is_file():
        raise StepError(f"model not found: {model} (run `make model`, or set NIBBLE_MODEL, or give --model)")
    if not NIBBLE.is_file():
        raise StepError(f"{NIBBLE} is missing: build it with `swift build -c release` (or `make build`)")
    if not args.quick and not GPL3.is_file():
        raise StepError(f"{GPL3} is missing (Debian/Ubuntu package base-files); needed for perplexity, "
                        "or use --quick")

    info = {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "machine": machine(), "model": model, "load": load()}
    if info["load"] is not None and info["load"] > 0.25 * (os.cpu_count() or 1):
        log(f"warning: load average {info['load']:.2f} before starting: other work on the machine skews the "
            "speeds (llama.cpp's spinning threads suffer most when every core is in use)")
    proc = run([NIBBLE, "--version"], "nibble --version", record=False)
    info["nibble_version"] = "nibble " + proc.stdout.strip()

    bindir = ensure_llamacpp()
    f32 = ensure_variant(model, "f32", "nibble-F32")
    rows = [{"label": "F32", "precision": "f32", "file": f32}]
    suffix = QUANT_SUFFIX.search(model.name[:-5] if model.name.endswith(".gguf") else model.name)
    if suffix and suffix.group(1).upper() not in ("Q4_1", "F32", "Q8_0"):
        # A file of mixed types (Q4_K_M: Q4_K, Q6_K, Q5_0, Q8_0 tensors): both engines run
        # it as it is; Nibble at `native`, each matrix on its own blocks.
        rows.append({"label": suffix.group(1).upper(), "precision": "native", "file": model})
    else:
        f16 = ensure_variant(model, "f16", "nibble-F16")
        bf16 = ensure_variant(model, "bf16", "nibble-BF16")
        q8 = ensure_variant(model, "q8", "nibble-Q8_0")
        q4 = model if "q4_1" in model.name.lower() else ensure_variant(model, "q4", "nibble-Q4_1")
        rows += [{"label": "F16", "precision": "f16", "file": f16},
                 {"label": "BF16", "precision": "bf16", "file": bf16},
                 {"label": "Q8_0", "precision": "q8", "file": q8},
                 {"label": "Q4_1", "precision": "q4", "file": q4}]
        # llama.cpp's best 4-bit types on x86 (repacked at load) against Nibble's q4.
        for qtype in ("Q4_0", "IQ4_NL"):
            rows.append({"label": f"{qtype} (llama.cpp) vs q4", "precision": "q4", "file": q4, "llama_only": True,
                         "llama_file": ensure_llama_variant(bindir, f32, qtype, args.threads)})

    log(f"speed: pp{args.p} / tg{args.n}, {args.r} run(s), {args.threads} threads")
    for r in rows:
        paired_speed(bindir, r, args.p, args.n, args.r, args.threads)
        info["commit"] = r["llama_bench"]["commit"]
    depth_extra: list[dict] = []
    if args.depth:
        log(f"decode after {args.depth} tokens of context")
        for r in rows:
            if r["label"] in ("F32", "Q8_0", "Q4_1") or (r["precision"] == "native" and not r.get("llama_only")):
                # Each engine at depth 0 and at the depth back to back, so that "kept" does not
                # compare runs minutes apart (this VM's memory rate drifts).
                depth_rounds(bindir, r, args.n, args.depth, args.r, args.threads)
        # The Q4_1 file again with 8-bit keys and values on both sides (llama.cpp's q8_0 cache,
        # Nibble's q8: the same blocks of 32), for the depth table only.
        for r in [r for r in rows if r["label"] == "Q4_1"]:
            kv = {"label": "Q4_1, KV cache q8_0 / q8", "precision": "q4", "file": r["file"]}
            depth_rounds(bindir, kv, args.n, args.depth, args.r, args.threads, ["-ctk", "q8_0", "-ctv", "q8_0"], ["--kv-cache", "q8"])
            depth_extra.append(kv)

    if not args.quick:
        log("quality: perplexity and KL divergence on the GPL-3 text (about 1–2 min per step on 2 cores)")
        WORK.mkdir(parents=True, exist_ok=True)
        base = WORK / "kld-base.bin"
        try:
            for r in rows:
                if r["precision"] == "f32":
                    r["llama_q"] = llama_ppl_base(bindir, f32, base, args.threads)
                else:
                    r["llama_q"] = llama_kld(bindir, r.get("llama_file", r["file"]), base, args.threads, r["label"])
                if r.get("llama_only"):
                    continue  # Nibble's q4 is its own row
                # Nibble scores the model itself at each precision, against its own f32 of it.
                r["nibble_q"] = nibble_eval(model, r["precision"], args.threads)
        finally:
            base.unlink(missing_ok=True)  # ~350 MB of saved logits
        info["tokens"] = {"llama": rows[0]["llama_q"]["tokens"], "nibble": rows[0]["nibble_q"]["tokens"]}

    print(report(args, info, rows, depth_extra))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StepError as e:
        print(f"compare_llamacpp: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("compare_llamacpp: interrupted", file=sys.stderr)
        sys.exit(130)
