"""Alembic environment: migrates the database METAOPS_DATABASE_URL (or the SQLite default)."""

from __future__ import annotations

from logging.config import fileConfig

from sqlalchemy import create_engine, pool

from alembic import context
from core.models import Base
from core.settings import get_settings, sync_url

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

url = config.get_main_option("sqlalchemy.url") or sync_url(get_settings().resolved_database_url)


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    # LangGraph's Postgres saver keeps its checkpoint tables in the same database: not ours.
    return type_ != "table" or name in Base.metadata.tables


def run() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            include_name=include_name,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
