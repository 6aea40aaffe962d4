"""The built-in NLU: TF-IDF over character n-grams and jieba words, logistic regression on top."""
from __future__ import annotations

import logging
import os
import pickle
import tempfile
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jieba
import numpy as np
import sklearn
from sklearn.base import ClassifierMixin
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion
from threadpoolctl import threadpool_limits

from nlu.parse import OUT_OF_SCOPE, IntentScore, Parse
from nlu.training_data import Example, data_hash, load_examples

log = logging.getLogger(__name__)

# bump when features or the saved layout change, so old model files are retrained, not misread
FORMAT_VERSION = 1
MODEL_FILE = "builtin.pkl"
MAX_FEATURE_CHARS = 500

_tokenizer: jieba.Tokenizer | None = None
_tokenizer_lock = threading.Lock()


def normalize(text: str) -> str:
    """Returns the text as the model reads it: NFKC, lower case, single spaces, 500 characters."""
    # cut before NFKC so a huge message costs no more than a long one
    text = unicodedata.normalize("NFKC", text[: MAX_FEATURE_CHARS * 4]).lower()
    return " ".join(text.split())[:MAX_FEATURE_CHARS]


def feature_text(normalized: str) -> str:
    """Returns the text the vectorizers read: punctuation as spaces, every digit as 0."""
    # "3点" and "4点", 粤B12345 and 粤B67890 are the same thing to an intent; punctuation is not
    # a word and must not glue n-grams across clauses ("保养 谢谢")
    chars = []
    for char in normalized:
        if "0" <= char <= "9":
            chars.append("0")
        elif unicodedata.category(char)[0] in "PZC":
            chars.append(" ")
        else:
            chars.append(char)
    return " ".join("".join(chars).split())


def has_words(text: str) -> bool:
    """Tells whether the text has a letter or a digit, not only punctuation, symbols and emoji."""
    return any(unicodedata.category(char)[0] in "LN" for char in text)


def char_ngrams(text: str) -> list[str]:
    """Returns the 1-3 character n-grams of each space-separated run, its edges marked by spaces."""
    # Chinese has no spaces, so a run is a whole clause and its bigrams and trigrams act as words;
    # English runs are words and the edge marks tell "book" from "booking". No lone-space unigram:
    # it would make every message look familiar.
    grams: list[str] = []
    for run in text.split():
        grams.extend(run)
        padded = f" {run} "
        for size in (2, 3):
            grams.extend(padded[i : i + size] for i in range(len(padded) - size + 1))
    return grams


def words(text: str) -> list[str]:
    """Returns jieba's words of the text, English words whole, without spaces."""
    # HMM=False: the dictionary cut is twice as fast and the character n-grams cover unknown words
    return [word for word in _jieba().lcut(text, HMM=False) if not word.isspace()]


def _jieba() -> jieba.Tokenizer:
    global _tokenizer
    if _tokenizer is None:
        with _tokenizer_lock:
            if _tokenizer is None:
                # jieba logs "Building prefix dict..." to stderr at DEBUG on first use
                jieba.setLogLevel(logging.WARNING)
                tokenizer = jieba.Tokenizer()
                tokenizer.initialize()
                _tokenizer = tokenizer
    return _tokenizer


@dataclass(frozen=True, slots=True)
class TrainedModel:
    """The fitted sklearn objects: what is saved, and the reference the fast path must match."""

    features: FeatureUnion
    intents: ClassifierMixin
    # one classifier over every retrieval intent's keys; parse keeps those of the predicted intent
    responses: ClassifierMixin | None


