#!/usr/bin/env bash
# Prints the x86 kernel levels this CPU lacks and `make test` therefore runs emulated
# (avxvnni, avx512; Sources/CKernels/x86_simd.h), or nothing: on a CPU with all of them,
# where the suites ran every level natively, and where the emulation cannot run (not x86-64,
# or no AVX2 + FMA + F16C, which the emulated build compiles to).
set -euo pipefail
[ "$(uname -m)" = x86_64 ] || exit 0
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { [[ "$flags" == *" $1 "* ]]; }
has avx2 && has fma && has f16c || exit 0
levels=()
has avx_vnni || levels+=(avxvnni)
# The avx512 level's kernels use VNNI and, where the CPU has it, AVX512-BF16: a CPU without
# either (Skylake-X, Ice Lake) leaves part of it unrun.
{ has avx512f && has avx512bw && has avx512vl && has avx512_vnni && has avx512_bf16; } || levels+=(avx512)
echo "${levels[*]}"
