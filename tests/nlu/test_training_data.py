from collections import Counter
from pathlib import Path

import pytest
import yaml

from nlu.backends import DATA_DIR
from nlu.training_data import (
    Example,
    TrainingDataError,
    data_hash,
    load_examples,
    strip_entities,
    to_yaml,
    write_yaml,
)

CORE_INTENTS = ("book_service", "complaint", "roadside_help", "ask_question")
SMALL_INTENTS = (
    "reschedule", "cancel_booking", "booking_status", "greet", "goodbye", "thank", "affirm", "deny", "inform",
    "request_human", "opt_out", "opt_in", "survey_feedback", "out_of_scope",
)
QUESTION_KEYS = (
    "hours", "address", "phone", "prices", "maintenance_interval",
    "warranty", "first_service", "pickup", "inspection", "insurance",
)


def write(directory: Path, name: str, content: str) -> Path:
    path = directory / name
    path.write_text(content, encoding="utf-8")
    return path


def test_retrieval_intent_splits_into_intent_and_response_key(tmp_path: Path) -> None:
    write(tmp_path, "nlu.yml", 'version: "3.1"\nnlu:\n- intent: ask_question/hours\n  examples: |\n    - 几点关门\n')

    assert load_examples(tmp_path) == [Example("几点关门", "ask_question", "ask_question/hours")]


def test_plain_intent_has_no_response_key(tmp_path: Path) -> None:
    write(tmp_path, "nlu.yml", 'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - 你好\n    - hi\n')

    assert load_examples(tmp_path) == [Example("你好", "greet"), Example("hi", "greet")]


@pytest.mark.parametrize(
    "annotated",
    [
        "明天下午三点能做个小保养吗 [粤B12345](plate)",
        "明天下午三点能做个小保养吗 [粤B12345](plate:粤B12345)",
        '明天下午三点能做个小保养吗 [粤B12345]{"entity": "plate", "value": "粤B12345"}',
        '明天下午三点能做个小保养吗 [粤B12345][{"entity": "plate"}, {"entity": "vehicle"}]',
    ],
)
def test_entity_annotations_become_the_words_they_annotate(annotated: str) -> None:
    assert strip_entities(annotated) == "明天下午三点能做个小保养吗 粤B12345"


def test_loading_strips_annotations_from_examples(tmp_path: Path) -> None:
    write(
        tmp_path,
        "nlu.yml",
        'version: "3.1"\nnlu:\n- intent: book_service\n  examples: |\n    - 保养 [京A8K821](plate) 下午两点\n',
    )

    assert [e.text for e in load_examples(tmp_path)] == ["保养 京A8K821 下午两点"]


def test_synonyms_lookups_and_files_without_nlu_are_ignored(tmp_path: Path) -> None:
    write(
        tmp_path,
        "nlu.yml",
        """version: "3.1"
nlu:
- synonym: 保养
  examples: |
    - 宝养
- regex: plate
  examples: |
    - [京沪粤][A-Z][0-9A-Z]{5}
- intent: greet
  examples: |
    - 你好
""",
    )
    write(tmp_path, "domain.yml", 'version: "3.1"\nintents:\n- greet\n')
    write(tmp_path, "notes.txt", "- not training data")

    assert load_examples(tmp_path) == [Example("你好", "greet")]


def test_example_lists_with_metadata_are_read(tmp_path: Path) -> None:
    write(
        tmp_path,
        "nlu.yml",
        """version: "3.1"
nlu:
- intent: greet
  examples:
  - text: |
      你好
    metadata:
      source: wechat
""",
    )

    assert load_examples(tmp_path) == [Example("你好", "greet")]


def test_files_load_in_name_order_from_subdirectories(tmp_path: Path) -> None:
    (tmp_path / "more").mkdir()
    write(tmp_path / "more", "b.yaml", 'version: "3.1"\nnlu:\n- intent: goodbye\n  examples: |\n    - 再见\n')
    write(tmp_path, "a.yml", 'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - 你好\n')

    assert [e.intent for e in load_examples(tmp_path)] == ["greet", "goodbye"]


def test_invalid_yaml_is_reported_with_its_file(tmp_path: Path) -> None:
    write(tmp_path, "broken.yml", "nlu: [unclosed\n")

    with pytest.raises(TrainingDataError, match=r"broken\.yml"):
        load_examples(tmp_path)


def test_intent_without_examples_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "nlu.yml", 'version: "3.1"\nnlu:\n- intent: greet\n')

    with pytest.raises(TrainingDataError, match="greet"):
        load_examples(tmp_path)


def test_hash_ignores_order_but_not_content() -> None:
    examples = [Example("你好", "greet"), Example("几点关门", "ask_question", "ask_question/hours")]

    assert data_hash(examples) == data_hash(list(reversed(examples)))
    assert len(data_hash(examples)) == 64
    assert data_hash(examples) != data_hash([*examples, Example("再见", "goodbye")])
    assert data_hash(examples) != data_hash([Example("你好", "goodbye"), examples[1]])
    assert data_hash(examples) != data_hash([examples[0], Example("几点关门", "ask_question", "ask_question/phone")])


def test_shipped_data_round_trips_through_yaml(tmp_path: Path) -> None:
    examples = load_examples(DATA_DIR)

    write_yaml(examples, tmp_path / "nlu.yml")

    # one file groups each intent's examples together, where the shipped files split them
    assert sorted(load_examples(tmp_path), key=repr) == sorted(examples, key=repr)
    assert data_hash(load_examples(tmp_path)) == data_hash(examples)


def test_written_yaml_is_rasa_3_nlu_format() -> None:
    examples = [
        Example("你好", "greet"),
        Example("几点关门", "ask_question", "ask_question/hours"),
        Example("hi", "greet"),
    ]

    document = yaml.safe_load(to_yaml(examples))

    assert document == {
        "version": "3.1",
        "nlu": [
            {"intent": "greet", "examples": "- 你好\n- hi\n"},
            {"intent": "ask_question/hours", "examples": "- 几点关门\n"},
        ],
    }


def test_line_breaks_inside_a_text_do_not_split_the_example(tmp_path: Path) -> None:
    write_yaml([Example("明天\n保养", "book_service")], tmp_path / "nlu.yml")

    assert load_examples(tmp_path) == [Example("明天 保养", "book_service")]


def test_shipped_data_is_rasa_3_nlu_yaml() -> None:
    for path in DATA_DIR.glob("*.yml"):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert document["version"] == "3.1"
        for item in document["nlu"]:
            assert set(item) == {"intent", "examples"}
            assert all(line.startswith("- ") for line in item["examples"].splitlines()), item["intent"]


def test_shipped_data_has_enough_examples_per_intent() -> None:
    examples = load_examples(DATA_DIR)
    per_intent = Counter(e.intent for e in examples)
    per_key = Counter(e.response_key for e in examples if e.response_key)

    assert set(per_intent) == set(CORE_INTENTS) | set(SMALL_INTENTS)
    assert all(per_intent[intent] >= 60 for intent in CORE_INTENTS), per_intent
    assert all(per_intent[intent] >= 15 for intent in SMALL_INTENTS), per_intent
    assert set(per_key) == {f"ask_question/{key}" for key in QUESTION_KEYS}
    assert all(count >= 5 for count in per_key.values()), per_key


def test_shipped_data_never_gives_one_text_two_intents() -> None:
    labels: dict[str, set[str]] = {}
    for example in load_examples(DATA_DIR):
        labels.setdefault(example.text.lower(), set()).add(example.rasa_intent)

    assert {text: names for text, names in labels.items() if len(names) > 1} == {}
