import json
import math
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bot.settings import Settings
from nlu.backends import DATA_DIR, load_nlu
from nlu.builtin import MODEL_FILE, BuiltinNLU, model_text
from nlu.parse import OUT_OF_SCOPE, Parse
from nlu.training_data import Example, load_examples

# written for these tests, none of them in nlu/data (checked below)
UNSEEN = {
    "book_service": [
        "下周三上午想过来保养一下 有位置吗",
        "帮我约个时间换机油 粤A66Q88",
        "周日下午两点能来做保养不",
        "can I book my car in for a service on monday",
        "我想预定一个大保养",
    ],
    "complaint": [
        "你们怎么搞的 车修了一周还没好",
        "接待的服务员态度很差 我要投诉",
        "保养完发现少了个轮毂盖",
        "乱收费 我要投诉",
        "terrible service, I've been waiting all day",
    ],
    "roadside_help": [
        "车在高架上坏了 动不了",
        "电瓶没电打不着火 能来帮忙吗",
        "轮胎爆了 在高速服务区附近",
        "my car won't start and I'm stuck in a car park",
        "出事故了 撞车了",
    ],
    "greet": ["你好啊", "hello, anyone there?", "早上好呀 在吗", "哈喽哈喽", "您好 打扰一下"],
    "goodbye": ["好的 谢谢 再见", "那先这样 拜拜咯", "ok thanks bye bye", "行 下回聊 拜", "谢谢 再见👋"],
    "request_human": [
        "请帮我转个人工客服",
        "能不能找个真人跟我聊",
        "I want to talk to a human",
        "别让机器人回了 找个客服来",
        "要人工 不要自动回复",
    ],
}
UNSEEN_QUESTIONS = {
    "周六几点开门": "ask_question/hours",
    "what are your opening hours on sunday": "ask_question/hours",
    "你们4s店地址在哪里": "ask_question/address",
    "你们电话号码多少": "ask_question/phone",
    "保养多少钱一次": "ask_question/prices",
    "机油要多久换啊": "ask_question/maintenance_interval",
    "保修能保几年": "ask_question/warranty",
    "首保要多少公里做": "ask_question/first_service",
    "可以派人上门接我的车吗": "ask_question/pickup",
    "年检能帮忙办吗": "ask_question/inspection",
    "车险续保找你们可以吗": "ask_question/insurance",
}
# the flows' default: below it they ask again instead of acting
THRESHOLD = Settings.model_fields["nlu_threshold"].default
GARBAGE = ["!!!", "？？？。。。", "🙂🙂", "Привет как дела", "สวัสดีครับ ไปไหนมา", "مرحبا كيف حالك"]
TINY_DATA = """version: "3.1"
nlu:
- intent: greet
  examples: |
    - 你好
    - 您好
    - hello
- intent: book_service
  examples: |
    - 我想预约保养
    - 明天能做保养吗
    - book a service
"""


@pytest.fixture(scope="module")
def nlu(tmp_path_factory: pytest.TempPathFactory) -> BuiltinNLU:
    """The shipped model, trained once for the module through the settings' factory."""
    settings = Settings(nlu_model_dir=tmp_path_factory.mktemp("nlu-model"))
    loaded = load_nlu(settings)
    assert isinstance(loaded, BuiltinNLU)
    return loaded


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "nlu.yml").write_text(TINY_DATA, encoding="utf-8")
    return data_dir


def assert_distribution(parse: Parse) -> None:
    confidences = [score.confidence for score in parse.ranking]
    assert all(0.0 <= c <= 1.0 for c in confidences)
    assert confidences == sorted(confidences, reverse=True)
    assert math.isclose(sum(confidences), 1.0, abs_tol=1e-6)
    assert parse.ranking[0] == parse.intent


def test_unseen_messages_are_really_unseen() -> None:
    seen = {e.text.lower() for e in load_examples(DATA_DIR)}
    unseen = [text for texts in UNSEEN.values() for text in texts] + list(UNSEEN_QUESTIONS)

    assert [text for text in unseen if text.lower() in seen] == []


@pytest.mark.parametrize(
    ("text", "intent"), [(text, intent) for intent, texts in UNSEEN.items() for text in texts]
)
def test_unseen_messages_get_their_intent(nlu: BuiltinNLU, text: str, intent: str) -> None:
    parse = nlu.parse(text)

    assert parse.name == intent, parse.ranking[:3]
    assert parse.response is None


