-- Usage metering: what each tenant used, per session and UTC day, recorded as sessions run.
--
-- No foreign key to sessions: usage is billing data and outlives a session deleted, erased or
-- expired by retention (the rows hold ids and numbers, nothing said or shown).

-- Each worker job reports cumulative totals (per meter and dimension) since it started. The last
-- total taken is kept here; a report adds only what exceeds it to ``usage_counters``, so a
-- resent, repeated or late (smaller) report adds nothing, and a control plane restart between
-- two reports loses nothing and counts nothing twice.
CREATE TABLE usage_job_totals (
    session_id uuid NOT NULL,
    job_id     text NOT NULL,
    meter      text NOT NULL,
    dimension  text NOT NULL,
    quantity   double precision NOT NULL CHECK (quantity >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, job_id, meter, dimension)
);

-- Additive quantities by (tenant, UTC day the report arrived, session, meter, dimension).
-- meter: stt_audio_seconds | tts_characters | llm_input_tokens | llm_output_tokens |
-- avatar_seconds; dimension: the provider (STT, TTS, avatar) or the model (LLM).
CREATE TABLE usage_counters (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day        date NOT NULL,
    session_id uuid NOT NULL,
    meter      text NOT NULL,
    dimension  text NOT NULL,
    quantity   double precision NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (tenant_id, day, session_id, meter, dimension)
);
CREATE INDEX usage_counters_session_idx ON usage_counters (tenant_id, session_id);
CREATE INDEX usage_counters_day_idx ON usage_counters (day);  -- the daily sweep

-- Time in the room, from LiveKit's participant webhooks: one row per participant connection
-- (meter participant_seconds, dimension its role) and one per session (meter session_seconds,
-- from the first join to the room's end). An open row counts up to now (or the session's end).
CREATE TABLE usage_spans (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    session_id uuid NOT NULL,
    key        text NOT NULL,  -- the participant's sid; '' for the session's own span
    meter      text NOT NULL CHECK (meter IN ('session_seconds', 'participant_seconds')),
    dimension  text NOT NULL,
    started_at timestamptz NOT NULL,
    ended_at   timestamptz,
    PRIMARY KEY (session_id, key)
);
CREATE INDEX usage_spans_tenant_idx ON usage_spans (tenant_id, started_at);
CREATE INDEX usage_spans_started_idx ON usage_spans (started_at);  -- the daily sweep
CREATE INDEX usage_spans_open_idx ON usage_spans (session_id) WHERE ended_at IS NULL;
CREATE INDEX usage_spans_open_started_idx ON usage_spans (started_at) WHERE ended_at IS NULL;

-- The usage.daily webhook raised for a tenant's day: the row is inserted in the transaction that
-- raises it, so the event goes out once however many replicas sweep.
CREATE TABLE usage_daily_reports (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day        date NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, day)
);
