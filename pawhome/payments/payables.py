"""The payable registry: what payments may be for, and what a payment or a settled refund
does to the thing paid for. Payments sits below the mall and booking and knows none
of them; each registers its payable type here when its module is imported.

    payables.register_payable("order", on_paid=apply_payment, on_refund_settled=apply_refund)

`on_paid(session, payment)` runs in payments' transaction once, after the Payment row is
locked and marked paid: True when the payable took the money, False when it can no longer
(cancelled meanwhile) and the money must go back (payments then refunds it in full).
`on_refund_settled(session, refund)` runs in the transaction that marks a refund success,
abnormal or closed (`refund.status` says which). Neither commits.
"""
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from models.payments import Payment, PaymentRefund

OnPaid = Callable[[AsyncSession, Payment], Awaitable[bool]]
OnRefundSettled = Callable[[AsyncSession, PaymentRefund], Awaitable[None]]

# Stored in payments.payable_type (String(16)) and in task arguments.
_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")


@dataclass(frozen=True)
class Payable:
    payable_type: str
    on_paid: OnPaid
    on_refund_settled: OnRefundSettled


_payables: dict[str, Payable] = {}


def register_payable(payable_type: str, *, on_paid: OnPaid,
                     on_refund_settled: OnRefundSettled) -> None:
    """Make `payable_type` payable. Registering the same functions again is a no-op (a module
    imported twice); other functions for a registered type are refused."""
    if not _TYPE.match(payable_type):
        raise ValueError(f"payable type must be 1-16 lower-case letters, digits or _: "
                         f"{payable_type!r}")
    entry = Payable(payable_type, on_paid, on_refund_settled)
    known = _payables.get(payable_type)
    if known is not None and known != entry:
        raise ValueError(f"payable type {payable_type!r} is registered already")
    _payables[payable_type] = entry


def payable(payable_type: str) -> Payable:
    """The registration of a payable type; LookupError for one nobody registered."""
    found = _payables.get(payable_type)
    if found is None:
        raise LookupError(f"no payable type {payable_type!r} is registered "
                          "(is its module in pawhome/domains.py?)")
    return found


def is_registered(payable_type: str) -> bool:
    return payable_type in _payables


def registered_types() -> list[str]:
    return sorted(_payables)
