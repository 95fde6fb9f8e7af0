"""The notification outbox and its delivery to mana-notify."""
