"""`dealercare nlu train | parse | parse --jsonl | eval`, as a dealer's engineer runs them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app

NOW = "2026-11-23T10:00:00+08:00"  # a Monday morning in Guangzhou


@pytest.fixture
def run(nlu, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    # the session's trained model: the commands load it instead of training their own
    monkeypatch.setattr("nlu.backends.load_nlu", lambda settings: nlu)
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
        result = runner.invoke(app, list(args), input=stdin)
        assert result.exit_code == 0, result.output
        return result.output

    return invoke


def test_parse_prints_rasa_model_parse_json_with_entities(run) -> None:  # type: ignore[no-untyped-def]
    output = run("nlu", "parse", "明天下午三点能做个小保养吗 粤B12345", "--now", NOW)

    parse = json.loads(output)
    assert parse["intent"]["name"] == "book_service"
    assert parse["intent_ranking"][0] == parse["intent"]
    found = {entity["entity"]: entity["value"] for entity in parse["entities"]}
    assert found["plate"] == "粤B12345"
    assert found["time"]["date"] == "2026-11-24" and found["time"]["time"] == "15:00"


def test_parse_jsonl_answers_one_json_object_per_input_line(run) -> None:  # type: ignore[no-untyped-def]
    output = run("nlu", "parse", "--jsonl", "--now", NOW, stdin="几点关门\n车在高速上爆胎了怎么办\n\n")

    lines = [json.loads(line) for line in output.splitlines()]
    assert [line["text"] for line in lines] == ["几点关门", "车在高速上爆胎了怎么办", ""]
    assert lines[0]["intent"]["name"] == "ask_question"
    assert lines[1]["intent"]["name"] == "roadside_help"
    assert lines[2]["intent"]["name"] == "out_of_scope"


def test_eval_prints_and_saves_the_held_out_report(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    output = run("nlu", "eval", "--skip-cv", "--report-dir", str(tmp_path))

    assert "macro-F1 over the core intents on the held-out file" in output
    assert (tmp_path / "held-out.txt").exists() and json.loads((tmp_path / "held-out.json").read_text())["examples"] > 0


def test_train_saves_a_model_with_its_data_hash(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["nlu", "train", "--out", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert "saved" in result.output and (tmp_path / "builtin.pkl").stat().st_size > 0
