"""Promotions: coupons, group-buy (拼团) and the mall home's admin-configured slots.
docs/promotions.md."""
