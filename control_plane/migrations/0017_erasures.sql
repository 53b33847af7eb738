-- Retention and erasure: asset files waiting to be deleted, the erasures done, and the indexes
-- the retention sweeper and session deletion read by.

-- Asset files (a key or a prefix of keys) whose rows are gone. A deletion of records inserts
-- its files here in the transaction that deletes the rows; the files are deleted after that
-- commits, and the row with them. A file whose delete failed (or a process that died in
-- between) stays listed and is retried by the next retention sweep, so rows and files go
-- together and nothing is orphaned for good. No foreign keys: it outlives what it names.
CREATE TABLE asset_deletions (
    id         bigserial PRIMARY KEY,
    tenant_id  uuid NOT NULL,
    key        text NOT NULL,
    reason     text NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per erasure (POST /v1/erasures). The person's identity is kept only as its SHA-256:
-- the point of the request is to forget it.
CREATE TABLE erasures (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    identity_sha256 text NOT NULL CHECK (identity_sha256 ~ '^[0-9a-f]{64}$'),
    sessions        uuid[] NOT NULL,
    recordings_kept uuid[] NOT NULL,
    deleted         jsonb NOT NULL,
    requested_at    timestamptz NOT NULL,
    completed_at    timestamptz NOT NULL
);
CREATE INDEX erasures_tenant_idx ON erasures (tenant_id, requested_at DESC);

-- The sweeper walks each tenant's ended sessions by end time.
CREATE INDEX sessions_ended_idx ON sessions (tenant_id, ended_at) WHERE status = 'ended';

-- Deliveries about a session (their payload names it): deleted with the session's records.
CREATE INDEX webhook_deliveries_session_idx
    ON webhook_deliveries (tenant_id, ((payload -> 'data' ->> 'session_id')))
    WHERE payload -> 'data' ? 'session_id';

-- An erasure finds the token grants that name the person (their identity in the event's data).
CREATE INDEX audit_events_identity_idx ON audit_events (tenant_id, (data ->> 'identity'))
    WHERE data ? 'identity';