@pytest.mark.parametrize(("text", "response"), UNSEEN_QUESTIONS.items())
def test_unseen_questions_get_ask_question_and_their_sub_intent(nlu: BuiltinNLU, text: str, response: str) -> None:
    parse = nlu.parse(text)

    assert (parse.name, parse.response) == ("ask_question", response), parse.ranking[:3]
    assert 0.0 < parse.extra["response_confidence"] <= 1.0


def test_most_unseen_messages_clear_the_default_threshold(nlu: BuiltinNLU) -> None:
    texts = [text for texts in UNSEEN.values() for text in texts] + list(UNSEEN_QUESTIONS)
    confident = [text for text in texts if nlu.parse(text).confidence >= THRESHOLD]

    assert len(confident) >= 0.9 * len(texts)


@pytest.mark.parametrize("text", ["你好", "在吗", "hi can I book a service", "车子在高速上爆胎了怎么办", "几点关门"])
def test_confidences_form_a_sorted_probability_ranking(nlu: BuiltinNLU, text: str) -> None:
    parse = nlu.parse(text)

    assert_distribution(parse)
    assert {score.name for score in parse.ranking} == set(nlu.intents)


@pytest.mark.parametrize(
    ("text", "intent"),
    [("你好", "greet"), ("转人工", "request_human"), ("人工客服", "request_human"), ("agent", "request_human")],
)
def test_short_everyday_messages(nlu: BuiltinNLU, text: str, intent: str) -> None:
    assert nlu.parse(text).name == intent


def test_full_width_and_upper_case_text_reads_like_plain_text(nlu: BuiltinNLU) -> None:
    full_width = "ＨＩ　ＣＡＮ　Ｉ　ＢＯＯＫ　Ａ　ＳＥＲＶＩＣＥ"  # noqa: RUF001  (what some phone keyboards send)

    assert nlu.parse(full_width).ranking == nlu.parse("hi can i book a service").ranking


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", *GARBAGE])
def test_garbage_is_out_of_scope_not_an_error(nlu: BuiltinNLU, text: str) -> None:
    parse = nlu.parse(text)

    assert parse.name == OUT_OF_SCOPE
    assert parse.text == text
    assert parse.response is None
    assert_distribution(parse)


@pytest.mark.parametrize("text", ["", "   ", "!!!", "🙂🙂", "สวัสดีครับ ไปไหนมา", "مرحبا كيف حالك"])
def test_text_without_known_features_gets_low_confidence(nlu: BuiltinNLU, text: str) -> None:
    assert nlu.parse(text).confidence < THRESHOLD


def test_ten_thousand_characters_still_parse(nlu: BuiltinNLU) -> None:
    text = ("明天下午三点能做个小保养吗 粤B12345 " * 500)[:10_000]

    parse = nlu.parse(text)

    assert parse.text == text
    assert parse.name == "book_service"
    assert_distribution(parse)


def test_ten_thousand_unknown_characters_still_parse(nlu: BuiltinNLU) -> None:
    parse = nlu.parse("ж" * 10_000)

    assert_distribution(parse)


def test_ask_question_parse_carries_a_rasa_response_selector(nlu: BuiltinNLU) -> None:
    rasa = nlu.parse("你们几点关门").to_rasa()

    assert rasa["intent"]["name"] == "ask_question"
    assert rasa["response_selector"]["default"]["response"]["intent_response_key"] == "ask_question/hours"
    assert len(rasa["intent_ranking"]) == len(nlu.intents)


def test_fast_path_matches_the_sklearn_pipeline(nlu: BuiltinNLU) -> None:
    model = nlu.trained
    assert model is not None, "the module's model is trained in this process"
    for text in [*UNSEEN["complaint"], *UNSEEN_QUESTIONS, "Привет как дела", "x" * 2000]:
        matrix = model.features.transform([model_text(text)])
        expected = dict(zip(model.intents.classes_, model.intents.predict_proba(matrix)[0], strict=True))

        parse = nlu.parse(text)

        assert {s.name: s.confidence for s in parse.ranking} == pytest.approx(expected, abs=1e-9)


def test_parse_gives_the_same_answers_from_many_threads(nlu: BuiltinNLU) -> None:
    texts = [text for texts in UNSEEN.values() for text in texts] * 20
    expected = [nlu.parse(text) for text in texts]

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(nlu.parse, texts)) == expected


