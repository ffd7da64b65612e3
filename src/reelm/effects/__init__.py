"""Effects: what an action changes outside the database it commits in, carried by a per-region
outbox and applied exactly once (see docs/architecture.md, "How effects travel")."""
