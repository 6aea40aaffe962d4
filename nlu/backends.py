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
    """Returns the NLU for these settings: the built-in model, trained from nlu/data if need be."""
    if settings.nlu_backend != "builtin":
        raise NotImplementedError(f"DEALERCARE_NLU_BACKEND={settings.nlu_backend}: only 'builtin' exists yet")
    return BuiltinNLU.load_or_train(DATA_DIR, settings.nlu_model_dir)
