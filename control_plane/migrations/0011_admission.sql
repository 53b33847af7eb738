-- Admission counts open sessions per tenant (and the tenants with any) on every creation.
CREATE INDEX sessions_open_tenant_idx ON sessions (tenant_id) WHERE status <> 'ended';
