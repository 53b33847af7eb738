-- Presentation analytics (control_plane.analytics): a deck's sessions over a time range are
-- read newest first within one tenant; the tenant's created_at index alone would walk every
-- session of every deck in the range.
CREATE INDEX sessions_deck_created_idx ON sessions (tenant_id, deck_id, created_at DESC)
    WHERE deck_id IS NOT NULL;
