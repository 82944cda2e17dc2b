"""flashsale.store: the write-behind to PostgreSQL, its schema, the audit, and recovery.

Public entry points (see store/README.md):
- ``migrate.upgrade(dsn)``: apply the SQL migrations (``flashsale db upgrade``);
- ``persist.Persister``, ``cli.run_persist``: the write-behind (``flashsale persist``);
- ``lag.lag``: per-sale lag for metrics and health;
- ``audit.audit_sale``: the audit across Redis and PostgreSQL (``flashsale audit``);
- ``recover.recover``: after a Redis restart (``flashsale recover``);
- ``durability.ensure_durability``: check or apply the durability mode;
- ``cli.register(app)``: mounts the commands on the ``flashsale`` CLI.
"""
