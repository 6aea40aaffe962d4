"""Measures the built-in NLU: training time, model size, parse latency and the server's memory.

    .venv/bin/python bench/nlu.py [--messages 10000]

Training runs here; the rest runs in a fresh process, as a server starts: it loads the saved
model and builds the whole web app (FastAPI, SQLAlchemy, wechatpy, twilio...). Latency is per
message, for the classifier alone and for the whole understanding step the pipeline runs
(classifier plus the entity extractors). Memory is that process's resident set at the end.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nlu.backends import DATA_DIR
from nlu.builtin import MODEL_FILE, BuiltinNLU
from nlu.evaluate import EVAL_FILE
from nlu.training_data import load_examples
from nlu.understand import understand


def resident_mb() -> float:
    """Returns this process's resident set size now, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(sorted_values: list[float], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * share))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)  # the measuring child process
    args = parser.parse_args()
    if args.model_dir:
        measure(Path(args.model_dir), args.messages)
        return
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        BuiltinNLU.load_or_train(DATA_DIR, Path(tmp))
        training = time.perf_counter() - started
        size_kb = (Path(tmp) / MODEL_FILE).stat().st_size / 1024
        print(f"training     {training:6.2f} s on {len(load_examples(DATA_DIR))} examples; model file {size_kb:,.0f} KB")
        # a fresh process, as a server starts: it loads the saved model and never trains
        subprocess.run([sys.executable, __file__, "--model-dir", tmp, "--messages", str(args.messages)], check=True)


def measure(model_dir: Path, count: int) -> None:
    """Builds the web app around the saved model, parses `count` messages, prints the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("DEALERCARE_DATABASE_URL", f"sqlite:///{tmp}/bench.db")
        os.environ["DEALERCARE_EMBEDDED_WORKER"] = "false"
        os.environ["DEALERCARE_NLU_MODEL_DIR"] = str(model_dir)
        from bot.app import create_app
        from bot.settings import load_settings
        from nlu.backends import load_nlu

        nlu = load_nlu(load_settings())
        create_app(nlu=nlu)
        texts = [example.text for example in load_examples(DATA_DIR) + load_examples(EVAL_FILE)]
        messages = [texts[i % len(texts)] for i in range(count)]
        now = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
        for text in messages[:200]:  # warm up caches (jieba, numpy)
            understand(nlu, text, now=now)
        classify = _latencies(lambda text: nlu.parse(text), messages)
        whole = _latencies(lambda text: understand(nlu, text, now=now), messages)
        memory = resident_mb()
    for name, values in (("classifier", classify), ("understand", whole)):
        print(
            f"{name:<12} {len(values)} messages: p50 {statistics.median(values) * 1000:.3f} ms  "
            f"p99 {percentile(values, 0.99) * 1000:.3f} ms  max {values[-1] * 1000:.3f} ms"
        )
    print(f"memory       {memory:.0f} MB resident: the web app with the model loaded (sklearn: {'sklearn' in sys.modules})")


def _latencies(run, messages: list[str]) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for text in messages:
        started = time.perf_counter()
        run(text)
        out.append(time.perf_counter() - started)
    return sorted(out)


if __name__ == "__main__":
    main()
