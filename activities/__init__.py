"""Provider activities: the Temporal side of talking to a provider (retries, heartbeats, errors)."""
