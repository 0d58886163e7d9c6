#!/usr/bin/env python3
"""Regenerate the shipped price table (extproc/spend/prices.yaml) from LiteLLM's price file.

Offline: it reads a local copy of LiteLLM's `model_prices_and_context_window.json` (the
package ships it as `litellm/model_prices_and_context_window_backup.json`) and never touches
the network. Only the models listed in `MODELS` below are taken; add a name there to ship
its price. For each listed model and provider it writes:

* the exact name at LiteLLM's base prices (per token there, per million tokens here):
  `input`, `cached_input` (cache read), `cache_write` (Anthropic's 5-minute cache write),
  `output`, and `reasoning` only where it differs from `output`;
* for OpenAI, Azure and Anthropic, a pattern for its dated versions (`gpt-4o-20*`,
  `claude-sonnet-4-5-20*`) at the same prices (Gemini's versions are names, such as
  `gemini-2.5-flash-preview-09-2025`: list them in `MODELS`), and an exact entry (with
  `since` = the date in its name) for each dated version LiteLLM prices differently
  (gpt-4o-2024-05-13);
* a `note` naming the tiers it leaves out (prices above 200k prompt tokens and the like):
  the gateway prices every request at the base tier.

Entries with the same model and prices on several providers (OpenAI and Azure) are one line.

Usage::

    python scripts/prices_from_litellm.py path/to/model_prices.json \\
        --source-version 1.106.12 --date 2026-12-03 > extproc/spend/prices.yaml
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

#: our provider -> (LiteLLM's `litellm_provider` values, key prefixes to try)
PROVIDERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "openai": (("openai",), ("",)),
    "azure": (("azure",), ("azure/",)),
    "anthropic": (("anthropic",), ("",)),
    "gemini": (("gemini",), ("gemini/", "")),
    "vertex": (("vertex_ai-language-models", "vertex_ai-embedding-models"),
               ("", "vertex_ai/")),
}

_OPENAI = ("openai", "azure")
_GOOGLE = ("gemini", "vertex")
#: the models shipped, by the providers that serve them (a provider LiteLLM does not price
#: the model for is skipped and named on stderr)
MODELS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (_OPENAI, ("gpt-6-sol", "gpt-6-astra", "gpt-6-luna", "gpt-6.1-sol",
               "gpt-5.6", "gpt-5.6-sol", "gpt-5.6-terra", "gpt-5.6-luna",
               "gpt-5.5", "gpt-5.5-pro", "gpt-5.4", "gpt-5.4-pro", "gpt-5.4-mini",
               "gpt-5.4-nano", "gpt-5.2", "gpt-5.2-pro", "gpt-5.2-chat-latest",
               "gpt-5.2-chat", "gpt-5.1", "gpt-5.1-chat-latest", "gpt-5.1-chat",
               "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5-pro", "gpt-5-chat-latest",
               "gpt-5-chat", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o",
               "gpt-4o-mini", "o3", "o3-pro", "o3-mini", "o4-mini", "o1",
               "text-embedding-3-small", "text-embedding-3-large")),
    (("anthropic",), ("claude-opus-5-5", "claude-opus-5", "claude-sonnet-5-5",
                      "claude-sonnet-5", "claude-haiku-5-5", "claude-opus-4-8",
                      "claude-opus-4-7", "claude-opus-4-6", "claude-opus-4-5",
                      "claude-sonnet-4-6", "claude-sonnet-4-5", "claude-haiku-4-5")),
    (_GOOGLE, ("gemini-3.8-flash", "gemini-3.7-flash", "gemini-3.6-flash", "gemini-3.5-flash",
               "gemini-3.5-flash-lite", "gemini-3.1-pro-preview", "gemini-3.1-flash-lite",
               "gemini-3.1-flash-lite-preview", "gemini-3-flash-preview", "gemini-2.5-pro",
               "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.5-flash-preview-09-2025",
               "gemini-2.5-flash-lite-preview-09-2025", "gemini-pro-latest",
               "gemini-flash-latest", "gemini-flash-lite-latest", "gemini-embedding-001")),
)

#: LiteLLM's per-token fields -> ours
FIELDS = (("input", "input_cost_per_token"),
          ("cached_input", "cache_read_input_token_cost"),
          ("cache_write", "cache_creation_input_token_cost"),
          ("output", "output_cost_per_token"),
          ("reasoning", "output_cost_per_reasoning_token"))
#: the providers whose model versions are dated (`gpt-4o-2024-08-06`,
#: `claude-sonnet-4-5-20250929`); Google's are named (`-preview-09-2025`), listed exactly
DATED_PROVIDERS = ("openai", "azure", "anthropic")
#: a dated version of a model: `-2024-08-06` (OpenAI) or `-20250929` (Anthropic)
DATED = re.compile(r"-(20\d\d)-?(\d\d)-?(\d\d)$")
_TIER = re.compile(r"^(input|output|cache_read_input|cache_creation_input)_(?:cost_per_token|"
                   r"token_cost)_above_(\d+k)_tokens$")


def per_million(value: Any) -> Decimal | None:
    """LiteLLM's per-token float as an exact price per million tokens."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return (Decimal(repr(value)) * 1_000_000).normalize()


