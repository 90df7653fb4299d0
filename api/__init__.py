"""Entry points: FastAPI app, webhook and REST routes, CLI."""
