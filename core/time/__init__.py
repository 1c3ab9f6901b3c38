"""Time: working calendars and durations (pure arithmetic, no database)."""
