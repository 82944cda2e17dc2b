"""Prometheus metrics of the worker processes (``persist``, ``timers``, ``deliver``).

The API's own series live in ``flashsale/api/metrics.py`` and are served on its
HTTP port. Each worker process keeps plain counters on the objects that do the
work (``PersistStats``, ``TimerTotals``, ``DeliverStats``); ``workers.py`` turns
them into series at scrape time (nothing is recorded twice, nothing costs more
than an integer increment), and ``exporter.py`` serves them on the port of
``FLASHSALE_<PROCESS>_METRICS_PORT``.
"""
