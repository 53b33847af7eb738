-- Integrator webhook events, raised by the database in the transaction that made them true,
-- so an event is recorded exactly when its change commits (a transactional outbox): nothing
-- that happened is missed when the control plane dies, nothing that rolled back is announced.
-- One delivery row per subscribed endpoint; ``event_key`` makes an event raised twice one row.

CREATE FUNCTION podium_webhook_event(
    p_tenant uuid, p_type text, p_key text, p_data jsonb, p_due timestamptz DEFAULT now()
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_event uuid := gen_random_uuid();
BEGIN
    INSERT INTO webhook_deliveries
        (id, tenant_id, endpoint_id, event_id, event_type, event_key, payload, next_attempt_at)
    SELECT gen_random_uuid(), p_tenant, e.id, v_event, p_type, p_key,
           jsonb_build_object('id', v_event, 'type', p_type, 'created_at', now(),
                              'data', p_data),
           p_due
    FROM webhook_endpoints e
    WHERE e.tenant_id = p_tenant AND e.enabled AND p_type = ANY (e.events)
    ON CONFLICT (endpoint_id, event_key) DO NOTHING;
END;
$$;

CREATE FUNCTION podium_session_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
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
        -- The worker sends its last records within seconds of the room closing: announce
        -- the transcript once they are in.
        PERFORM podium_webhook_event(
            NEW.tenant_id, 'transcript.ready', 'transcript.ready:' || NEW.id,
            jsonb_build_object(
                'session_id', NEW.id, 'end_reason', NEW.end_reason,
                'transcript_url', '/v1/sessions/' || NEW.id || '/transcript',
                'turns_url', '/v1/sessions/' || NEW.id || '/turns',
                'export_url', '/v1/sessions/' || NEW.id || '/export'),
            now() + interval '6 seconds');
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER sessions_webhooks AFTER UPDATE OF status ON sessions
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION podium_session_webhooks();

CREATE FUNCTION podium_deck_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM podium_webhook_event(
        NEW.tenant_id, 'deck.' || NEW.status, 'deck.' || NEW.status || ':' || NEW.id,
        jsonb_build_object('deck_id', NEW.id, 'status', NEW.status, 'filename', NEW.filename,
                           'title', NEW.title, 'slide_count', NEW.slides_total,
                           'failure', CASE WHEN NEW.status = 'failed' THEN
                               jsonb_build_object('code', NEW.failure_code,
                                                  'message', NEW.failure_message) END));
    RETURN NEW;
END;
$$;

CREATE TRIGGER decks_webhooks AFTER UPDATE OF status ON decks
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       AND NEW.status IN ('ready', 'failed'))
    EXECUTE FUNCTION podium_deck_webhooks();

CREATE FUNCTION podium_escalation_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM podium_webhook_event(
        (SELECT tenant_id FROM sessions WHERE id = NEW.session_id),
        'escalation.requested', 'escalation.requested:' || NEW.id,
        jsonb_build_object('escalation_id', NEW.id, 'session_id', NEW.session_id,
                           'reason', NEW.reason, 'slide_index', NEW.slide_index,
                           'last_question', NEW.last_question,
                           'attempted_answer', NEW.attempted_answer,
                           'transcript', NEW.transcript, 'created_at', NEW.created_at));
    RETURN NEW;
END;
$$;

CREATE TRIGGER escalations_webhooks AFTER INSERT ON escalations
    FOR EACH ROW EXECUTE FUNCTION podium_escalation_webhooks();
