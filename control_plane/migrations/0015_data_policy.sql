-- Compliance: each tenant's data policy, who spoke, and the spans of a recording to silence.
--
-- tenant_data_policy: what is redacted before anything is stored or sent ('off', 'mask',
-- 'drop'), and how many days each kind of record is kept after its session ended (decks: after
-- upload). NULL means the default from settings, so a changed default reaches every tenant that
-- never chose its own value; 0 days means "delete at the next sweep".
CREATE TABLE tenant_data_policy (
    tenant_id        uuid PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    redaction        text CHECK (redaction IN ('off', 'mask', 'drop')),
    transcripts_days integer CHECK (transcripts_days BETWEEN 0 AND 36500),
    turns_days       integer CHECK (turns_days BETWEEN 0 AND 36500),
    recordings_days  integer CHECK (recordings_days BETWEEN 0 AND 36500),
    events_days      integer CHECK (events_days BETWEEN 0 AND 36500),
    decks_days       integer CHECK (decks_days BETWEEN 0 AND 36500),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The end user (participant identity) whose words a user message or a turn holds, so one
-- person's records can be found and erased across sessions. NULL: spoken before this column,
-- or by no known participant.
ALTER TABLE session_messages ADD COLUMN speaker text;
ALTER TABLE session_turns ADD COLUMN speaker text;
CREATE INDEX session_messages_speaker_idx ON session_messages (speaker) WHERE speaker IS NOT NULL;
CREATE INDEX session_turns_speaker_idx ON session_turns (speaker) WHERE speaker IS NOT NULL;

-- Where personal data was spoken on the session's timeline (wall-clock times from the speech
-- recogniser's word timings): the recording's user channel is silenced over these spans, in
-- segments uploaded before the span was known as well as after.
CREATE TABLE session_redaction_spans (
    id         bigserial PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    start_at   timestamptz NOT NULL,
    end_at     timestamptz NOT NULL CHECK (end_at >= start_at),
    entities   text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_redaction_spans_session_idx ON session_redaction_spans (session_id, start_at);

-- Segments already silenced over every span known when they were written.
ALTER TABLE session_recording_segments ADD COLUMN redacted_through bigint NOT NULL DEFAULT 0;
