"""The audit trail: who changed what or read which records, through the tenant API."""
