"""The OpenAI-compatible internal API app."""
