"""The worker fleet: heartbeats in Redis, the fleet view and the desired worker count."""
