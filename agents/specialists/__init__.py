"""The specialist agents the supervisor routes incidents to."""
