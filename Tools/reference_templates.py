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

``--fuzz N [--nibble .build/release/nibble] [--seed S]`` writes nothing: it renders N
random templates (expressions, filters, tests, methods, loops, namespaces, macros,
whitespace control) with jinja2 and with ``nibble template`` and prints every case where
the output differs or only one of them fails.  Known difference: jinja2 folds constant
expressions when compiling, so slicing a literal that is not a sequence (``(1)[1:]``)
gives undefined there but a TypeError at run time (and in Nibble); the generator
therefore draws values from the context.
"""

from __future__ import annotations

import argparse
import copy
import json
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
SEMANTICS_OUT = f"{RESOURCES}/jinja-semantics.json"
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


# A conversation with a tool call and its result (OpenAI / transformers layout: the
# arguments are a dict), rendered with TOOLS passed as `tools`: exercises the tool
# branches (tojson, macros, namespaces) that plain chats never reach.
TOOL_CONVERSATION = ("tool_use", [
    msg("system", "You are a helpful assistant with tools."),
    msg("user", "What's the weather in Paris, in °C?"),
    {"role": "assistant", "content": "", "tool_calls": [{
        "id": "a1b2c3d4e", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
    {"role": "tool", "tool_call_id": "a1b2c3d4e", "name": "get_weather", "content": "{\"temperature\": 18, \"sky\": \"clear\"}"},
    msg("assistant", "It is 18 °C and clear in Paris."),
    msg("user", "Thanks! And tomorrow?"),
])
TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city, e.g. \"Paris\""},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"},
                "days": {"type": "integer", "description": "Days ahead", "default": 0},
            },
            "required": ["city"],
        },
    },
}]


# Focused snippets of Jinja semantics: (name, template, context).  Rendered with the
# same transformers environment; the expected output (or error) is jinja2's.
D = {"a": 1, "items": "key named items", "nested": {"z": [1, 2], "y": None}}
MSGS = [{"role": "system", "content": "sys"}, {"role": "user", "content": " hi "},
        {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"}]
SNIPPETS: list[tuple[str, str, dict]] = [
    # --- whitespace control, trim_blocks, lstrip_blocks
    ("ws_trim_lstrip", "{% if true %}\n    yes\n{% endif %}\nafter\n", {}),
    ("ws_lstrip_only_line_start", "x  {% if true %}y{% endif %}  z", {}),
    ("ws_lstrip_indented_block", "a\n    {% if true %}\n    b\n    {% endif %}\nc", {}),
    ("ws_minus_both_sides", "a  \n {%- if true -%}  \n b  \n {%- endif -%} \n c", {}),
    ("ws_variable_minus", "a \n {{- 'x' -}} \n b", {}),
    ("ws_variable_not_lstripped", "  {{ 'v' }}  \n  {{ 'w' }}\n", {}),
    ("ws_comment_trim", "a\n  {# comment #}\nb\n{#- c2 -#}\n  c", {}),
    ("ws_plus_disables_lstrip", "    {%+ if true %}x{% endif %}", {}),
    ("ws_plus_disables_trim", "{% if true +%}\nx{% endif %}", {}),
    ("ws_trailing_newline_dropped", "a\n{{ 'b' }}\n", {}),
    ("ws_two_trailing_newlines", "a\n\n", {}),
    ("ws_crlf", "x\r\n{% if true %}\r\n  y\r\n{% endif %}\r\nz\r\n", {}),
    ("ws_tabs", "\t{% for i in [1, 2] %}\n\t{{ i }}\n\t{% endfor %}\n", {}),
    ("ws_multiline_tag", "{%- if\n   true\n-%}\n  yes\n{%- endif %}|", {}),
    ("ws_set_trim", "{% set x = 1 %}\n{{ x }}\n", {}),
    ("ws_raw", "{% raw %}{{ x }} {% if %}{% endraw %}", {}),
    ("ws_raw_minus", "a  {%- raw -%}  {{ y }}  {%- endraw -%}  b", {}),
    ("ws_unicode_spaces", "a\u00a0\u3000{%- if true %}b{% endif %}", {}),
    ("ws_line_start_after_var", "{{ 'a' }}\n  {% if true %}b{% endif %}", {}),
    ("ws_nested_for_if", "{% for m in messages %}\n  {% if m.role == 'user' %}\n    [{{ m.content }}]\n  {% endif %}\n{% endfor %}", {"messages": MSGS}),
    ("ws_unterminated_comment_at_end", "a\n{#", {}),
    ("ws_raw_at_end", "a{% raw %}", {}),
    # --- literals
    ("lit_string_escapes", "{{ 'a\\nb\\tc\\\\d\\'e\"f' }}|{{ \"\\u00e9\\x41\\101\\d\" }}|{{ 'x' 'y' \"z\" }}", {}),
    ("lit_string_unicode", "{{ 'é😀\u2028' }}|{{ '\\é' }}|{{ '\\U0001F600' }}", {}),
    ("lit_numbers", "{{ 1_000 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 1e3 }} {{ 1.5e-3 }} {{ 1.0 }} {{ 2.50 }} {{ 1_0.5 }}", {}),
    ("lit_collections", "{{ [1, 'a', none, true, 1.5, [2]] }} {{ {'k': 'v', 'n': {'x': none}} }} {{ (1, 2) }} {{ () }} {{ [] }} {{ {} }}", {}),
    ("lit_trailing_commas", "{{ [1, 2,] }} {{ {'a': 1,} }}", {}),
    ("lit_int_keys", "{% set d = {1: 'one', 2.0: 'two', true: 'yes', none: 'nil'} %}{{ d }} {{ d[1] }} {{ d[2] }} {{ d[none] }} {{ d|tojson }}", {}),
    ("lit_true_variants", "{{ True }} {{ False }} {{ None }} {{ true is sameas True }}", {}),
    # --- rendering of values
    ("render_scalars", "{{ none }}|{{ true }}|{{ false }}|{{ 1 }}|{{ -0.0 }}|{{ 1e20 }}|{{ 1e16 }}|{{ 1e15 }}|{{ 1e-5 }}|{{ 0.0001 }}|{{ 1/3 }}", {}),
    ("render_repr_strings", "{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'nl\\n', 'tab\\t', 'bs\\\\', 'é', '\\u200b', '\\x7f', '\\u2028'] }}", {}),
    ("render_context_values", "{{ d }}|{{ n }}|{{ f }}|{{ b }}|{{ l }}", {"d": D, "n": 3, "f": 2.0, "b": False, "l": [None, "x"]}),
    ("render_namespace", "{% set ns = namespace(a=1, b='x') %}{{ ns }}", {}),
    # --- operators
    ("op_arithmetic", "{{ 10 / 4 }} {{ 10 // 4 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 7.5 % 2 }} {{ -7.5 // 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 2.0 ** 3 }} {{ 1 + true }} {{ 3 * 1.5 }} {{ 4 / 2 }}", {}),
    ("op_string_list", "{{ 'ab' * 3 }} {{ 2 * 'x' }} {{ [0] * 3 }} {{ [1] + [2] }} {{ 'a' + 'b' }} {{ 'a' ~ 1 ~ none ~ 1.0 ~ [1] ~ true }}", {}),
    ("op_precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ 2 ** 3 ** 2 }} {{ not 1 == 2 }} {{ 2 * 3 | string }} {{ -1 | abs }} {{ 'a' ~ 'b' + 'c' }} {{ 10 - 2 - 3 }} {{ 2 * 3 % 4 }}", {}),
    ("op_compare", "{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 'a' < 'B' }} {{ 'é' > 'z' }} {{ [1, 2] < [1, 3] }} {{ [1] < [1, 0] }} {{ none == none }} {{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' != 'b' }} {{ 2 >= 2.0 }} {{ [1] == [1] }} {{ {'a': 1} == {'a': 1} }}", {}),
    ("op_in", "{{ 'b' in 'abc' }} {{ '' in 'abc' }} {{ 'x' not in ['a'] }} {{ 1 in [1.0] }} {{ 'a' in {'a': 1} }} {{ 1 in {1: 2} }} {{ 'a' in x }} {{ x in ['a'] }}", {}),
    ("op_and_or_values", "{{ 0 or 'x' }}|{{ 'a' and 'b' }}|{{ none or [] }}|{{ 1 and 0 }}|{{ '' or none }}|{{ x or 'u' }}|{{ not x }}|{{ not [] }}", {}),
    ("op_condexpr", "{{ 'y' if true else 'n' }}|{{ 'y' if false }}|{{ 'a' if 0 else 'b' if 1 else 'c' }}|{{ ('x' if false) is defined }}", {}),
    ("op_unary", "{{ -x }} {{ +x }} {{ -(-3) }} {{ - 2.5 }} {{ +true }}", {"x": 4}),
    ("op_tuples", "{{ (1, 2) + (3,) }} {{ (1, 2) < (1, 3) }} {{ (1,) == [1] }} {{ (1, 2)[0] }} {{ (1, 2, 3)[1:] }} {{ (1, 2)|list }} {{ ('a', 'b')|join }} {{ (1, 2) * 2 }} {{ '%s %s' % ('a', 'b') }} {{ '%s' % [1, 2] }} {{ (1, 2)|tojson }} {{ (3, 1)|sort }} {{ ('x',) }}", {}),
    # --- truthiness
    ("truthiness", "{% for v in [0, 1, '', 'a', [], [0], {}, {'a': 1}, none, 0.0, 0.1, true, false] %}{{ 'T' if v else 'F' }}{% endfor %}{{ 'T' if x else 'F' }}", {}),
    # --- undefined
    ("undefined_soft", "[{{ x }}]{{ x is defined }}{{ x is undefined }}{{ x|default('d') }}{{ x|length }}{% for i in x %}{% endfor %}{{ x == x }}{{ 'a' ~ x ~ 'b' }}[{{ x|string }}]{{ x|list }}{{ x is none }}{{ x is iterable }}{{ x|trim }}{{ x|upper }}", {}),
    ("undefined_attr_of_dict", "{{ d.missing }}|{{ d['missing'] }}|{{ d.nested.z[5] }}|{{ d.missing is defined }}|{{ d.nested.y.x }}", {"d": D}),
    ("undefined_error_attr", "{{ x.y }}", {}),
    ("undefined_error_add", "{{ 1 + x }}", {}),
    ("undefined_error_call", "{{ x() }}", {}),
    ("undefined_error_chain", "{{ d.missing.y }}", {"d": D}),
    ("undefined_error_element", "{{ l[5].a }}", {"l": [1]}),
    ("undefined_error_tojson", "{{ x|tojson }}", {}),
    ("undefined_error_compare", "{{ x < 1 }}", {}),
    ("undefined_error_condexpr", "\n{{ ('a' if false) + 'b' }}", {}),
    ("undefined_error_int", "{{ x|int }}", {}),
    # --- attribute and item lookup
    ("lookup_attr_vs_item", "{{ d.a }} {{ d['a'] }} {{ d['items'] }} {{ d.get('a') }} {{ d.get('zz', 'dflt') }} {{ d.get('zz') }} {{ d.nested['z'][1] }} {{ d['nested'].z.0 }}", {"d": D}),
    ("lookup_list_string", "{{ l.0 }} {{ l[-1] }} {{ l[1] }} {{ s[0] }} {{ s[-1] }} {{ s.1 }} {{ l['x'] is defined }}", {"l": ["p", "q"], "s": "héllo"}),
    ("lookup_sandbox", "[{{ ''.__class__ }}][{{ d._private }}][{{ [].append is defined }}][{{ {}.pop is defined }}]", {"d": {"_private": 1}}),
    ("lookup_method_values", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{{ d.keys()|list }}{{ d.values()|list|length }}", {"d": {"b": 1, "a": 2}}),
    # --- slicing
    ("slicing", "{{ l[1:] }} {{ l[:-1] }} {{ l[::-1] }} {{ l[::2] }} {{ l[-2:] }} {{ l[5:] }} {{ l[1:3] }} {{ l[3:1] }} {{ l[3:1:-1] }} {{ l[-100:100] }}", {"l": [0, 1, 2, 3, 4]}),
    ("slicing_strings", "{{ s[1:3] }}|{{ s[::-1] }}|{{ c|length }}|{{ c[1:] == '\u0301' }}|{{ e|length }}|{{ e[0] }}|{{ s[:0] }}", {"s": "héllo", "c": "e\u0301", "e": "👩‍👩‍👧"}),
    ("slicing_messages", "{% for m in messages[1:] %}{{ m.role }},{% endfor %}|{{ (messages|last).content }}|{{ messages[-1]['content'] }}", {"messages": MSGS}),
    # --- scoping
    ("scope_for_does_not_leak", "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = x + 10 %}{{ x }},{% endfor %}{{ x }}", {}),
    ("scope_for_each_iteration_fresh", "{% for i in [0, 1, 2] %}{% if i == 0 %}{% set y = 5 %}{% endif %}[{{ y }}]{% endfor %}", {}),
    ("scope_if_leaks_at_top", "{% if true %}{% set z = 3 %}{% endif %}{{ z }}", {}),
    ("scope_loop_var_after", "{% for i in [1, 2] %}{% endfor %}[{{ i }}]{% set j = 'outer' %}{% for j in [1] %}{% endfor %}{{ j }}", {}),
    ("scope_namespace", "{% set ns = namespace(total=0, found=false) %}{% for i in [1, 2, 3] %}{% set ns.total = ns.total + i %}{% if i == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.total }} {{ ns.found }}", {}),
    ("scope_namespace_new_attr", "{% set ns = namespace() %}{% set ns.x = 'a' %}{% for i in [1] %}{% set ns.y = ns.x ~ i %}{% endfor %}{{ ns.y }}", {}),
    ("scope_nested_loops", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }}|{% endfor %}", {}),
    ("scope_macro_sees_later_globals", "{% macro m() %}{{ g }}{% endmacro %}{% set g = 1 %}{{ m() }}{% set g = 2 %}{{ m() }}", {}),
    ("scope_macro_no_caller_locals", "{% macro m() %}[{{ i }}]{% endmacro %}{% for i in [1] %}{{ m() }}{% endfor %}", {}),
    ("scope_macro_set_local", "{% set v = 'g' %}{% macro m() %}{% set v = 'l' %}{{ v }}{% endmacro %}{{ m() }}{{ v }}", {}),
    ("scope_set_block_in_loop", "{% for i in [1, 2] %}{% set t %}<{{ i }}>{% endset %}{{ t }}{% endfor %}[{{ t }}]", {}),
    ("scope_with", "{% set a = 1 %}{% with a = 2, b = a %}{{ a }}{{ b }}{% endwith %}{{ a }}[{{ b }}]", {}),
    ("scope_generation", "{% generation %}gen{% set inner = 1 %}{% endgeneration %}[{{ inner }}]", {}),
    ("scope_loop_filter", "{% for m in messages if m.role != 'system' %}{{ loop.index }}/{{ loop.length }}:{{ m.role }}{{ '' if loop.last else ',' }}{% endfor %}", {"messages": MSGS}),
    # --- loops
    ("loop_variables", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}[{{ loop.previtem }}|{{ loop.nextitem }}]{{ loop.depth }}{{ loop.depth0 }} {% endfor %}", {}),
    ("loop_object", "{% for x in [1, 2] %}{{ loop }} {{ loop is mapping }} {{ loop is callable }} {{ loop['index'] }} {% set l = loop %}{% endfor %}", {}),
    ("loop_cycle_changed", "{% for x in [1, 1, 2, 3, 3] %}{{ loop.cycle('a', 'b') }}{% if loop.changed(x) %}*{% endif %}{% endfor %}", {}),
    ("loop_else", "{% for x in [] %}x{% else %}empty {{ loop is defined }}{% endfor %}{% for x in [1] if false %}x{% else %}filtered{% endfor %}", {}),
    ("loop_break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i > 4 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("loop_unpack", "{% for k, v in [['a', 1], ['b', 2]] %}{{ k }}{{ v }}{% endfor %}{% for (a, b) in {'x': 1}|items %}{{ a }}{{ b }}{% endfor %}{% for k, v in {'p': 1}|dictsort %}{{ k }}{{ v }}{% endfor %}", {}),
    ("loop_over_dict_and_string", "{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}|{% for c in 'hé😀' %}[{{ c }}]{% endfor %}", {}),
    ("loop_unpack_error", "{% for a, b in [[1, 2, 3]] %}{% endfor %}", {}),
    ("loop_over_none_error", "{% for x in none %}{% endfor %}", {}),
    ("loop_messages_alternation", "{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Roles must alternate') }}{% endif %}{{ m.role }}{% endfor %}", {"messages": MSGS[1:]}),
    ("loop_set_unpack", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c, d = 'xy' %}{{ c }}{{ d }}", {}),
    ("loop_set_unpack_error", "{% set a, b = [1] %}", {}),
    # --- macros
    ("macro_defaults_kwargs", "{% macro m(a, b=2, c='x') %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ m(1) }} {{ m(1, 3) }} {{ m(1, c='z') }} {{ m(a=5, b=6) }} {{ m() }}", {}),
    ("macro_varargs_kwargs", "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k='v') }}", {}),
    ("macro_recursive", "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% endif %}{% endmacro %}{{ fact(5) }}", {}),
    ("macro_result_is_string", "{% macro m() %} x {% endmacro %}{{ m()|trim }}|{{ m() ~ '!' }}|{{ m() is string }}|{{ m()|length }}", {}),
    ("macro_caller", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold {{ 1 + 1 }}{% endcall %}", {}),
    ("macro_caller_args", "{% macro each(items) %}{% for i in items %}{{ caller(i, loop.index) }}{% endfor %}{% endmacro %}{% call(x, n) each(['a', 'b']) %}{{ n }}={{ x }};{% endcall %}", {}),
    ("macro_default_uses_arg", "{% macro m(a, b=a * 2) %}{{ b }}{% endmacro %}{{ m(4) }}", {}),
    ("macro_typescript_like", "{% macro t(s) %}{% if s.type == 'string' %}string{% elif s.type == 'array' %}{{ t(s['items']) }}[]{% else %}any{% endif %}{% endmacro %}{{ t({'type': 'array', 'items': {'type': 'string'}}) }}", {}),
    ("macro_too_many_args", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", {}),
    ("macro_unknown_kwarg", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(b=1) }}", {}),
    ("macro_kwarg_after_positional", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, a=2) }}", {}),
    ("macro_missing_param", "{% macro m(a, b) %}[{{ b }}]{{ a + 1 }}{% endmacro %}{{ m() }}", {}),
    ("macro_caller_missing", "{% macro m() %}{{ caller() }}{% endmacro %}{{ m() }}", {}),
    ("macro_call_block_without_caller", "{% macro m() %}x{% endmacro %}{% call m() %}y{% endcall %}", {}),
    ("macro_kwargs_order", "{% macro m() %}{{ kwargs|tojson }}{% endmacro %}{{ m(z=1, a=2) }}", {}),
    # --- blocks
    ("block_filter", "{% filter upper %}hello {{ 'x' }}{% endfilter %}|{% filter trim %}  a  {% endfilter %}|{% filter replace('a', 'o') | upper %}banana{% endfilter %}", {}),
    ("block_set_with_filter", "{% set x | upper %}abc{{ 1 }}{% endset %}{{ x }}{% set y %}\n  two lines\n{% endset %}[{{ y }}]", {}),
    ("block_if_elif_else", "{% for v in [1, 2, 3] %}{% if v == 1 %}one{% elif v == 2 %}two{% else %}other{% endif %} {% endfor %}", {}),
    # --- string methods
    ("str_strip", "[{{ '  a b  '.strip() }}][{{ 'xxaxx'.strip('x') }}][{{ '  a'.lstrip() }}][{{ 'a  \\n'.rstrip() }}][{{ 'abcba'.strip('ab') }}][{{ '\u3000a\u00a0'.strip() }}][{{ 'a\\n'.rstrip('\\n') }}]", {}),
    ("str_split", "{{ ' a  b '.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ '  a  b '.split(none, 1) }} {{ 'a b c'.rsplit(' ', 1) }} {{ ''.split(',') }} {{ ''.split() }} {{ 'a\\nb\\r\\nc'.splitlines() }}", {}),
    ("str_predicates", "{{ 'abc'.startswith('ab') }} {{ 'abc'.startswith(('x', 'a')) }} {{ 'abc'.endswith('bc') }} {{ 'abc'.startswith('b', 1) }} {{ '123'.isdigit() }} {{ 'ab'.isalpha() }} {{ ' '.isspace() }} {{ 'Ab'.islower() }}", {}),
    ("str_case", "{{ 'hello WORLD'.upper() }} {{ 'HeLLo'.lower() }} {{ 'hello world-x'.title() }} {{ 'hELLO'.capitalize() }} {{ 'straße'.upper() }} {{ 'ǆemal'.title() }} {{ 'ÉCOLE'.lower() }}", {}),
    ("str_replace_find", "{{ 'aaa'.replace('a', 'b') }} {{ 'aaa'.replace('a', 'b', 2) }} {{ 'ab'.replace('', '-') }} {{ 'hello'.find('l') }} {{ 'hello'.rfind('l') }} {{ 'hello'.find('z') }} {{ 'hello'.count('l') }} {{ '-'.join(['a', 'b']) }}", {}),
    ("str_format", "{{ '{} and {}'.format(1, 'b') }}|{{ '{1}{0}'.format('a', 'b') }}|{{ '{x}!'.format(x=2) }}|{{ '{:>5}|{:<4}|{:^6}'.format('a', 'b', 'c') }}|{{ '{0:.2f} {1:05d} {2:,}'.format(3.14159, 42, 1234567) }}|{{ '{{}}'.format() }}|{{ '{!r}'.format('q') }}", {}),
    ("str_percent", "{{ '%s-%d' % ('a', 3) }}|{{ '%5.1f|%-4s|%03d' % (2.25, 'x', 7) }}|{{ '%s' % 'one' }}|{{ '%(a)s' % {'a': 'named'} }}|{{ '%x %o %%' % (255, 8) }}", {}),
    ("str_misc", "{{ '42'.zfill(5) }} {{ 'ab'.center(6, '*') }} {{ 'ab'.ljust(4, '.') }} {{ 'ab'.rjust(4) }} {{ 'a=b=c'.partition('=') }} {{ 'prefix_x'.removeprefix('prefix_') }}", {}),
    # --- filters
    ("filter_tojson", "{{ d|tojson }}|{{ s|tojson }}|{{ [1.0, 2, none, true, 1e20, 0.1]|tojson }}|{{ {}|tojson }}|{{ []|tojson }}", {"d": {"b": 1, "a": [1, {"c": None}], "é": "ü"}, "s": "q\"b\\s/\n\r\t\b\f\x01\x1f\x7f<>&'\u2028😀"}),
    ("filter_tojson_options", "{{ d|tojson(indent=2) }}|{{ d|tojson(indent=0) }}|{{ d|tojson(separators=(',', ':')) }}|{{ d|tojson(sort_keys=true) }}|{{ d|tojson(ensure_ascii=true) }}|{{ d|tojson(indent='\\t') }}|{{ [[], {}, [1]]|tojson(indent=1) }}", {"d": {"b": [1, {"x": "é😀"}], "a": {}}}),
    ("filter_default", "{{ x|default('d') }}|{{ ''|default('d') }}|{{ ''|default('d', true) }}|{{ none|default('d') }}|{{ 0|d('z', boolean=true) }}|{{ x|d }}|{{ false|default(true) }}", {}),
    ("filter_trim_case", "[{{ '  x '|trim }}][{{ 'xxhixx'|trim('x') }}][{{ 'hello world'|title }}][{{ 'a-b c(d'|title }}][{{ 'hELLO'|capitalize }}][{{ 'x'|upper }}][{{ 'X'|lower }}][{{ 'ab'|center(6) }}]", {}),
    ("filter_length_count", "{{ 'héllo'|length }} {{ [1, 2]|count }} {{ {'a': 1}|length }} {{ ''|length }} {{ 'e\u0301'|length }}", {}),
    ("filter_first_last_join", "{{ [1, 2, 3]|first }} {{ [1, 2, 3]|last }} {{ 'abc'|first }} {{ 'abc'|last }} {{ []|first is defined }} {{ [1, 2, 3]|join(', ') }} {{ ['a', none, 1]|join }} {{ users|join(', ', attribute='name') }}", {"users": [{"name": "x"}, {"name": "y"}]}),
    ("filter_replace", "{{ 'aaa'|replace('a', 'b') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 123|replace('2', 'x') }}", {}),
    ("filter_items_list", "{{ {'a': 1, 'b': [2]}|items|list }} {{ 'ab'|list }} {{ {'x': 1}|list }} {{ x|items|list }}", {}),
    ("filter_select_reject", "{{ [1, 2, 3, 4]|select('odd')|list }} {{ [1, 2, 3, 4]|reject('even')|list }} {{ [0, 1, '', 'a']|select|list }} {{ [1, 5, 10]|select('gt', 4)|list }} {{ ['a', 'b']|select('in', ['b'])|list }}", {}),
    ("filter_selectattr", "{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }} {{ messages|rejectattr('role', 'eq', 'user')|list|length }} {{ items|selectattr('x')|list }} {{ items|selectattr('x', 'defined')|list }} {{ items|rejectattr('x', 'undefined')|list }} {{ items|selectattr('x', 'none')|list }}", {"messages": MSGS, "items": [{"x": 1}, {"y": 2}, {"x": 0}, {"x": None}]}),
    ("filter_map", "{{ ['a', 'b']|map('upper')|list }} {{ [1.5, 2.5]|map('round')|list }} {{ ['a,b', 'c']|map('replace', ',', ';')|list }} {{ items|map(attribute='x')|list }} {{ items|map(attribute='x', default='?')|list }} {{ nested|map(attribute='a.b')|list }} {{ nested|map(attribute='l.0')|list }}", {"items": [{"x": 1}, {"y": 2}], "nested": [{"a": {"b": 7}, "l": [9]}]}),
    ("filter_sort_unique", "{{ [3, 1, 2]|sort }} {{ ['b', 'A', 'a', 'B']|sort }} {{ ['b', 'A', 'a']|sort(case_sensitive=true) }} {{ [3, 1, 2]|sort(reverse=true) }} {{ users|sort(attribute='age')|map(attribute='n')|list }} {{ [1, 2, 2, 1, 3]|unique|list }} {{ ['a', 'A', 'b']|unique|list }} {{ ['a', 'A']|unique(true)|list }}", {"users": [{"n": "x", "age": 3}, {"n": "y", "age": 1}, {"n": "z", "age": 3}]}),
    ("filter_dictsort", "{{ d|dictsort }} {{ d|dictsort(reverse=true) }} {{ d|dictsort(by='value') }} {{ {'b': 1, 'B': 2, 'a': 3}|dictsort }} {{ {'b': 1, 'B': 2}|dictsort(true) }}", {"d": {"b": 2, "c": 1, "a": 3}}),
    ("filter_numbers", "{{ '3'|int }} {{ '3.7'|int }} {{ 3.9|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ '0x1A'|int(0, 16) }} {{ ' 12 '|int }} {{ '1_000'|int }} {{ 3|float }} {{ '2.5'|float }} {{ 'x'|float }} {{ none|int }} {{ true|int }}", {}),
    ("filter_round_abs", "{{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 2.567|round(2) }} {{ 3|round }} {{ 1.1|round(0, 'ceil') }} {{ 1.9|round(0, 'floor') }} {{ -3|abs }} {{ -2.5|abs }} {{ 1234|round(-2) }}", {}),
    ("filter_indent", "[{{ 'a\\nb\\nc'|indent(2) }}][{{ 'a\\nb'|indent(2, true) }}][{{ 'a\\n\\nb'|indent(2, blank=true) }}][{{ 'a\\n\\nb'|indent }}][{{ 'a\\nb\\n'|indent('> ') }}]", {}),
    ("filter_misc", "{{ 'a b  c\\nd'|wordcount }} {{ [1, 2, 3, 4, 5]|batch(2)|list }} {{ [1, 2, 3]|batch(2, 0)|list }} {{ [1, 2, 3, 4, 5]|slice(2)|list }} {{ [1, 2]|sum }} {{ [3, 1]|max }} {{ ['b', 'A']|min }} {{ [1, 2, 3]|reverse|list }} {{ 'abc'|reverse }} {{ 42|string }} {{ [1]|string }}", {}),
    ("filter_truncate_center", "{{ 'a long sentence here'|truncate(9) }}|{{ 'a long sentence here'|truncate(9, true) }}|{{ 'short'|truncate(9) }}|{{ 'hello world foo bar baz'|truncate(12, end='…') }}", {}),
    ("filter_format_escape", "{{ '%s=%s'|format('a', 1) }} {{ '<a href=\"x\">&\\'</a>'|e }} {{ '<b>'|escape }} {{ '<'|forceescape }}", {}),
    ("filter_attr", "{% set ns = namespace(x=5) %}{{ ns|attr('x') }} {{ d|attr('a') is defined }} {{ d|attr('items') is defined }}", {"d": {"a": 1}}),
    # --- tests
    ("tests_types", "{{ 'a' is string }} {{ 1 is string }} {{ {} is mapping }} {{ [] is mapping }} {{ [] is sequence }} {{ 'a' is sequence }} {{ {} is sequence }} {{ 1 is sequence }} {{ {} is iterable }} {{ 1 is iterable }} {{ none is none }} {{ 0 is none }}", {}),
    ("tests_numbers", "{{ 1 is number }} {{ 1.5 is number }} {{ true is number }} {{ 'a' is number }} {{ 1 is integer }} {{ true is integer }} {{ 1.0 is float }} {{ 1 is float }} {{ true is boolean }} {{ 1 is boolean }} {{ false is false }} {{ 0 is false }} {{ true is true }}", {}),
    ("tests_compare", "{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 1 is eq 1 }} {{ 1 is equalto 2 }} {{ 'a' is ne 'b' }} {{ 2 is gt 1 }} {{ 2 is lt 1 }} {{ 2 is ge 2 }} {{ 2 is le 1 }} {{ 'b' is in 'abc' }} {{ 2 is in [1, 2] }}", {}),
    ("tests_misc", "{{ 'abc' is lower }} {{ 'ABC' is upper }} {{ none is sameas none }} {{ range is callable }} {{ 'upper' is filter }} {{ 'odd' is test }} {{ 'nope' is filter }} {{ x is not defined }} {{ 1 is not string }}", {}),
    ("tests_in_conditions", "{% if message is mapping and message.content is string and message.tools is not defined %}ok{% endif %}", {"message": {"content": "c"}}),
    # --- globals
    ("global_range", "{{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }} {{ range(0)|list }} {{ range(3) }} {{ range(3)|length }} {% for i in range(2) %}{{ i }}{% endfor %}", {}),
    ("global_dict_namespace", "{{ dict(a=1, b=2) }} {{ dict([['a', 1]]) }} {{ dict({'x': 1}, y=2) }} {% set ns = namespace({'k': 'v'}, n=1) %}{{ ns.k }}{{ ns.n }}", {}),
    ("global_strftime", "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d') }}|{{ strftime_now('%B %d, %Y') }}|{{ strftime_now('%A %H:%M:%S') }}|{{ strftime_now('%-d %-m %j %U %W %u %w %y %p %I %e %a') }}|{{ strftime_now('%c|%x|%X|%D|%F|%T|%R') }}|{{ strftime_now('[%Z][%z]%%') }}", {}),
    ("global_raise_exception", "before{{ raise_exception('Bad role: ' ~ 'x') }}after", {}),
    ("global_raise_in_macro", "{% macro check(r) %}{% if r not in ['user', 'assistant'] %}{{ raise_exception('Unknown role ' ~ r ~ '!') }}{% endif %}{% endmacro %}{{ check('user') }}{{ check('tool') }}", {}),
    ("global_range_too_big", "{{ range(200000)|length }}", {}),
    # --- markup (|safe, |escape) and generators
    ("markup_add", "{{ '<b>'|safe + '<i>' }}|{{ '<i>' + '<b>'|safe }}|{{ '<b>'|safe ~ '<i>' }}|{{ ('<b>'|safe + '&')|length }}|{{ ('x'|safe).upper() + '<' }}|{{ ('%s|'|safe) % '<' }}", {}),
    ("markup_tojson_safe", "{{ 'f: ' + (d|tojson|safe) }}|{{ ('a'|safe + d|tojson) }}", {"d": {"k": "<v>"}}),
    ("generator_single_use", "{% set g = [1, 2, 3]|select('odd') %}{{ g|list }}{{ g|list }}{% set m = ['a']|map('upper') %}{% for x in m %}{{ x }}{% endfor %}{% for x in m %}{{ x }}{% endfor %}|{{ (['a', 'b']|map('upper'))|first }}", {}),
    ("generator_truthy", "{{ 'T' if []|select else 'F' }} {{ 'T' if range(0) else 'F' }} {{ 'T' if {}.items() else 'F' }}", {}),
    ("generator_tojson_error", "{{ [1, 2]|map('string')|tojson }}", {}),
    ("generator_length_error", "{{ [1, 2]|select|length }}", {}),
    ("reverse_iterator_error", "{{ [1, 2]|reverse|tojson }}", {}),
    # --- sandbox and runtime errors
    ("sandbox_append", "{% set l = [1] %}{% set _ = l.append(2) %}{{ l }}", {}),
    ("sandbox_pop", "{% set d = {'a': 1} %}{{ d.pop('a') }}", {}),
    ("sandbox_namespace_underscore", "{% set ns = namespace() %}{% set ns._x = 1 %}", {}),
    ("error_none_plus", "{{ none + 1 }}", {}),
    ("error_str_plus_int", "{{ 'a' + 1 }}", {}),
    ("error_div_zero", "{{ 1 / 0 }}", {}),
    ("error_compare_types", "{{ 1 < 'a' }}", {}),
    ("error_len_int", "{{ 5|length }}", {}),
    ("error_not_callable", "{{ 'a'() }}", {}),
    ("error_set_non_namespace", "{% set x = 1 %}{% set x.y = 2 %}", {}),
    ("error_slice_none", "{% set x = none %}{{ x[1:] }}", {}),
    ("error_slice_dict", "{{ d[1:] }}", {"d": {"a": 1}}),
    ("error_last_int", "{{ n|last }}", {"n": 5}),
    ("error_operands_evaluated_first", "{{ x - (1 in 2) }}", {}),
    ("error_item_key_evaluated_first", "{{ x[1 in 2] }}", {}),
    ("error_markup_compare", "{{ ('a'|safe) < 1 }}", {}),
    ("error_indent_list", "{{ l|indent }}", {"l": [1]}),
    ("error_first_empty_used", "{{ ([]|first).x }}", {}),
    ("percent_lenient_args", "{{ 'abc' % [] }}|{{ 'abc' % {} }}|{{ '%s' % x }}|{{ '%s' % [1, 2] }}", {}),
    ("truncate_non_string", "{{ [1, 2]|truncate(5) }}", {}),
    ("error_truncate_bool", "{{ true|truncate(5) }}", {}),
    ("error_runtime_unknown_filter", "{% if true %}{{ 'a'|from_json }}{% endif %}", {}),
    ("soft_unknown_filter_not_reached", "{% if false %}{{ 'a'|from_json }}{% endif %}{{ 1 if true else 2|nope }}ok", {}),
    # --- syntax errors (jinja2 fails in from_string; we compare the line)
    ("syntax_if_without_test", "{% if %}x{% endif %}", {}),
    ("syntax_dangling_operator", "a\n{{ 1 + }}", {}),
    ("syntax_unclosed_if", "{% if true %}\nx\n", {}),
    ("syntax_stray_endif", "x\n\n{% endif %}", {}),
    ("syntax_unknown_filter", "line1\n{{ x|nosuchfilter }}", {}),
    ("syntax_unknown_test", "{{ x is nosuchtest }}", {}),
    ("syntax_unknown_tag", "\n\n{% foo %}", {}),
    ("syntax_bad_assign", "{% set 1 = 2 %}", {}),
    ("syntax_macro_default_order", "{% macro m(a=1, b) %}{% endmacro %}", {}),
    ("syntax_unterminated_string", "{{ 'abc }}", {}),
    ("syntax_unterminated_comment", "a\n{# no end", {}),
    ("syntax_unbalanced_paren", "{{ (1 }}", {}),
    ("syntax_unexpected_end_block", "{% for x in y %}{% endif %}", {}),
    ("syntax_break_outside_loop", "{% break %}", {}),
    ("syntax_chained_tests", "{{ 1 is number is odd }}", {}),
    ("syntax_missing_endfor_line", "{% for x in [1] %}\n{% if true %}\n{% endfor %}", {}),
]


def fixed_strftime_now(fmt: str) -> str:
    return NOW.strftime(fmt)


def render(source: str, messages: list[dict], add_generation_prompt: bool, bos: str, eos: str,
           tools: list | None = None) -> dict:
    template = _compile_jinja_template(source)
    template.environment.globals["strftime_now"] = fixed_strftime_now
    context = {"messages": copy.deepcopy(messages), "add_generation_prompt": add_generation_prompt,
               "bos_token": bos, "eos_token": eos}
    if tools is not None:
        context["tools"] = copy.deepcopy(tools)
    try:
        output = template.render(**context)
    except Exception as e:  # noqa: BLE001 -- every failure is part of the reference
        return {"error": str(e), "error_type": type(e).__name__}
    return {"output": output}


def render_snippet(source: str, context: dict) -> dict:
    try:
        template = _compile_jinja_template(source)
    except jinja2.TemplateError as e:  # TemplateSyntaxError, TemplateAssertionError
        return {"phase": "parse", "error": e.message or str(e), "error_type": type(e).__name__,
                "line": getattr(e, "lineno", None)}
    except SyntaxError as e:  # jinja2 compiled `{% break %}` outside a loop to invalid Python
        return {"phase": "parse", "error": e.msg, "error_type": type(e).__name__, "line": None}
    template.environment.globals["strftime_now"] = fixed_strftime_now
    try:
        return {"output": template.render(**copy.deepcopy(context))}
    except Exception as e:  # noqa: BLE001
        return {"phase": "render", "error": str(e), "error_type": type(e).__name__}


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


# --------------------------------------------------------------------------
# Differential fuzzing (not part of the fixtures): --fuzz N --nibble PATH
# --------------------------------------------------------------------------

FUZZ_POOL = ["a", "Hello World", " sp ", "", "é😀", "a,b,,c", "x\ny", "<b>", "3", "2.5", "abc", "it's", "ǆ ß",
             "e\u0301", 0, 1, 2, -3, 7, 1.5, -0.5, 2.0, 10, 1000.0, 0.1, True, False, None, [1, "a"],
             {"k": 1, "a": [2]}, [], {}]
FUZZ_FILTERS = ["length", "upper", "lower", "title", "capitalize", "trim", "string", "list", "first", "last", "tojson",
                "tojson(indent=2)", "int", "float", "abs", "round", "round(1)", "sort", "reverse|list", "unique|list",
                "join(',')", "default('D')", "default('D', true)", "replace('a', 'b')", "center(9)", "wordcount",
                "items|list", "dictsort", "select('odd')|list", "reject('none')|list", "map('string')|list",
                "batch(2)|list", "sum", "max", "min", "count", "indent(2)", "indent(2, true)", "safe", "e",
                "truncate(5)", "selectattr('role')|list", "map(attribute='role')|list", "format(1)"]
FUZZ_TESTS = ["defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "sequence",
              "iterable", "odd", "even", "true", "false", "boolean", "divisibleby 2", "eq 1", "in 'abc'", "lower"]
FUZZ_METHODS = ["strip()", "strip('a')", "lstrip()", "rstrip()", "split()", "split(',')", "split(',', 1)",
                "rsplit(',', 1)", "startswith('a')", "endswith('c')", "upper()", "title()", "replace('a', 'X')",
                "find('b')", "count('a')", "splitlines()", "zfill(4)", "center(6, '*')", "get('role')", "get('x', 1)",
                "items()|list", "keys()|list", "values()|list", "format(1, 2)", "join(['q', 'r'])", "partition(',')"]
FUZZ_OPS = ["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", ">", "<=", ">=", "in", "not in", "and", "or"]


def fuzz_template(rng) -> str:
    """A random template over messages[0].v (values, not literals: jinja2 folds constant
    expressions at compile time, where some errors become undefined values)."""
    def lit(d):
        if rng.random() < 0.7:
            return f"messages[0].v[{rng.randrange(len(FUZZ_POOL))}]"
        return rng.choice(["'a'", "' x '", "1", "2.5", "true", "none", "messages[1].content", "messages[-1]"])

    def expr(d=0):
        r = rng.random()
        if d > 3 or r < 0.3:
            return lit(d)
        if r < 0.45:
            return f"({expr(d + 1)} {rng.choice(FUZZ_OPS)} {expr(d + 1)})"
        if r < 0.6:
            return f"({expr(d + 1)} | {rng.choice(FUZZ_FILTERS)})"
        if r < 0.68:
            return f"({expr(d + 1)} is {rng.choice(['', 'not '])}{rng.choice(FUZZ_TESTS)})"
        if r < 0.78:
            return f"({expr(d + 1)}).{rng.choice(FUZZ_METHODS)}"
        if r < 0.84:  # on a context value: a constant base would be folded (see the usage note)
            base = f"messages[0].v[{rng.randrange(len(FUZZ_POOL))}]"
            return f"{base}[{rng.choice(['0', '-1', '1:', ':-1', '::-1', '::2', '5'])}]"
        if r < 0.92:
            return f"({expr(d + 1)} if {expr(d + 1)} else {expr(d + 1)})"
        return f"(not {expr(d + 1)})"

    def ws():
        return rng.choice(["", "", "-", "+"])

    def text():
        return "".join(rng.choice(["a", " ", "  ", "\t", "\n", "\n\n", "\r\n", " \n ", "x\n  ", "\u00a0", "{", "#"])
                       for _ in range(rng.randint(0, 3)))

    def stmt(d):
        r = rng.random()
        if d > 2 or r < 0.35:
            return "{{" + rng.choice(["", "-"]) + f" {expr()} " + rng.choice(["", "-"]) + "}}"
        if r < 0.5:
            return ("{%" + ws() + f" for x in {expr()} " + ws() + "%}" + body(d + 1) + "{{ loop.index }}{{ x }}"
                    + "{%" + ws() + " endfor " + ws() + "%}")
        if r < 0.65:
            return ("{%" + ws() + f" if {expr()} " + ws() + "%}" + body(d + 1) + "{%" + ws() + " else " + ws() + "%}"
                    + body(d + 1) + "{%" + ws() + " endif " + ws() + "%}")
        if r < 0.72:
            return "{#" + ws() + " c " + ws() + "#}"
        if r < 0.8:
            return "{%" + ws() + f" set v = {expr()} " + ws() + "%}{{ v }}"
        if r < 0.9:
            return (f"{{% set ns = namespace(a={expr()}) %}}{{% for m in messages %}}"
                    "{% set ns.a = m.role ~ ns.a %}{% endfor %}{{ ns.a }}")
        return (f"{{% macro mm(a, b={expr()}) %}}[{{{{ a }}}}|{{{{ b }}}}]{{% endmacro %}}"
                f"{{{{ mm({expr()}) }}}}{{{{ mm(1, b=2) }}}}")

    def body(d):
        return "".join(text() + stmt(d) for _ in range(rng.randint(1, 3))) + text()

    return body(0)


def fuzz(n: int, nibble: Path, seed: int) -> None:
    """Renders n random templates with jinja2 and with `nibble template`; reports every
    output that differs and every case where only one of them fails."""
    import random
    import subprocess
    import tempfile

    rng = random.Random(seed)
    messages = [{"role": "system", "content": "S", "v": FUZZ_POOL}, {"role": "user", "content": " hi, a,b "},
                {"role": "assistant", "content": "ok"}]
    mismatches = rendered = 0
    with tempfile.TemporaryDirectory() as tmp:
        messages_file = Path(tmp) / "messages.json"
        messages_file.write_text(json.dumps(messages), encoding="utf-8")
        template_file = Path(tmp) / "t.jinja"
        for i in range(n):
            source = fuzz_template(rng)
            try:
                expected = ("ok", render_snippet(source, {"messages": messages}).get("output"))
                if expected[1] is None:
                    expected = ("error", None)
            except Exception:  # noqa: BLE001
                expected = ("error", None)
            rendered += expected[0] == "ok"
            template_file.write_bytes(source.encode("utf-8"))
            p = subprocess.run([str(nibble), "template", "--messages", str(messages_file), "--template", str(template_file)],
                               capture_output=True)
            got = ("ok", p.stdout.decode("utf-8")) if p.returncode == 0 else ("error", None)
            if got != expected:
                mismatches += 1
                print(f"MISMATCH {i}: {source!r}\\n  jinja2: {expected}\\n  nibble: {got} {p.stderr.decode()[:200]!r}")
    print(f"{n} random templates ({rendered} rendered by jinja2, the rest raise): {mismatches} mismatches")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=_common.output_path(DEFAULT_OUT), type=Path)
    parser.add_argument("--semantics-out", default=_common.output_path(SEMANTICS_OUT), type=Path)
    parser.add_argument("--vocab-dir", type=Path,
                        default=Path(os.environ.get("NIBBLE_VOCAB_DIR") or DEFAULT_VOCAB_DIR))
    parser.add_argument("--fuzz", type=int, metavar="N",
                        help="instead of writing fixtures, compare N random templates with `nibble template`")
    parser.add_argument("--nibble", type=Path, default=_common.output_path(".build/release/nibble"),
                        help="the nibble binary for --fuzz")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.fuzz:
        fuzz(args.fuzz, args.nibble, args.seed)
        return

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
        conversation, messages = TOOL_CONVERSATION
        case = {"conversation": conversation, "add_generation_prompt": True, "tools": True}
        case.update(render(source["text"], messages, True, bos, eos, tools=TOOLS))
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
        "conversations": {name: messages for name, messages in CONVERSATIONS + [TOOL_CONVERSATION]},
        "tools": TOOLS,
        "templates": templates,
    }
    _common.write_json(args.out, fixture)
    print(f"{len(templates)} templates, {n_cases} cases, {n_errors} expected errors")

    names = [name for name, _, _ in SNIPPETS]
    assert len(names) == len(set(names)), "snippet names must be unique"
    snippets = []
    for name, source, context in SNIPPETS:
        snippets.append({"name": name, "template": source, "context": context, **render_snippet(source, context)})
    _common.write_json(args.semantics_out, {
        "generator": "Tools/reference_templates.py",
        "jinja2_version": jinja2.__version__,
        "transformers_version": transformers.__version__,
        "now": fixture["now"],
        "snippets": snippets,
    })
    print(f"{len(snippets)} snippets, {sum('error' in x for x in snippets)} expected errors")


if __name__ == "__main__":
    main()
