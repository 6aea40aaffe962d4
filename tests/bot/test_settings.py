"""Settings: read from DEALERCARE_ variables; a wrong one stops the start and is named."""
from __future__ import annotations

import pytest

from bot.settings import SettingsError, load_settings


def test_database_defaults_to_an_sqlite_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEALERCARE_DATABASE_URL", raising=False)
    assert load_settings().database_url.startswith("sqlite:///")


def test_postgresql_url_gets_the_psycopg_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEALERCARE_DATABASE_URL", "postgresql://u@db:5432/dealercare")
    assert load_settings().database_url == "postgresql+psycopg://u@db:5432/dealercare"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEALERCARE_DATABASE_URL", "mysql://root@localhost/x"),
        ("DEALERCARE_REDIS_URL", "http://localhost:6379"),
        ("DEALERCARE_PORT", "99999"),
        ("DEALERCARE_NLU_THRESHOLD", "1.5"),
        ("DEALERCARE_LOG_LEVEL", "LOUD"),
        ("DEALERCARE_SECRET_KEY", "short"),
    ],
)
def test_wrong_setting_fails_with_its_name(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert variable in str(error.value)


def test_production_refuses_the_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEALERCARE_ENV", "production")
    monkeypatch.delenv("DEALERCARE_SECRET_KEY", raising=False)
    with pytest.raises(SettingsError, match="DEALERCARE_SECRET_KEY"):
        load_settings()
