"""Payments (docs/payments.md): what a payable (an order, a booking deposit) owes and
how it was paid through WeChat Pay v3 — prepay, the verified notify applied exactly once,
the query for missing notifies, closing, refunds and their notifies, and the daily
reconciliation against WeChat's trade bill.

Payments knows no mall: a domain above registers its payable type with the functions that
apply a payment or a settled refund to its own records (pawhome/payments/payables.py).
"""