def price_of(row: dict[str, Any]) -> dict[str, Decimal] | None:
    out = {ours: per_million(row.get(theirs)) for ours, theirs in FIELDS}
    if out["input"] is None or out["output"] is None:
        return None
    if out["reasoning"] == out["output"]:
        out["reasoning"] = None
    if out["cached_input"] == out["input"]:
        out["cached_input"] = None
    return {k: v for k, v in out.items() if v is not None}


def tiers(row: dict[str, Any]) -> str:
    """The prices above a prompt size that the gateway does not apply, as a note."""
    found: dict[str, list[str]] = {}
    for key, value in row.items():
        m = _TIER.match(key)
        if m and per_million(value) is not None:
            name = {"cache_read_input": "cached_input",
                    "cache_creation_input": "cache_write"}.get(m.group(1), m.group(1))
            found.setdefault(m.group(2), []).append(f"{name} {_num(per_million(value))}")
    return "; ".join(f"above {size} prompt tokens: {', '.join(sorted(parts))} (not applied: "
                     "base tier shipped)" for size, parts in sorted(found.items()))


def find(data: dict[str, Any], provider: str, model: str) -> tuple[str, dict[str, Any]] | None:
    kinds, prefixes = PROVIDERS[provider]
    for prefix in prefixes:
        row = data.get(prefix + model)
        if isinstance(row, dict) and row.get("litellm_provider") in kinds:
            return prefix + model, row
    return None


def entries_for(data: dict[str, Any], provider: str, model: str) -> list[dict[str, Any]]:
    """The entries of one model on one provider: exact, dated pattern, differing dates."""
    found = find(data, provider, model)
    if found is None:
        return []
    key, row = found
    base = price_of(row)
    if base is None:
        return []
    out = [{"model": model, **base}]
    note = tiers(row)
    if note:
        out[0]["note"] = note
    kinds, _ = PROVIDERS[provider]
    dated = [(k, r) for k, r in data.items()
             if isinstance(r, dict) and r.get("litellm_provider") in kinds
             and k.startswith(key + "-") and DATED.fullmatch(k[len(key):])]
    if provider in DATED_PROVIDERS and not DATED.search(model) \
            and not model.endswith("-latest"):
        out.append({"model": f"{model}-20*", **base})
        for k, r in sorted(dated):
            price = price_of(r)
            if price is not None and price != base:
                y, m, d = DATED.search(k).groups()   # type: ignore[union-attr]
                out.append({"model": model + k[len(key):], **price,
                            "since": f"{y}-{m}-{d}"})
    return out


def build(data: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The table's entries (one per model and price, providers merged) and what is missing."""
    merged: dict[str, dict[str, Any]] = {}
    missing = []
    for providers, models in MODELS:
        for model in models:
            for provider in providers:
                got = entries_for(data, provider, model)
                if not got:
                    missing.append(f"{provider}/{model}")
                for entry in got:
                    sig = json.dumps(entry, sort_keys=True, default=str)
                    if sig in merged:
                        merged[sig]["providers"].append(provider)
                    else:
                        merged[sig] = {"providers": [provider], **entry}
    return list(merged.values()), missing


def _num(value: Decimal | None) -> str:
    return format(value, "f") if value is not None else ""


def render(entries: list[dict[str, Any]], source: str, version: str, date: str) -> str:
    lines = [
        "# The shipped price table: USD per million tokens (extproc.spend.settings reads it;",
        "# config `prices.models` entries are looked up before these). Generated by",
        "# scripts/prices_from_litellm.py from LiteLLM's price file: do not edit by hand,",
        "# regenerate (docs/spend.md says how). Tiered prices (a higher price above some",
        "# prompt size) are not applied: each entry is its model's base tier, the left-out",
        "# tiers named in its `note`.",
        f"source: {json.dumps(f'{source} (LiteLLM {version}), read {date}')}",
        f"generated: {date}",
        "models:",
    ]
    keys = ("input", "cached_input", "cache_write", "output", "reasoning")
    for e in entries:
        parts = [f"providers: [{', '.join(e['providers'])}]", f"model: {json.dumps(e['model'])}"]
        parts += [f"{k}: {_num(e[k])}" for k in keys if k in e]
        if "since" in e:
            parts.append(f"since: {e['since']}")
        if "note" in e:
            parts.append(f"note: {json.dumps(e['note'])}")
        lines.append("  - {" + ", ".join(parts) + "}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("path", type=Path, help="LiteLLM's model_prices_and_context_window JSON")
    ap.add_argument("--source-version", default="unknown version",
                    help="the LiteLLM version the file comes from (named in the output)")
    ap.add_argument("--date", default=dt.date.today().isoformat(),
                    help="the date the file was read (named in the output)")
    args = ap.parse_args(argv)
    data = json.loads(args.path.read_text())
    entries, missing = build(data)
    source = "https://github.com/BerriAI/litellm model_prices_and_context_window.json"
    sys.stdout.write(render(entries, source, args.source_version, args.date))
    for name in missing:
        print(f"not in the source, not shipped: {name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
