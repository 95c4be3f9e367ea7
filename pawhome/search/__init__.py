"""Chinese full-text search of posts, users and topics: segmentation, the index kept in step by
tasks, and the queries (docs/search.md).
"""
