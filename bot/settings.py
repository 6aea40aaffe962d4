"""The one reader of the environment: every setting DealerCare has, validated at start."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEALERCARE_", env_file=".env", extra="ignore")

    database_url: str = Field(default=f"sqlite:///{PROJECT_ROOT / 'var' / 'dealercare.db'}")
    redis_url: str | None = None
    secret_key: SecretStr = SecretStr("dev-only-secret-change-me")
    env: Literal["dev", "test", "production"] = "dev"

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True

    # the demo process runs scheduler and dispatcher inside; production runs `dealercare worker`
    embedded_worker: bool = True
    nlu_backend: Literal["builtin", "rasa"] = "builtin"
    rasa_url: str | None = None
    # seconds Rasa gets per message before the built-in model answers instead
    rasa_timeout: float = 0.8
    # Rasa's `--auth-token`, sent as its `?token=` query parameter
    rasa_token: SecretStr | None = None
    nlu_model_dir: Path = PROJECT_ROOT / "var" / "nlu"
    # below this confidence the flows ask a clarifying question instead of acting
    nlu_threshold: float = Field(default=0.45, ge=0.0, le=1.0)
    # the address channels call us at (WeChat's and Twilio's consoles); behind a proxy, its URL
    public_url: str = Field(default="http://127.0.0.1:8000", pattern=r"^https?://[^/\s]+(/.*)?$")
    # WeChat waits 5 s for the webhook's answer: reply passively within this, else "success"
    wechat_deadline: float = Field(default=4.0, gt=0, le=4.5)
    # Twilio waits about 15 s for an SMS webhook: answer TwiML within this, else empty TwiML
    sms_deadline: float = Field(default=8.0, gt=0, le=14)
    # scheduler/: how often a standby tries to lead (and a leader checks it still does), and how
    # long a row may stay `sending` before another dispatcher takes it (a crashed one's rows)
    scheduler_poll: float = Field(default=15.0, gt=0, le=60)
    dispatch_stale_after: float = Field(default=300.0, gt=0)
    # the staff console's live feed reads the event table this often (seconds) when no wake-up came
    # (Redis pub/sub wakes it at once; without Redis this is how news from another process arrives)
    console_poll: float = Field(default=15.0, gt=0, le=300)
    # the demo's stand-in for Twilio: a fake Twilio API the app starts on 127.0.0.1 at this port
    # (integrations/twilio/fake_api.py); `make run` sets 8001, which the demo dealer's account names
    fake_twilio_port: int | None = Field(default=None, ge=1, le=65535)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("must start with sqlite:// or postgresql://")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _known_redis(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis:// or rediss://")
        return value or None

    @field_validator("rasa_timeout")
    @classmethod
    def _short_timeout(cls, value: float) -> float:
        # written as a range so NaN fails too; a Rasa slower than 10 s is worse than no Rasa
        if not 0 < value <= 10:
            raise ValueError("must be more than 0 and at most 10 seconds")
        return value

    @field_validator("rasa_token")
    @classmethod
    def _empty_token_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None

    @field_validator("fake_twilio_port", mode="before")
    @classmethod
    def _empty_port_is_none(cls, value: object) -> object:
        # `DEALERCARE_FAKE_TWILIO_PORT= make run` turns the fake off (make's ?= keeps an empty value)
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("secret_key")
    @classmethod
    def _real_secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    def check_production(self) -> None:
        """Refuses the development secret and the demo's fake Twilio in production."""
        if self.env != "production":
            return
        if self.secret_key.get_secret_value().startswith("dev-only"):
            raise SettingsError("DEALERCARE_SECRET_KEY: set a real secret in production")
        # the fake takes every text and delivers none: an account pointed at it would lose them
        if self.fake_twilio_port is not None:
            raise SettingsError("DEALERCARE_FAKE_TWILIO_PORT: the fake Twilio API is for the demo and tests; unset it in production")


class SettingsError(RuntimeError):
    """A setting is wrong; the message names it by its environment variable."""


def load_settings(**overrides: object) -> Settings:
    """Reads the settings, turning validation errors into one message per bad variable."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = "DEALERCARE_" + str(error["loc"][0]).upper() if error["loc"] else "DEALERCARE_?"
            lines.append(f"{name}: {error['msg']}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
    settings.check_production()
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Returns the process's settings, read once."""
    return load_settings()
