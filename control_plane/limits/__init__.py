"""Per-tenant limits: stored per tenant over defaults from settings, enforced on the routes."""
