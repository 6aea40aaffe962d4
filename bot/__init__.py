"""DealerCare: the application (HTTP app, message pipeline, persistence, staff console)."""
