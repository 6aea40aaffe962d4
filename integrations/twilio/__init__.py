"""The SMS channel through Twilio: webhook, sender, status callbacks, opt-out keywords."""
