"""The community: posts, boards and #topics, feeds, comments, likes, favorites and shares,
follows, profile and post counters, pet cards (docs/community.md, docs/interactions.md).
"""
