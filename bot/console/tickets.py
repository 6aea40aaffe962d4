"""Console pages: tickets (being built)."""
from __future__ import annotations

from bot.console.scope import page_router

router = page_router()
