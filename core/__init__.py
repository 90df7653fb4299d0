"""Core layer: settings, database, ORM models, typed errors."""
