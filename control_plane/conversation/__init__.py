"""A session's conversation (what the presenter said and heard) and its escalations."""
