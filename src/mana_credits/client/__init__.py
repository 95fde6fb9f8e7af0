"""The package other Python backends import: a typed credits client and the sync gate."""
