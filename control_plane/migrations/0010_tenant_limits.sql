-- Per-tenant limits (control_plane.limits). One column per limit, so each is typed and checked
-- by Postgres; NULL means the default from settings, so a changed default reaches every tenant
-- that never chose its own value.
CREATE TABLE tenant_limits (
    tenant_id                uuid PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    concurrent_sessions      integer CHECK (concurrent_sessions BETWEEN 1 AND 10000),
    sessions_per_minute      integer CHECK (sessions_per_minute BETWEEN 1 AND 10000),
    uploads_in_flight        integer CHECK (uploads_in_flight BETWEEN 1 AND 10000),
    uploads_per_hour         integer CHECK (uploads_per_hour BETWEEN 1 AND 10000),
    searches_per_second      integer CHECK (searches_per_second BETWEEN 1 AND 10000),
    slide_changes_per_second integer CHECK (slide_changes_per_second BETWEEN 1 AND 10000),
    webhook_endpoints        integer CHECK (webhook_endpoints BETWEEN 1 AND 10000),
    updated_at               timestamptz NOT NULL DEFAULT now()
);

-- Uploads being checked right now (before their deck row exists), so "uploads in flight" holds
-- across replicas. A replica that dies mid-check leaves its row to expire.
CREATE TABLE upload_checks (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX upload_checks_tenant_idx ON upload_checks (tenant_id, expires_at);
CREATE INDEX decks_tenant_unfinished_idx ON decks (tenant_id)
    WHERE status IN ('pending', 'processing');
