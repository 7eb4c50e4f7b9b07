"""Model cards in the Hugging Face Hub's format, so a market model can be published there as is.

A card is a ``README.md`` whose YAML front matter carries the metadata the Hub indexes
(``library_name``, ``license``, ``tags``, ``datasets``) and evaluation results in the
``model-index`` form (task, dataset, metrics), followed by a markdown body for people. DataBright
adds a ``databright`` block with the content addresses of the spec and the checkpoint, which is
what ties the card to the weights that were benchmarked.

Names, dataset ids and descriptions come from strangers. The YAML is written by
``yaml.safe_dump`` (never by string formatting), names are one line of printable text, and the
markdown body escapes HTML and markdown syntax, so a name cannot end the front matter early,
inject a tag into a page that renders the card, or forge a link.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import yaml

from databright.errors import ModelError

__all__ = ["MAX_CARD_BYTES", "card_metrics", "parse_card", "render_card"]

MAX_CARD_BYTES = 1_000_000
_MAX_NAME = 200
_MAX_DESCRIPTION = 20_000
_TASK = "tabular-classification"
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~^$])")


def _one_line(what: str, value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ModelError(f"the card's {what} must be non-empty text, got {value!r}.")
    if len(value) > _MAX_NAME:
        raise ModelError(
            f"the card's {what} is {len(value)} characters, over the limit of {_MAX_NAME}; shorten it."
        )
    if any(not ch.isprintable() for ch in value):
        raise ModelError(
            f"the card's {what} {value[:40]!r} holds a line break or control character; "
            "use one line of printable text."
        )
    return value.strip()


def _escape(text: str) -> str:
    """Text shown as itself in markdown: HTML and markdown syntax neutralised."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    # A line that starts with a list, quote, heading or rule marker is a block; escape it.
    return re.sub(r"(?m)^(\s*)([-=>]|\d+[.)])", r"\1\\\2", text)


def _metric_entries(metrics: Mapping[str, float]) -> list[dict[str, Any]]:
    entries = []
    for key in sorted(metrics):
        value = metrics[key]
        if not isinstance(key, str) or not key:
            raise ModelError(f"metric names must be non-empty text, got {key!r}.")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ModelError(f"metric {key!r} must be a number, got {value!r}.")
        if not math.isfinite(float(value)):
            raise ModelError(f"metric {key!r} is {value!r}; a card holds finite numbers only.")
        kind = "accuracy" if "accuracy" in key else key
        entries.append({"type": kind, "value": float(value), "name": key})
    return entries


def render_card(
    name: str,
    spec_cid: str,
    checkpoint_cid: str,
    dataset: str,
    metrics: Mapping[str, float],
    *,
    license: str = "apache-2.0",
    description: str = "",
) -> str:
    """The README.md of a model: YAML front matter in the Hub's convention, then a markdown
    body (what the model is, where its spec and weights are, its evaluation results)."""
    name = _one_line("name", name)
    spec_cid = _one_line("spec CID", spec_cid)
    checkpoint_cid = _one_line("checkpoint CID", checkpoint_cid)
    dataset = _one_line("dataset", dataset)
    license = _one_line("license", license)
    if not isinstance(description, str) or len(description) > _MAX_DESCRIPTION:
        raise ModelError(
            f"the card's description must be text of at most {_MAX_DESCRIPTION:,} characters."
        )
    entries = _metric_entries(metrics)
    front: dict[str, Any] = {
        "library_name": "pytorch",
        "license": license,
        "pipeline_tag": _TASK,
        "tags": ["databright", _TASK, "safetensors"],
        "datasets": [dataset],
        "databright": {"spec": spec_cid, "checkpoint": checkpoint_cid, "dataset": dataset},
        "model-index": [
            {
                "name": name,
                "results": [
                    {
                        "task": {"type": _TASK, "name": "Tabular Classification"},
                        "dataset": {"name": dataset, "type": dataset},
                        "metrics": entries,
                    }
                ],
            }
        ],
    }
    yaml_text = yaml.safe_dump(
        front, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000
    )
    rows = "\n".join(f"| {_escape(e['name'])} | {e['value']:.4f} |" for e in entries)
    body = [
        f"# {_escape(name)}",
        "",
        _escape(description.strip()) if description.strip() else "",
        "",
        f"A classifier trained in the DataBright model market on dataset `{_code(dataset)}`.",
        "",
        "## Files",
        "",
        f"- Spec (declarative architecture, JSON): `{_code(spec_cid)}`",
        f"- Weights (safetensors): `{_code(checkpoint_cid)}`",
        "",
        "The weights are plain tensors; load them into the network the spec builds "
        "(`databright.ml.load_checkpoint`). No code from the model's owner is ever run.",
        "",
        "## Evaluation",
        "",
        "| metric | value |",
        "|---|---|",
        rows,
        "",
    ]
    text = f"---\n{yaml_text}---\n\n" + "\n".join(body)
    return re.sub(r"\n{3,}", "\n\n", text)


def _code(text: str) -> str:
    """Text inside a code span: backticks would end it early, so none are allowed through."""
    return text.replace("`", "'")


def parse_card(text: str) -> dict[str, Any]:
    """The YAML front matter of a card as a dict (``yaml.safe_load``: no object is built
    from tags); one sentence when the text is not a card."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelError("the card is not UTF-8 text; save it as UTF-8.") from None
    if not isinstance(text, str):
        raise ModelError(f"a card is markdown text, got {type(text).__name__}.")
    if len(text.encode("utf-8", "replace")) > MAX_CARD_BYTES:
        raise ModelError(
            f"the card is over {MAX_CARD_BYTES:,} bytes; a model card is a short README."
        )
    text = text.lstrip("\ufeff")
    match = re.match(r"---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|$)", text, re.DOTALL)
    if match is None:
        raise ModelError(
            "the card has no YAML front matter; it must start with a '---' line and "
            "close it with another."
        )
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        raise ModelError(f"the card's front matter is not valid YAML{where}; fix it.") from None
    if not isinstance(meta, dict):
        raise ModelError("the card's front matter is not a YAML mapping of keys to values.")
    return meta


def card_metrics(card: Mapping[str, Any]) -> dict[str, float]:
    """The metrics of a parsed card's first ``model-index`` result, by name."""
    try:
        result = card["model-index"][0]["results"][0]
        return {str(m["name"]): float(m["value"]) for m in result["metrics"]}
    except (KeyError, IndexError, TypeError, ValueError):
        raise ModelError(
            "the card has no model-index results with named metrics; render it with render_card."
        ) from None
