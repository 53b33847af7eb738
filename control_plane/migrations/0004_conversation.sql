-- What a presenter said and heard, and the hand-offs it asked for.
--
-- session_messages is the conversation a worker restores when it picks a session up after
-- another worker died (stateless resume). The worker sends each finished message once it is
-- in its chat; ``item_id`` is the framework's id for it, so a retried send stores it once.
CREATE TABLE session_messages (
    id          bigserial PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    item_id     text NOT NULL,
    role        text NOT NULL CHECK (role IN ('user', 'assistant')),
    text        text NOT NULL,
    interrupted boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT session_messages_item_uq UNIQUE (session_id, item_id)
);
CREATE INDEX session_messages_session_idx ON session_messages (session_id, id);

-- escalate_to_human: the reason with what a person taking over needs to know.
CREATE TABLE escalations (
    id               uuid PRIMARY KEY,
    session_id       uuid NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    reason           text NOT NULL,
    slide_index      integer,
    last_question    text,
    attempted_answer text,
    transcript       jsonb NOT NULL,
    idempotency_key  text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT escalations_key_uq UNIQUE (session_id, idempotency_key)
);
CREATE INDEX escalations_session_idx ON escalations (session_id, created_at);

-- How many times a worker was (re-)dispatched to the session; a resumed job sees > 1.
ALTER TABLE sessions ADD COLUMN dispatch_count integer NOT NULL DEFAULT 1;
