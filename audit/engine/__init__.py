"""The audit engine: spec, data loading, probes, policy, manifest, chunking and sharding.

``run.compute_results`` is the one place an audit is computed; ``run.run_audit`` wraps
it in embedded mode (CLI, Python API); the Celery workers call the same functions.
"""
