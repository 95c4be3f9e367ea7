"""Clients of outside services: WeChat's server API and object storage (Tencent COS or local
disk); WeChat Pay joins them. Each is reached through `Resources.http` or its SDK with a
timeout, and is pointed at a fake server in tests (docs/architecture.md, "Integrations").
"""
