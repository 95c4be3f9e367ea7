"""Business statistics (docs/statistics.md): daily figures per Asia/Shanghai day, computed by
a beat job into `daily_stats` and read by the admin console, as CSV and as Prometheus gauges.

`metrics` is the registry of what is counted (`register_metric`: domains add their own);
`daily` computes, stores and reads the figures; `overview` is the dashboard's live view.
The package sits just above the platform, so any domain can register a metric.
"""