def test_saved_model_is_reused_while_the_data_is_unchanged(tiny_data: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    first = BuiltinNLU.load_or_train(tiny_data, model_dir)
    saved = (model_dir / MODEL_FILE).stat()

    second = BuiltinNLU.load_or_train(tiny_data, model_dir)

    after = (model_dir / MODEL_FILE).stat()
    assert (after.st_ino, after.st_mtime_ns) == (saved.st_ino, saved.st_mtime_ns)
    assert second.parse("你好呀") == first.parse("你好呀")
    assert [p.name for p in model_dir.iterdir()] == [MODEL_FILE]


def test_changed_data_retrains_the_saved_model(tiny_data: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    BuiltinNLU.load_or_train(tiny_data, model_dir)
    saved = (model_dir / MODEL_FILE).stat()
    with (tiny_data / "nlu.yml").open("a", encoding="utf-8") as file:
        file.write("- intent: goodbye\n  examples: |\n    - 再见\n    - 拜拜\n    - bye\n")

    retrained = BuiltinNLU.load_or_train(tiny_data, model_dir)

    assert "goodbye" in retrained.intents
    assert (model_dir / MODEL_FILE).stat().st_ino != saved.st_ino
    assert BuiltinNLU.load_or_train(tiny_data, model_dir).intents == retrained.intents


@pytest.mark.parametrize("content", [b"", b"not a pickle", pickle.dumps({"format": 0, "data_hash": "old"})])
def test_unreadable_or_stale_model_file_is_replaced(tiny_data: Path, tmp_path: Path, content: bytes) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / MODEL_FILE).write_bytes(content)

    nlu = BuiltinNLU.load_or_train(tiny_data, model_dir)

    assert nlu.parse("你好").name == "greet"
    assert (model_dir / MODEL_FILE).read_bytes() != content


@pytest.mark.parametrize("intents", [["greet"], ["greet", "book_service"]])
def test_fast_path_matches_sklearn_with_one_or_two_intents(intents: list[str]) -> None:
    examples = [e for e in load_examples(DATA_DIR) if e.intent in intents]
    nlu = BuiltinNLU.train(examples)
    assert nlu.trained is not None
    matrix = nlu.trained.features.transform([model_text("你好 我想预约保养")])

    expected = nlu.trained.intents.predict_proba(matrix)[0]

    ranking = {s.name: s.confidence for s in nlu.parse("你好 我想预约保养").ranking}
    assert [ranking[name] for name in nlu.trained.intents.classes_] == pytest.approx(list(expected))


def test_a_single_retrieval_key_is_always_the_response() -> None:
    examples = [
        Example("几点关门", "ask_question", "ask_question/hours"),
        Example("周末开门吗", "ask_question", "ask_question/hours"),
        Example("你好", "greet"),
    ]

    parse = BuiltinNLU.train(examples).parse("几点开门")

    assert (parse.name, parse.response) == ("ask_question", "ask_question/hours")
    assert np.isclose(parse.extra["response_confidence"], 1.0)


def test_training_without_examples_is_refused() -> None:
    with pytest.raises(ValueError, match="no training examples"):
        BuiltinNLU.train([])


def test_a_saved_model_parses_like_the_trained_one_without_importing_sklearn(nlu: BuiltinNLU, tmp_path: Path) -> None:
    BuiltinNLU.load_or_train(DATA_DIR, tmp_path)  # trains and saves
    script = (
        "import sys, json; from pathlib import Path; from nlu.builtin import BuiltinNLU; "
        f"nlu = BuiltinNLU.load_or_train(Path({str(DATA_DIR)!r}), Path({str(tmp_path)!r})); "
        "assert nlu.trained is None, 'loaded, not trained'; "
        "assert 'sklearn' not in sys.modules, 'a loaded model must not pull in sklearn'; "
        "print(json.dumps([[s.name, s.confidence] for s in nlu.parse(sys.argv[1]).ranking]))"
    )
    text = "明天下午三点能做个小保养吗 粤B12345"
    result = subprocess.run(
        [sys.executable, "-c", script, text], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2]
    )

    loaded = dict(json.loads(result.stdout))
    assert loaded == pytest.approx({s.name: s.confidence for s in nlu.parse(text).ranking}, abs=1e-9)
