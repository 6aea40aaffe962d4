"""Builds the NLU backend the settings ask for."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nlu.builtin import BuiltinNLU
from nlu.parse import NLU

if TYPE_CHECKING:
    from bot.settings import Settings

DATA_DIR = Path(__file__).resolve().parent / "data"


def load_nlu(settings: Settings) -> NLU:
    """Returns the NLU for these settings: the built-in model, trained from nlu/data if need be,
    or a Rasa server with the built-in model as its fallback."""
    if settings.nlu_backend == "rasa":
        from bot.settings import SettingsError
        from integrations.rasa import RasaNLU

        # checked before training the fallback, so a missing URL fails at once
        url = (settings.rasa_url or "").strip()
        if not url:
            raise SettingsError("DEALERCARE_RASA_URL: must be set when DEALERCARE_NLU_BACKEND=rasa")
        if not url.startswith(("http://", "https://")):
            # "rasa:5005" would otherwise fail on every message and silently leave Rasa unused
            raise SettingsError("DEALERCARE_RASA_URL: must start with http:// or https://")
        token = settings.rasa_token.get_secret_value() if settings.rasa_token else None
        fallback = BuiltinNLU.load_or_train(DATA_DIR, settings.nlu_model_dir)
        return RasaNLU(url, fallback=fallback, timeout=settings.rasa_timeout, token=token)
    return BuiltinNLU.load_or_train(DATA_DIR, settings.nlu_model_dir)
