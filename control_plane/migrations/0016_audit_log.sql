-- The audit trail (control_plane.audit): one row per tenant API call that changes something or
-- reads a session's records, written once its answer's status is known. Not audit_events, which
-- is a session's own timeline and goes with it.
--
-- No foreign keys: a record of what was done must outlive what it was done to (a deleted session,
-- a revoked key) and must not be removable by deleting it, nor block such a deletion.
CREATE TABLE audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    tenant_id  uuid NOT NULL,
    -- The api_keys row the call authenticated with (never the key or its digest).
    key_id     uuid,
    actor      text NOT NULL CHECK (length(actor) BETWEEN 1 AND 100),
    method     text NOT NULL CHECK (method IN ('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE')),
    -- The route's template (/v1/sessions/{session_id}), never the raw path or its query.
    route      text NOT NULL CHECK (length(route) BETWEEN 1 AND 300),
    target_id  text CHECK (length(target_id) <= 200),
    status     smallint NOT NULL CHECK (status BETWEEN 100 AND 599),
    outcome    text NOT NULL CHECK (outcome IN ('ok', 'denied', 'error')),
    client_ip  inet
);
-- GET /v1/audit reads a tenant's rows by id, newest first, from a cursor.
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id);
-- Purging by age (docs/operations.md) finds old rows without reading the table.
CREATE INDEX audit_log_at_idx ON audit_log USING brin (at);

-- Append-only for everyone, the table's owner included: a statement-level trigger refuses any
-- UPDATE, DELETE (even of no rows) and TRUNCATE. Only the owner can disable it, which the
-- runtime role is not in production; the purge procedure in docs/operations.md does so.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING HINT = 'Old rows are purged by the schema owner: docs/operations.md, "Audit trail".';
END
$$;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- And no role but the owner holds the rights at all: default privileges (docs/operations.md
-- grants the runtime role UPDATE and DELETE on new tables) have just granted them; take them back.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
DO $$
DECLARE
    holder regrole;
BEGIN
    FOR holder IN
        SELECT DISTINCT a.grantee::regrole
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid = 'audit_log'::regclass
          AND a.grantee NOT IN (0, c.relowner)
          AND a.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE')
    LOOP
        EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM %s', holder);
    END LOOP;
END
$$;
