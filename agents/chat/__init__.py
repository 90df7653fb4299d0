"""Chat front end (Slack, web chat): the deterministic command grammar."""
