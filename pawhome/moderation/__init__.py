"""Moderation: the reviews of posts, comments and images (our word filter, then WeChat content
security), user reports, and the admins' decisions (docs/moderation.md).
"""
