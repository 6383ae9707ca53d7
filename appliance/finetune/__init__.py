"""Scheduled incremental fine-tunes (issue 9): datasets, quality filters, LoRA training."""
