"""HTTP routers: webhooks, incidents, audit, tokens, health and metrics."""
