"""Local process supervision for development (``scripts/dev``) and the test suite.

Starts the real parts — Postgres with pgvector, Redis, livekit-server — on loopback ports.
Production never imports this package.
"""
