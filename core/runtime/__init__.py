"""Running kefu: bootstrap (wiring), the plugin registry, worker, outbox delivery, users."""
