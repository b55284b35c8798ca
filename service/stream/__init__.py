"""The streaming daemon: Kafka events in, verdicts and dead letters out, as a chain of small steps."""
