"""Secure, private, on-premises LLM appliance."""

__version__ = "0.1.0"
