"""Celery tasks, one module per queue. `workers.celery_app` is the one Celery application."""
