-- Authoritative slide state per session, and the log of every change to it.
--
-- Only sessions created with a deck have a row in slide_states. Every change is one UPDATE
-- that bumps ``version`` (guarded by the caller's expected version when given) and one INSERT
-- into slide_transitions, in the same statement; ``previous_index`` exists so that statement
-- can report where the change came from without reading the row first.
CREATE TABLE slide_states (
    session_id     uuid PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    -- A deck deleted mid-session takes its slides with it; the session then has no slides.
    deck_id        uuid NOT NULL REFERENCES decks(id) ON DELETE CASCADE,
    slide_count    integer NOT NULL CHECK (slide_count >= 1),
    index          integer NOT NULL,
    previous_index integer,
    version        bigint NOT NULL CHECK (version >= 1),
    paused         boolean NOT NULL DEFAULT false,
    changed_by     text NOT NULL,
    changed_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (index BETWEEN 1 AND slide_count)
);

CREATE TABLE slide_transitions (
    id              bigserial PRIMARY KEY,
    session_id      uuid NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    version         bigint NOT NULL,
    action          text NOT NULL CHECK (
                        action IN ('start', 'next', 'previous', 'goto', 'first', 'last',
                                   'pause', 'resume')),
    from_index      integer,
    to_index        integer NOT NULL,
    paused          boolean NOT NULL,
    actor           text NOT NULL CHECK (actor IN ('agent', 'api') OR actor LIKE 'participant:%'),
    reason          text,
    idempotency_key text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- A retried request (same key) can never apply twice.
    CONSTRAINT slide_transitions_key_uq UNIQUE (session_id, idempotency_key),
    -- One transition per version; also the index that lists a session's transitions in order.
    CONSTRAINT slide_transitions_version_uq UNIQUE (session_id, version)
);
