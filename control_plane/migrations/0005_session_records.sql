-- Session records: the turn log, integrator webhooks (endpoints and a delivery outbox), and
-- what the lifecycle sweeper needs to end idle or overlong sessions.

-- One row per turn of the voice loop, as the worker recorded it. ``turn_id`` is the
-- framework's speech id, so a batch the worker resends is stored once; ``number`` is the
-- turn's place in the session (1, 2, …), assigned in the order turns arrive, which is the
-- order one job lived them.
CREATE TABLE session_turns (
    id          bigserial PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    number      integer NOT NULL CHECK (number >= 1),
    turn_id     text NOT NULL,
    record      jsonb NOT NULL,
    started_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT session_turns_turn_uq UNIQUE (session_id, turn_id),
    CONSTRAINT session_turns_number_uq UNIQUE (session_id, number)
);

-- Integrators' webhook endpoints. The secret signs deliveries (HMAC-SHA256), so it is kept
-- as is; it is shown to the integrator once, when the endpoint is created.
CREATE TABLE webhook_endpoints (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    url         text NOT NULL,
    secret      text NOT NULL,
    events      text[] NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_tenant_idx ON webhook_endpoints (tenant_id);

-- The outbox: one row per (event, endpoint), inserted in the transaction that records what
-- happened, and drained by the control plane's webhook sender. ``event_key`` names the
-- happening (``session.ended:<id>``), so an event raised twice is delivered once.
CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    event_key       text NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    CONSTRAINT webhook_deliveries_event_uq UNIQUE (endpoint_id, event_key)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at DESC);

-- The last time anyone spoke in the session (a turn or a message arrived): the idle timeout.
ALTER TABLE sessions ADD COLUMN last_activity_at timestamptz;
CREATE INDEX sessions_open_idx ON sessions (created_at) WHERE status <> 'ended';

-- When each message was spoken (the framework's speaking times), for timed transcripts (WebVTT).
ALTER TABLE session_messages ADD COLUMN started_at timestamptz, ADD COLUMN ended_at timestamptz;
