-- A tenant's avatar style (shared.schemas.AvatarStyle as JSON); NULL means the defaults.
ALTER TABLE tenants
    ADD COLUMN avatar jsonb CHECK (avatar IS NULL OR jsonb_typeof(avatar) = 'object');
