"""Identity: users and their profiles, settings and blocks; WeChat and SMS login; access and
refresh tokens; bans and roles (docs/auth.md).
"""
