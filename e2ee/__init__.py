"""End-to-end encrypted consults: the frame format and keys (docs/e2ee.md)."""
