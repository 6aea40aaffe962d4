"""How well the NLU understands: k-fold cross-validation and a held-out test file.

The report gives per-intent precision, recall and F1, macro-F1 over all intents and over the
core ones, the confusion matrix, the retrieval-intent (FAQ topic) accuracy and every
misclassified message, as text for people and as JSON for tools.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nlu.parse import NLU
from nlu.training_data import Example

CORE_INTENTS = ("book_service", "complaint", "roadside_help", "ask_question")
# held-out messages, written apart from nlu/data and never trained on
EVAL_FILE = Path(__file__).resolve().parent / "eval" / "test.yml"


@dataclass(frozen=True, slots=True)
class IntentMetrics:
    intent: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class Miss:
    text: str
    expected: str
    predicted: str
    confidence: float


@dataclass(slots=True)
class Report:
    """The outcome of one evaluation (a test file, or all folds of a cross-validation)."""

    name: str
    per_intent: list[IntentMetrics]
    labels: list[str]
    confusion: list[list[int]]
    misses: list[Miss]
    response_accuracy: float | None
    response_support: int
    examples: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        wrong = len(self.misses)
        return (self.examples - wrong) / self.examples if self.examples else 0.0

    def macro_f1(self, intents: Sequence[str] | None = None) -> float:
        """Returns the mean F1 over the given intents (all with support when None)."""
        rows = [m for m in self.per_intent if (intents is None and m.support) or (intents and m.intent in intents)]
        return sum(m.f1 for m in rows) / len(rows) if rows else 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["accuracy"] = self.accuracy
        out["macro_f1"] = self.macro_f1()
        out["macro_f1_core"] = self.macro_f1(CORE_INTENTS)
        return out

    def to_text(self) -> str:
        lines = [
            f"# {self.name}",
            "",
            (
                f"examples {self.examples}   accuracy {self.accuracy:.3f}   "
                f"macro-F1 {self.macro_f1():.3f}   macro-F1 (core intents) {self.macro_f1(CORE_INTENTS):.3f}"
            ),
        ]
        if self.response_accuracy is not None:
            lines.append(f"FAQ topic accuracy (ask_question/*) {self.response_accuracy:.3f} over {self.response_support}")
        lines += ["", f"{'intent':<18} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}"]
        for m in self.per_intent:
            core = " *" if m.intent in CORE_INTENTS else ""
            lines.append(f"{m.intent:<18} {m.precision:>9.3f} {m.recall:>7.3f} {m.f1:>6.3f} {m.support:>8}{core}")
        lines += ["", "* core intent", "", "## Confusion matrix (rows: expected, columns: predicted)", ""]
        short = [label[:6] for label in self.labels]
        lines.append(" " * 18 + " ".join(f"{s:>6}" for s in short))
        for label, row in zip(self.labels, self.confusion, strict=True):
            lines.append(f"{label:<18}" + " ".join(f"{n:>6}" for n in row))
        lines += ["", f"## Misclassified ({len(self.misses)})", ""]
        for miss in self.misses:
            lines.append(f"- {miss.text!r}: expected {miss.expected}, got {miss.predicted} ({miss.confidence:.2f})")
        return "\n".join(lines) + "\n"

    def save(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Writes the report as `<stem>.txt` and `<stem>.json`; returns both paths."""
        directory.mkdir(parents=True, exist_ok=True)
        text_path, json_path = directory / f"{stem}.txt", directory / f"{stem}.json"
        text_path.write_text(self.to_text(), encoding="utf-8")
        json_path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=2), encoding="utf-8")
        return text_path, json_path


def evaluate(nlu: NLU, examples: Sequence[Example], name: str = "held-out test") -> Report:
    """Parses every example and scores the predictions."""
    return _score(name, examples, [nlu.parse(example.text) for example in examples])


def cross_validate(
    examples: Sequence[Example],
    train: Callable[[Sequence[Example]], NLU],
    folds: int = 5,
    seed: int = 13,
) -> Report:
    """Trains on k-1 folds and predicts the k-th, for each fold, stratified by intent."""
    from sklearn.model_selection import (
        StratifiedKFold,  # here: a server that only parses never loads sklearn
    )

    labels = [example.intent for example in examples]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    predictions: list[Any] = [None] * len(examples)
    for train_index, test_index in splitter.split(labels, labels):
        model = train([examples[i] for i in train_index])
        for i in test_index:
            predictions[i] = model.parse(examples[i].text)
    return _score(f"{folds}-fold cross-validation", examples, predictions, extra={"folds": folds, "seed": seed})


def _score(name: str, examples: Sequence[Example], parses: Sequence[Any], extra: dict[str, Any] | None = None) -> Report:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    expected = [example.intent for example in examples]
    predicted = [parse.name for parse in parses]
    labels = sorted(set(expected) | set(predicted))
    precision, recall, f1, support = precision_recall_fscore_support(
        expected, predicted, labels=labels, zero_division=0
    )
    per_intent = [
        IntentMetrics(label, float(p), float(r), float(f), int(s))
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    ]
    matrix = confusion_matrix(expected, predicted, labels=labels).tolist()
    misses = [
        Miss(example.text, example.intent, parse.name, round(parse.confidence, 3))
        for example, parse in zip(examples, parses, strict=True)
        if parse.name != example.intent
    ]
    keyed = [(example, parse) for example, parse in zip(examples, parses, strict=True) if example.response_key]
    hits = sum(1 for example, parse in keyed if parse.response == example.response_key)
    return Report(
        name=name,
        per_intent=per_intent,
        labels=labels,
        confusion=matrix,
        misses=misses,
        response_accuracy=hits / len(keyed) if keyed else None,
        response_support=len(keyed),
        examples=len(examples),
        extra=extra or {},
    )

