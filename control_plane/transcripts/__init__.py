"""A session's records: its transcript, turn log and event timeline, for integrators and replay."""
