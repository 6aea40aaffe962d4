"""The evaluation report, and the held-out score the NLU must reach."""
from __future__ import annotations

import json
from pathlib import Path

from nlu.backends import DATA_DIR
from nlu.builtin import BuiltinNLU
from nlu.evaluate import CORE_INTENTS, EVAL_FILE, cross_validate, evaluate
from nlu.parse import IntentScore, Parse
from nlu.training_data import Example, load_examples


class ByKeyword:
    """A stand-in NLU that answers from a keyword table, so the arithmetic can be checked by hand."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    def parse(self, text: str, lang: str = "zh") -> Parse:
        name = next((intent for word, intent in self.table.items() if word in text), "out_of_scope")
        return Parse(text=text, intent=IntentScore(name, 0.9), response="ask_question/hours" if name == "ask_question" else None)


def test_report_counts_precision_recall_and_the_misses() -> None:
    examples = [
        Example("保养", "book_service"),
        Example("约保养", "book_service"),
        Example("投诉", "complaint"),
        Example("保养太差 投诉", "complaint"),  # the stand-in reads 保养 first: a miss
        Example("几点开门", "ask_question", "ask_question/hours"),
    ]
    report = evaluate(ByKeyword({"保养": "book_service", "投诉": "complaint", "几点": "ask_question"}), examples)

    rows = {m.intent: m for m in report.per_intent}
    assert rows["book_service"].precision == 2 / 3 and rows["book_service"].recall == 1.0
    assert rows["complaint"].precision == 1.0 and rows["complaint"].recall == 0.5
    assert [(m.text, m.expected, m.predicted) for m in report.misses] == [("保养太差 投诉", "complaint", "book_service")]
    assert report.accuracy == 4 / 5
    assert report.response_accuracy == 1.0 and report.response_support == 1
    book, complaint = report.labels.index("book_service"), report.labels.index("complaint")
    assert report.confusion[complaint][book] == 1


def test_report_is_printed_and_saved_as_text_and_json(tmp_path: Path) -> None:
    report = evaluate(ByKeyword({"保养": "book_service"}), [Example("保养", "book_service"), Example("你好", "greet")])

    text_path, json_path = report.save(tmp_path, "held-out")

    assert "macro-F1" in text_path.read_text(encoding="utf-8") and "Misclassified (1)" in report.to_text()
    saved = json.loads(json_path.read_text(encoding="utf-8"))
    assert saved["examples"] == 2 and saved["misses"][0]["expected"] == "greet"


def test_cross_validation_predicts_every_example_once_with_a_model_it_did_not_train_on() -> None:
    examples = [Example(f"保养{i}", "book_service") for i in range(6)] + [Example(f"投诉{i}", "complaint") for i in range(6)]
    trained_on: list[set[str]] = []

    def train(part):  # type: ignore[no-untyped-def]
        trained_on.append({example.text for example in part})
        return ByKeyword({"保养": "book_service", "投诉": "complaint"})

    report = cross_validate(examples, train, folds=3)

    assert len(trained_on) == 3 and all(len(part) == 8 for part in trained_on)
    assert report.examples == 12 and report.accuracy == 1.0


def test_held_out_file_shares_no_message_with_the_training_data() -> None:
    trained = {example.text.strip().lower() for example in load_examples(DATA_DIR)}
    held_out = load_examples(EVAL_FILE)

    assert not [example.text for example in held_out if example.text.strip().lower() in trained]


def test_held_out_file_has_twenty_messages_per_core_intent() -> None:
    held_out = load_examples(EVAL_FILE)
    for intent in CORE_INTENTS:
        assert sum(1 for example in held_out if example.intent == intent) >= 20, intent


def test_built_in_model_reaches_095_macro_f1_on_the_core_intents_of_the_held_out_file(nlu: BuiltinNLU) -> None:
    report = evaluate(nlu, load_examples(EVAL_FILE))

    assert report.macro_f1(CORE_INTENTS) >= 0.95, report.to_text()
