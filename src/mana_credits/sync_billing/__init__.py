"""The cloud-sync credit subscription: activation, renewals exactly once, pause, gifted sync."""
