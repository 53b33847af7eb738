"""``python -m agent_worker.replay`` (what ``podium replay`` runs)."""

from agent_worker.replay import app

app()
