"""Monitoring of scheduled audits: alerts when a run moves, signed webhooks."""
