"""Integrator webhooks: endpoints, the signed delivery outbox and its sender."""
