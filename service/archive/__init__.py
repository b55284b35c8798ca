"""The verdict archive: every verdict and dead letter, with exposure metadata, in SQLite or PostgreSQL."""
