-- transcript.ready goes out once the presenter's job says it sent its last records (it flushes
-- them as the room closes), or 30 s after the end at the latest (a job lost with the room).
ALTER TABLE sessions ADD COLUMN records_complete_at timestamptz;

CREATE OR REPLACE FUNCTION podium_session_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_data jsonb := jsonb_build_object(
        'session_id', NEW.id, 'room', NEW.room, 'status', NEW.status, 'deck_id', NEW.deck_id,
        'metadata', NEW.metadata, 'created_at', NEW.created_at, 'started_at', NEW.started_at,
        'ended_at', NEW.ended_at, 'end_reason', NEW.end_reason);
BEGIN
    IF NEW.status = 'active' AND OLD.status = 'created' THEN
        PERFORM podium_webhook_event(NEW.tenant_id, 'session.started',
                                     'session.started:' || NEW.id, v_data);
    ELSIF NEW.status = 'ended' AND OLD.status <> 'ended' THEN
        PERFORM podium_webhook_event(NEW.tenant_id, 'session.ended',
                                     'session.ended:' || NEW.id, v_data);
        PERFORM podium_webhook_event(
            NEW.tenant_id, 'transcript.ready', 'transcript.ready:' || NEW.id,
            jsonb_build_object(
                'session_id', NEW.id, 'end_reason', NEW.end_reason,
                'transcript_url', '/v1/sessions/' || NEW.id || '/transcript',
                'turns_url', '/v1/sessions/' || NEW.id || '/turns',
                'export_url', '/v1/sessions/' || NEW.id || '/export'),
            CASE WHEN NEW.records_complete_at IS NOT NULL THEN now()
                 ELSE now() + interval '30 seconds' END);
    END IF;
    RETURN NEW;
END;
$$;
