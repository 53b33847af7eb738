"""Slide state per session: one versioned write path and its push to every client."""