class _SparseFeatures:
    """The fitted FeatureUnion as plain dicts and arrays, giving the same numbers as its transform."""

    # sklearn validates its input on every call: 3 ms for one short message, against 0.1 ms here

    def __init__(self, union: FeatureUnion) -> None:
        weights = union.transformer_weights or {}
        self._blocks: list[tuple[Callable[[str], list[str]], dict[str, int], float]] = []
        idf = []
        offset = 0
        for name, vectorizer in union.transformer_list:
            # the arithmetic in transform is TfidfVectorizer's for exactly these settings
            if not (vectorizer.sublinear_tf and vectorizer.use_idf and vectorizer.norm == "l2"):
                raise ValueError(f"{name}: the fast path needs sublinear_tf, use_idf and norm='l2'")
            columns = {gram: offset + column for gram, column in vectorizer.vocabulary_.items()}
            self._blocks.append((vectorizer.build_analyzer(), columns, float(weights.get(name, 1.0))))
            idf.append(vectorizer.idf_)
            offset += len(columns)
        self._idf = np.concatenate(idf)

    @property
    def size(self) -> int:
        """Returns the number of feature columns."""
        return len(self._idf)

    def transform(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Returns the message's non-zero columns and their TF-IDF values."""
        all_columns, all_values = [], []
        for analyze, vocabulary, weight in self._blocks:
            counts = Counter(column for gram in analyze(text) if (column := vocabulary.get(gram)) is not None)
            if not counts:
                continue
            columns = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
            values = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
            values *= self._idf[columns]
            all_columns.append(columns)
            all_values.append(values * (weight / np.linalg.norm(values)))
        if not all_columns:
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float64)
        return np.concatenate(all_columns), np.concatenate(all_values)


