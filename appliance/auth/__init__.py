"""Principals, passwords, API keys and role decisions."""
