"""The built-in NLU: TF-IDF over character n-grams, jieba words and lexicon concepts, logistic regression on top."""
from __future__ import annotations

import hashlib
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
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jieba
import numpy as np

from nlu.entities.extract import extract_entities
from nlu.lexicon import concepts
from nlu.parse import OUT_OF_SCOPE, IntentScore, Parse
from nlu.training_data import Example, data_hash, load_examples

if TYPE_CHECKING:
    from sklearn.base import ClassifierMixin
    from sklearn.pipeline import FeatureUnion

log = logging.getLogger(__name__)

# bump when features or the saved layout change, so old model files are retrained, not misread
FORMAT_VERSION = 3
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


# any moment will do: the classifier reads where a date is, not which date it is
_REFERENCE_NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
# entities whose exact characters say nothing about the intent: 粤B12345 and 沪A88888 are both "a plate"
PLACEHOLDERS = frozenset({"plate", "phone", "mileage", "time", "vin"})


def model_text(text: str) -> str:
    """Returns the text as the classifier reads it: normalised, entities replaced by their kind."""
    normalized = normalize(text)
    pieces, last = [], 0
    for entity in extract_entities(normalized, _REFERENCE_NOW):
        if entity.entity in PLACEHOLDERS:
            pieces += [normalized[last : entity.start], f" ent{entity.entity} "]
            last = entity.end
    pieces.append(normalized[last:])
    return feature_text("".join(pieces))


def concept_features(text: str) -> list[str]:
    """Returns the text's lexicon concepts and each pair of them ("#after_service&#car_fault")."""
    # a pair says what neither says alone: a fault after our service is a complaint, a fault
    # with a time wish is a booking
    found = sorted(set(concepts(text)))
    return found + [f"{a}&{b}" for i, a in enumerate(found) for b in found[i + 1 :]]


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
    """The fitted sklearn objects of a model trained in this process (never saved)."""

    features: FeatureUnion
    intents: ClassifierMixin
    # one classifier over every retrieval intent's keys; parse keeps those of the predicted intent
    responses: ClassifierMixin | None


# The analyzers by the name of their block in the FeatureUnion: the saved model names them.
ANALYZERS: dict[str, Callable[[str], list[str]]] = {"chars": char_ngrams, "words": words, "concepts": concept_features}


class SparseFeatures:
    """The fitted FeatureUnion as plain dicts and arrays, giving the same numbers as its transform.

    sklearn validates its input on every call (3 ms for one short message, against 0.1 ms
    here), and importing it costs a server some 90 MB: a loaded model needs neither.
    """

    def __init__(self, blocks: list[tuple[str, dict[str, int], float]], idf: np.ndarray) -> None:
        self.blocks = blocks  # (analyzer name, gram -> column, block weight)
        self.idf = idf

    @classmethod
    def from_union(cls, union: FeatureUnion) -> SparseFeatures:
        weights = union.transformer_weights or {}
        blocks, idf, offset = [], [], 0
        for name, vectorizer in union.transformer_list:
            # the arithmetic in transform is TfidfVectorizer's for exactly these settings
            if not (vectorizer.sublinear_tf and vectorizer.use_idf and vectorizer.norm == "l2"):
                raise ValueError(f"{name}: the fast path needs sublinear_tf, use_idf and norm='l2'")
            if ANALYZERS.get(name) is not vectorizer.analyzer:
                raise ValueError(f"{name}: the analyzer must be ANALYZERS[{name!r}]")
            columns = {gram: offset + column for gram, column in vectorizer.vocabulary_.items()}
            blocks.append((name, columns, float(weights.get(name, 1.0))))
            idf.append(vectorizer.idf_)
            offset += len(columns)
        return cls(blocks, np.concatenate(idf))

    @property
    def size(self) -> int:
        """Returns the number of feature columns."""
        return len(self.idf)

    def transform(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Returns the message's non-zero columns and their TF-IDF values."""
        all_columns, all_values = [], []
        for name, vocabulary, weight in self.blocks:
            counts = Counter(column for gram in ANALYZERS[name](text) if (column := vocabulary.get(gram)) is not None)
            if not counts:
                continue
            columns = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
            values = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
            values *= self.idf[columns]
            all_columns.append(columns)
            all_values.append(values * (weight / np.linalg.norm(values)))
        if not all_columns:
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float64)
        return np.concatenate(all_columns), np.concatenate(all_values)