class _LinearScores:
    """A fitted classifier's predict_proba as one gather, one dot product and a softmax."""

    def __init__(self, classifier: ClassifierMixin, size: int) -> None:
        self.classes: list[str] = [str(name) for name in classifier.classes_]
        if isinstance(classifier, DummyClassifier):
            # softmax(log prior) is the prior, whatever the message
            self._coef = np.zeros((size, len(self.classes)))
            self._intercept = np.log(classifier.class_prior_)
        elif len(self.classes) == 2:
            # binary LogisticRegression: sigmoid(s) is softmax over (0, s)
            self._coef = np.hstack([np.zeros((size, 1)), classifier.coef_.T])
            self._intercept = np.concatenate([[0.0], classifier.intercept_])
        else:
            self._coef = np.ascontiguousarray(classifier.coef_.T)
            self._intercept = classifier.intercept_.copy()

    def probabilities(self, columns: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Returns the class probabilities, in the order of `classes`."""
        scores = values @ self._coef[columns] + self._intercept
        scores = np.exp(scores - scores.max())
        return scores / scores.sum()


class BuiltinNLU:
    """Classifies owners' messages with a model trained from the Rasa YAML in nlu/data."""

    def __init__(self, model: TrainedModel) -> None:
        self._model = model
        self._features = _SparseFeatures(model.features)
        size = self._features.size
        self._intents = _LinearScores(model.intents, size)
        self._responses = _LinearScores(model.responses, size) if model.responses is not None else None

    @property
    def model(self) -> TrainedModel:
        """Returns the fitted sklearn objects behind this NLU."""
        return self._model

    @property
    def intents(self) -> list[str]:
        """Returns the intents the model can predict."""
        return list(self._intents.classes)

    @classmethod
    def train(cls, examples: Sequence[Example]) -> BuiltinNLU:
        """Trains a model on the examples."""
        if not examples:
            raise ValueError("no training examples")
        texts = [feature_text(normalize(example.text)) for example in examples]
        features = FeatureUnion(
            [
                ("chars", TfidfVectorizer(analyzer=char_ngrams, sublinear_tf=True)),
                ("words", TfidfVectorizer(analyzer=words, sublinear_tf=True)),
            ]
        )
        keyed = [(i, example.response_key) for i, example in enumerate(examples) if example.response_key]
        # a problem this small only loses to BLAS threads fighting over the cores: 0.8 s on one
        # thread, 2-10 s on two busy ones
        with threadpool_limits(limits=1):
            matrix = features.fit_transform(texts)
            intents = _fit_classifier(matrix, [example.intent for example in examples])
            responses = (
                _fit_classifier(matrix[[i for i, _ in keyed]], [key for _, key in keyed]) if keyed else None
            )
        return cls(TrainedModel(features=features, intents=intents, responses=responses))

    @classmethod
    def load_or_train(cls, data_dir: Path, model_dir: Path) -> BuiltinNLU:
        """Loads the saved model if this code trained it on this data, else trains and saves one."""
        examples = load_examples(data_dir)
        metadata = _metadata(data_hash(examples))
        path = Path(model_dir) / MODEL_FILE
        model = _read_model(path, metadata)
        if model is not None:
            log.info("nlu model loaded", extra={"path": str(path), "data_hash": metadata["data_hash"][:12]})
            return cls(model)
        started = time.perf_counter()
        nlu = cls.train(examples)
        log.info(
            "nlu model trained",
            extra={"examples": len(examples), "seconds": round(time.perf_counter() - started, 2)},
        )
        try:
            _write_model(path, metadata, nlu.model)
        except OSError:
            # a read-only disk costs a retrain at the next start, not the bot
            log.warning("nlu model not saved", extra={"path": str(path)}, exc_info=True)
        return nlu

    def parse(self, text: str, lang: str = "zh") -> Parse:
        """Classifies one message; odd input gets a low-confidence out_of_scope, never an error."""
        # one model serves Chinese and English, so lang changes nothing yet
        prepared = feature_text(normalize(text))
        if not has_words(prepared):
            return self._unknown(text)
        columns, values = self._features.transform(prepared)
        # nothing the model has ever seen: Thai, Arabic, a script it was never shown
        if not len(columns):
            return self._unknown(text)
        probabilities = self._intents.probabilities(columns, values)
        ranking = tuple(
            IntentScore(self._intents.classes[i], float(probabilities[i]))
            for i in np.argsort(-probabilities, kind="stable")
        )
        response, extra = self._response(ranking[0].name, columns, values)
        return Parse(text=text, intent=ranking[0], ranking=ranking, response=response, extra=extra)

    def _response(
        self, intent: str, columns: np.ndarray, values: np.ndarray
    ) -> tuple[str | None, dict[str, Any]]:
        if self._responses is None:
            return None, {}
        prefix = intent + "/"
        keys = [i for i, key in enumerate(self._responses.classes) if key.startswith(prefix)]
        if not keys:
            return None, {}
        probabilities = self._responses.probabilities(columns, values)[keys]
        best = int(np.argmax(probabilities))
        confidence = float(probabilities[best] / probabilities.sum())
        return self._responses.classes[keys[best]], {"response_confidence": confidence}

    def _unknown(self, text: str) -> Parse:
        # no evidence either way: every intent equally likely, out_of_scope named first
        names = [OUT_OF_SCOPE] + [name for name in self._intents.classes if name != OUT_OF_SCOPE]
        share = 1.0 / len(names)
        ranking = tuple(IntentScore(name, share) for name in names)
        return Parse(text=text, intent=ranking[0], ranking=ranking, extra={"unknown_text": True})


def _fit_classifier(matrix: Any, labels: list[str]) -> ClassifierMixin:
    # LogisticRegression needs two classes; one intent (or one response key) is still a model
    if len(set(labels)) < 2:
        return DummyClassifier(strategy="prior").fit(matrix, labels)
    # C=10 gives sharp probabilities, so clear messages clear the flows' threshold (0.45);
    # balanced weights stop the intents with many examples from swallowing the small ones
    classifier = LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000)
    return classifier.fit(matrix, labels)


def _metadata(training_hash: str) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "sklearn": sklearn.__version__,
        "jieba": jieba.__version__,
        "data_hash": training_hash,
    }


def _read_model(path: Path, metadata: dict[str, Any]) -> TrainedModel | None:
    # the file holds two pickles, metadata first, so a model from another sklearn or another data
    # set is never unpickled at all. Pickle runs code: model_dir is ours, never user uploads.
    try:
        with path.open("rb") as file:
            if pickle.load(file) != metadata:
                log.info("nlu model is stale, retraining", extra={"path": str(path)})
                return None
            model = pickle.load(file)
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001  (a truncated or foreign file means: train again)
        log.warning("nlu model unreadable, retraining", extra={"path": str(path)}, exc_info=True)
        return None
    return model if isinstance(model, TrainedModel) else None


def _write_model(path: Path, metadata: dict[str, Any], model: TrainedModel) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # write beside the target and rename: readers see the old file or the new one, never half
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            # mkstemp makes the file 0600; the model is no secret and the bot may run as another user
            os.fchmod(file.fileno(), 0o644)
            pickle.dump(metadata, file, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.dump(model, file, protocol=pickle.HIGHEST_PROTOCOL)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
