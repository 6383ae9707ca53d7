"""The model registry and the upstream servers (built-in engines, vLLM replicas)."""
