"""Slack integration: Block Kit messages built from the API's views."""
