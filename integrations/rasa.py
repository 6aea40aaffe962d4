"""Rasa over HTTP: a dealer's own Rasa server (`rasa run --enable-api`) as the NLU, the built-in
model behind it whenever Rasa is slow, down or answers nonsense.

Rasa Open Source pins Python < 3.11, so it never runs in our process; we only call its
documented `POST /model/parse`. A message must never wait on a dead Rasa, so a failure opens a
circuit breaker: for `retry_after` seconds every parse goes straight to the fallback, then one
request (half-open) tries Rasa again.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any

import httpx

from nlu.parse import NLU, OUT_OF_SCOPE, IntentScore, Parse

log = logging.getLogger(__name__)

# an owner's message is short; a pasted essay must not cost Rasa (or the timeout) more than this
MAX_TEXT_CHARS = 2000


class RasaError(Exception):
    """Rasa did not give a usable parse; the message is the short reason put in `Parse.extra`."""


class RasaNLU:
    """The NLU protocol over Rasa's HTTP API, with a fallback NLU and a circuit breaker."""

    def __init__(
        self,
        url: str,
        *,
        fallback: NLU,
        timeout: float = 0.8,
        token: str | None = None,
        retry_after: float = 30.0,
        client: httpx.Client | None = None,
    ) -> None:
        if timeout <= 0 or retry_after < 0:
            raise ValueError("timeout must be > 0 and retry_after >= 0")
        self.url = url.rstrip("/")
        self.fallback = fallback
        self.timeout = timeout
        self.retry_after = retry_after
        # Rasa's token auth is a query parameter (`?token=`); kept out of every log line
        self._params = {"token": token} if token else {}
        self._owns_client = client is None
        self._client = client or httpx.Client()
        self._lock = threading.Lock()
        # monotonic time before which Rasa is skipped; 0.0 means the breaker is closed
        self._open_until = 0.0
        # True while the one half-open request is in flight, so other threads keep falling back
        self._probing = False

    def parse(self, text: str, lang: str = "zh") -> Parse:
        """Parses with Rasa, or with the fallback (marked in `extra`) if Rasa cannot answer. Never raises."""
        # Rasa's /model/parse has no language parameter: one Rasa model serves the dealer
        try:
            if not self._may_call():
                return self._fall_back(text, lang, "circuit open")
            try:
                parse = self._call(text)
            except RasaError as exc:
                self._failed(str(exc))
                return self._fall_back(text, lang, str(exc))
            except Exception as exc:  # noqa: BLE001  (whatever broke, the owner still gets an answer)
                reason = f"error: {type(exc).__name__}"
                self._failed(reason)
                return self._fall_back(text, lang, reason)
            self._succeeded()
            return parse
        except Exception:  # the fallback itself broke: answer "not understood"
            log.exception("nlu fallback failed")
            return Parse(text=text, intent=IntentScore(OUT_OF_SCOPE, 0.0), extra={"backend": "none"})

    def healthy(self) -> bool:
        """Tells whether Rasa answers `GET /status` (it needs a loaded model) within the timeout."""
        try:
            response = self._client.get(f"{self.url}/status", params=self._params, timeout=self.timeout)
        except Exception:  # noqa: BLE001  (any failure means: not healthy)
            return False
        return response.is_success

    def close(self) -> None:
        """Closes the HTTP client if this object created it."""
        if self._owns_client:
            self._client.close()

    # -- the HTTP call ------------------------------------------------------------------------

    def _call(self, text: str) -> Parse:
        try:
            response = self._client.post(
                f"{self.url}/model/parse",
                json={"text": text[:MAX_TEXT_CHARS]},
                params=self._params,
                timeout=self.timeout,
            )
        except httpx.TimeoutException:
            raise RasaError("timeout") from None
        except httpx.ConnectError:
            raise RasaError("connection failed") from None
        except httpx.TransportError as exc:
            raise RasaError(f"transport error: {type(exc).__name__}") from None
        if not response.is_success:
            raise RasaError(f"http {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise RasaError("invalid json") from None
        return _to_parse(data, text)

    # -- the circuit breaker ------------------------------------------------------------------

    def _may_call(self) -> bool:
        with self._lock:
            if not self._open_until:
                return True
            if time.monotonic() < self._open_until or self._probing:
                return False
            self._probing = True
            return True

    def _succeeded(self) -> None:
        with self._lock:
            was_open = bool(self._open_until)
            self._open_until = 0.0
            self._probing = False
        if was_open:
            log.info("rasa answers again; nlu back on rasa", extra={"rasa_url": self.url})

    def _failed(self, reason: str) -> None:
        with self._lock:
            was_open = bool(self._open_until)
            self._open_until = time.monotonic() + self.retry_after
            self._probing = False
        # once per outage, not once per message or per failed retry
        if not was_open:
            log.warning(
                "rasa failed; using the built-in nlu",
                extra={"rasa_url": self.url, "reason": reason, "retry_after": self.retry_after},
            )

    def _fall_back(self, text: str, lang: str, reason: str) -> Parse:
        parse = self.fallback.parse(text, lang)
        return replace(parse, extra={**parse.extra, "backend": "builtin", "rasa_error": reason})


def _to_parse(data: Any, text: str) -> Parse:
    """Checks that Rasa's JSON is a parse (Parse.from_rasa forgives too much) and converts it."""
    if not isinstance(data, dict):
        raise RasaError("not a parse: not an object")
    intent = data.get("intent")
    if not isinstance(intent, dict) or not isinstance(intent.get("name"), str) or not intent["name"]:
        raise RasaError("not a parse: no intent")
    if not isinstance(intent.get("confidence"), int | float):
        raise RasaError("not a parse: no intent confidence")
    try:
        parse = Parse.from_rasa(data)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise RasaError("not a parse: bad entities or ranking") from None
    extra: dict[str, Any] = {"backend": "rasa"}
    response = ((data.get("response_selector") or {}).get("default") or {}).get("response") or {}
    if isinstance(response.get("confidence"), int | float):
        # the same key the built-in model uses for its retrieval sub-intent
        extra["response_confidence"] = float(response["confidence"])
    # the full message, as the built-in model returns it; Rasa saw at most MAX_TEXT_CHARS of it
    return replace(parse, text=text, extra=extra)
