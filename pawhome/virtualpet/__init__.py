"""The virtual pet (萌宠伙伴): pets generated from a photo on the `ai` queue, their care
(lazy decay, interactions with inventory items, levels), the daily check-in and the
leaderboards (docs/virtual-pet.md)."""
