"""The one durable work queue: a `tasks` table, claimed with SKIP LOCKED, leased, retried as data."""
