-- Keyset reads of a session's records.
--
-- A transcript line's ``seq`` counts within its session (1, 2, …). It was the table's global id,
-- which told anyone reading one session how many messages every tenant had spoken. Existing
-- lines are numbered per session in id order, the order the API has always given them; new
-- ones are numbered as they arrive (control_plane.conversation.repository.add_messages).
ALTER TABLE session_messages ADD COLUMN seq integer;
UPDATE session_messages m SET seq = numbered.seq
FROM (
    SELECT id, row_number() OVER (PARTITION BY session_id ORDER BY id) AS seq
    FROM session_messages
) numbered
WHERE m.id = numbered.id;
ALTER TABLE session_messages
    ALTER COLUMN seq SET NOT NULL,
    ADD CONSTRAINT session_messages_seq_check CHECK (seq >= 1),
    -- Also the index every read of a session's transcript walks.
    ADD CONSTRAINT session_messages_seq_uq UNIQUE (session_id, seq);
DROP INDEX session_messages_session_idx;

-- A session's event timeline is read in pages after a (created_at, id) key, never by OFFSET
-- (control_plane.transcripts.repository.list_events): each source walks its own index.
CREATE INDEX slide_transitions_session_time_idx ON slide_transitions (session_id, created_at, id);
CREATE INDEX audit_events_session_time_idx ON audit_events (session_id, created_at, id);
