"""Consent-gated encrypted recording (not implemented yet: see issue 5)."""
