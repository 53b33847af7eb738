-- Opt-in session recordings: a tenant's default, each session's choice, and where the audio is.
ALTER TABLE tenants ADD COLUMN record_sessions boolean NOT NULL DEFAULT false;
ALTER TABLE sessions
    ADD COLUMN record boolean NOT NULL DEFAULT false,
    ADD COLUMN recording_key text,
    ADD COLUMN recording_bytes bigint;
