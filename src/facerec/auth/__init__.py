"""Access control: API keys (tenant, scopes, collections, expiry, revocation), per-key rate
limits and the audit log. The FastAPI side is :mod:`facerec.api.auth`."""
