-- API key lifecycle (control_plane.keys): several named keys per tenant, each with scopes.
-- Keys that existed before scopes keep doing everything they did: they get every scope. New
-- keys always state theirs, so the default is dropped once the existing rows are filled.
ALTER TABLE api_keys
    ADD COLUMN name text NOT NULL DEFAULT 'default' CHECK (length(name) BETWEEN 1 AND 100),
    ADD COLUMN scopes text[] NOT NULL
        DEFAULT ARRAY['sessions', 'decks', 'records:read', 'webhooks', 'admin']
        CHECK (cardinality(scopes) >= 1
               AND scopes <@ ARRAY['sessions', 'decks', 'records:read', 'webhooks', 'admin']),
    -- Written at most once a minute per key (authentication skips fresher values).
    ADD COLUMN last_used_at timestamptz,
    -- The key whose holder created this one; NULL for keys made by `podium admin`.
    ADD COLUMN created_by uuid REFERENCES api_keys(id) ON DELETE SET NULL;
ALTER TABLE api_keys ALTER COLUMN name DROP DEFAULT, ALTER COLUMN scopes DROP DEFAULT;

-- revoked_at (0001) may now lie in the future: a rotated key keeps working until then.
COMMENT ON COLUMN api_keys.revoked_at IS
    'The key is refused from this instant on; in the future during a rotation''s grace period.';
