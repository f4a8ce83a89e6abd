"""Celery workers: thin tasks that claim an audit by id, run the engine, store the results.

- ``workers.app``: the Celery application and its fault-tolerant settings;
- ``workers.tasks``: the task names of the contract (``biasaudit.*``);
- ``workers.runner``: what a task does (claim, heartbeat, compute, store);
- ``workers.lease``: the heartbeat, the lease keeper (``workers.lease_keeper``, a
  helper process that renews leases even while the worker holds the GIL) and
  retries through database outages within the lease;
- ``workers.hooks``: plug-ins run after a claim (the tests' fault injection);
- ``workers.shards``: the shard and merge steps of a large audit;
- ``workers.reconcile``: re-publishes lost jobs, fails exhausted ones;
- ``workers.scheduling``: turns due schedules into queued audits;
- ``workers.cli``: ``biasaudit worker`` and ``biasaudit beat``.

See docs/service.md for the topology and the fault model.
"""
