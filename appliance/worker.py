"""Celery entry point: ``celery -A appliance.worker worker`` builds the app from the settings."""

from __future__ import annotations

from appliance.config import load_settings
from appliance.tasks import create_celery

celery = create_celery(load_settings())
