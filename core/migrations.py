"""Runs Alembic migrations programmatically (`metaops db upgrade`, server start, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

from alembic import command
from core.settings import sync_url

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(async_url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    # '%' would be read as interpolation by configparser.
    cfg.set_main_option("sqlalchemy.url", sync_url(async_url).replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(async_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(async_url), revision)
