"""Celery entry point: ``celery -A appliance.worker worker`` builds the app from the settings."""

from __future__ import annotations

from appliance.config import load_settings
from appliance.services import finetune_policy
from appliance.tasks import create_celery

settings = load_settings()
celery = create_celery(settings, finetune_policy(settings))
