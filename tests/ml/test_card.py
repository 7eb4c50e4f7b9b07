"""Model cards: the Hugging Face Hub's README format, round-tripped, and safe from hostile names."""

from __future__ import annotations

import pytest
import yaml

from databright.errors import ModelError
from databright.ml.card import card_metrics, parse_card, render_card

METRICS = {"holdout_accuracy": 0.9812, "benchmark_accuracy": 0.97}


def test_round_trip_in_the_hub_convention() -> None:
    text = render_card(
        "digits-mlp", "bafkspec", "bafkweights", "databright/3", METRICS, description="A small MLP."
    )
    assert text.startswith("---\n")
    card = parse_card(text)
    assert card["library_name"] == "pytorch" and card["license"] == "apache-2.0"
    assert card["datasets"] == ["databright/3"] and "databright" in card["tags"]
    assert card["databright"] == {
        "spec": "bafkspec",
        "checkpoint": "bafkweights",
        "dataset": "databright/3",
    }
    result = card["model-index"][0]["results"][0]
    assert card["model-index"][0]["name"] == "digits-mlp"
    assert result["task"]["type"] == "tabular-classification"
    assert result["dataset"] == {"name": "databright/3", "type": "databright/3"}
    assert {"type": "accuracy", "value": 0.9812, "name": "holdout_accuracy"} in result["metrics"]
    assert card_metrics(card) == METRICS
    assert "# digits-mlp" in text and "A small MLP." in text and "bafkweights" in text
    assert render_card("m", "s", "c", "d", METRICS, license="mit").count("license: mit") == 1


@pytest.mark.parametrize(
    "name",
    [
        "evil: [x] --- <b>bold</b>",
        "'; license: proprietary",
        "!!python/object/apply:os.system ['ls']",
        "&anchor *alias {flow: map}",
        "名前 ünïcode",
    ],
)
def test_hostile_names_stay_data(name: str) -> None:
    card = parse_card(render_card(name, "s", "c", "d", METRICS))
    assert card["model-index"][0]["name"] == name
    assert card["license"] == "apache-2.0"


def test_body_escapes_html_and_markdown() -> None:
    text = render_card(
        "<script>x</script>",
        "s",
        "c`d",
        "d",
        METRICS,
        description="<img src=x onerror=alert(1)>\n# heading\n- [link](javascript:alert(1))",
    )
    body = text.split("\n---\n", 1)[1]
    assert "<script>" not in body and "<img" not in body
    assert "&lt;script&gt;" in body
    assert "\n\\# heading" in body and "\n\\- \\[link\\]\\(javascript" in body
    assert "`c'd`" in body  # a backtick cannot close the code span early


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "two\nlines"}, "the card's name 'two\\nlines' holds a line break"),
        ({"name": ""}, "the card's name must be non-empty text"),
        ({"name": "x" * 201}, "the card's name is 201 characters, over the limit of 200"),
        ({"dataset": "a\u2028b"}, "the card's dataset 'a\\u2028b' holds a line break"),
        (
            {"metrics": {"acc": float("nan")}},
            "metric 'acc' is nan; a card holds finite numbers only.",
        ),
        ({"metrics": {"acc": "high"}}, "metric 'acc' must be a number, got 'high'."),
        ({"description": "x" * 20_001}, "the card's description must be text of at most 20,000"),
    ],
)
def test_bad_card_input(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "name": "m",
        "spec_cid": "s",
        "checkpoint_cid": "c",
        "dataset": "d",
        "metrics": METRICS,
    }
    args.update(kwargs)
    with pytest.raises(ModelError) as info:
        render_card(**args)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# just markdown\n", "the card has no YAML front matter"),
        ("---\nkey: [unclosed\n---\nbody", "the card's front matter is not valid YAML at line"),
        ("---\n- a list\n---\n", "the card's front matter is not a YAML mapping"),
        (
            "---\nx: !!python/object/apply:os.system ['ls']\n---\n",
            "the card's front matter is not valid YAML",
        ),
        (b"\xff---", "the card is not UTF-8 text"),
        ("---\n" + "a: b\n" * 300_000 + "---\n", "the card is over 1,000,000 bytes"),
    ],
)
def test_parse_errors(text: str | bytes, message: str) -> None:
    with pytest.raises(ModelError) as info:
        parse_card(text)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


def test_parse_accepts_crlf_and_bom() -> None:
    text = render_card("m", "s", "c", "d", METRICS).replace("\n", "\r\n")
    assert parse_card("\ufeff" + text)["library_name"] == "pytorch"
    assert yaml.safe_load(text.split("---")[1])["license"] == "apache-2.0"


def test_card_metrics_needs_results() -> None:
    with pytest.raises(ModelError, match="the card has no model-index results"):
        card_metrics({"license": "mit"})