class LinearScores:
    """A fitted classifier's predict_proba as one gather, one dot product and a softmax."""

    def __init__(self, classes: list[str], coef: np.ndarray, intercept: np.ndarray) -> None:
        self.classes = classes
        self.coef = coef  # features x classes
        self.intercept = intercept

    @classmethod
    def from_classifier(cls, classifier: ClassifierMixin, size: int) -> LinearScores:
        classes = [str(name) for name in classifier.classes_]
        if hasattr(classifier, "class_prior_"):  # DummyClassifier
            # softmax(log prior) is the prior, whatever the message
            return cls(classes, np.zeros((size, len(classes))), np.log(classifier.class_prior_))
        if len(classes) == 2:
            # binary LogisticRegression: sigmoid(s) is softmax over (0, s)
            coef = np.hstack([np.zeros((size, 1)), classifier.coef_.T])
            return cls(classes, coef, np.concatenate([[0.0], classifier.intercept_]))
        return cls(classes, np.ascontiguousarray(classifier.coef_.T), classifier.intercept_.copy())

    def probabilities(self, columns: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Returns the class probabilities, in the order of `classes`."""
        scores = values @ self.coef[columns] + self.intercept
        scores = np.exp(scores - scores.max())
        return scores / scores.sum()


@dataclass(frozen=True, slots=True)
class RuntimeModel:
    """What parsing needs and what is saved: numpy arrays and dicts, no sklearn."""

    features: SparseFeatures
    intents: LinearScores
    responses: LinearScores | None

    @classmethod
    def from_trained(cls, trained: TrainedModel) -> RuntimeModel:
        features = SparseFeatures.from_union(trained.features)
        responses = trained.responses
        return cls(
            features=features,
            intents=LinearScores.from_classifier(trained.intents, features.size),
            responses=LinearScores.from_classifier(responses, features.size) if responses is not None else None,
        )


class BuiltinNLU:
    """Classifies owners' messages with a model trained from the Rasa YAML in nlu/data."""

    def __init__(self, model: RuntimeModel, trained: TrainedModel | None = None) -> None:
        self._runtime = model
        self._trained = trained
        self._features = model.features
        self._intents = model.intents
        self._responses = model.responses

    @property
    def runtime(self) -> RuntimeModel:
        """Returns the model as parsing uses it and as it is saved."""
        return self._runtime

    @property
    def trained(self) -> TrainedModel | None:
        """Returns the fitted sklearn objects when this process trained the model, else None."""
        return self._trained

    @property
    def intents(self) -> list[str]:
        """Returns the intents the model can predict."""
        return list(self._intents.classes)

    @classmethod
    def train(cls, examples: Sequence[Example]) -> BuiltinNLU:
        """Trains a model on the examples."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion
        from threadpoolctl import threadpool_limits

        if not examples:
            raise ValueError("no training examples")
        texts = [model_text(example.text) for example in examples]
        features = FeatureUnion(
            [
                ("chars", TfidfVectorizer(analyzer=char_ngrams, sublinear_tf=True)),
                ("words", TfidfVectorizer(analyzer=words, sublinear_tf=True)),
                ("concepts", TfidfVectorizer(analyzer=concept_features, sublinear_tf=True)),
            ],
            # the concepts lift unseen phrasings (cross-validated macro-F1 of the core intents
            # 0.80 -> 0.90 when they came); at full weight they drown the words themselves
            transformer_weights={"chars": 1.0, "words": 1.0, "concepts": 0.5},
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
        trained = TrainedModel(features=features, intents=intents, responses=responses)
        return cls(RuntimeModel.from_trained(trained), trained)

    @classmethod
    def load_or_train(cls, data_dir: Path, model_dir: Path, *, force: bool = False) -> BuiltinNLU:
        """Loads the saved model if this code trained it on this data, else trains and saves one."""
        examples = load_examples(data_dir)
        metadata = _metadata(data_hash(examples))
        path = Path(model_dir) / MODEL_FILE
        model = None if force else _read_model(path, metadata)
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
            _write_model(path, metadata, nlu.runtime)
        except OSError:
            # a read-only disk costs a retrain at the next start, not the bot
            log.warning("nlu model not saved", extra={"path": str(path)}, exc_info=True)
        return nlu

    def parse(self, text: str, lang: str = "zh") -> Parse:
        """Classifies one message; odd input gets a low-confidence out_of_scope, never an error."""
        # one model serves Chinese and English, so lang changes nothing yet
        prepared = model_text(text)
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
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    # LogisticRegression needs two classes; one intent (or one response key) is still a model
    if len(set(labels)) < 2:
        return DummyClassifier(strategy="prior").fit(matrix, labels)
    # C=10 gives sharp probabilities, so clear messages clear the flows' threshold (0.45);
    # balanced weights stop the intents with many examples from swallowing the small ones
    classifier = LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000)
    return classifier.fit(matrix, labels)


def _feature_code_hash() -> str:
    # the features are this code's: the lexicon's cues and the entity extractors' spans. A model
    # trained by other code would read messages differently, so a change retrains it.
    package = Path(__file__).resolve().parent
    sources = [package / "builtin.py", package / "lexicon.py", *sorted((package / "entities").glob("*.py"))]
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.read_bytes())
    return digest.hexdigest()


def _metadata(training_hash: str) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "features": _feature_code_hash(),
        "sklearn": version("scikit-learn"),  # without importing it: a loaded model never needs it
        "jieba": jieba.__version__,
        "data_hash": training_hash,
    }


def _read_model(path: Path, metadata: dict[str, Any]) -> RuntimeModel | None:
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
    return model if isinstance(model, RuntimeModel) else None


def _write_model(path: Path, metadata: dict[str, Any], model: RuntimeModel) -> None:
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
