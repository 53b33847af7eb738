-- Session recordings in segments: each a complete Ogg/Opus file uploaded while the session runs.
--
-- ``seq`` orders a session's segments (0, 1, …) in the order they arrived, so a resumed job's
-- segments follow the earlier job's; ``(session_id, job_id, n)`` makes a job's re-sent segment
-- the same row. ``started_at_s`` is the segment's start on the session's timeline (seconds
-- after ``sessions.started_at``). A recording stored whole before this (``recording_key``)
-- stays where it is and is listed as the session's only segment.
CREATE TABLE session_recording_segments (
    session_id   uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq          integer NOT NULL CHECK (seq >= 0),
    job_id       text NOT NULL,
    n            integer NOT NULL CHECK (n >= 0),
    started_at_s double precision NOT NULL,
    duration_s   double precision NOT NULL CHECK (duration_s >= 0),
    bytes        bigint NOT NULL CHECK (bytes >= 0),
    asset_key    text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, seq),
    UNIQUE (session_id, job_id, n)
);
