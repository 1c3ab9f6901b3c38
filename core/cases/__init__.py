"""Cases: the one commit pipeline, journal, deadlines, timers, schedules, queries, the service."""
