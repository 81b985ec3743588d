"""Thin, transactional services: each takes a session and an Actor and never commits;
the caller (route, CLI, test) owns the transaction, so a failure anywhere leaves nothing."""
