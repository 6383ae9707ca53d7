"""Key material and (later) envelope encryption of model files."""
