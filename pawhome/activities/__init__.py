"""Activities with registration (pet meetups, adoption days, vaccination days): organisers
(admins, merchants) publish them, users register, pay (cash or points), wait on the waitlist,
cancel, check in. docs/activities.md.

Modules, lower first: `states` (both state machines), `forms` (request bodies, the custom
registration fields), `seats` (seats, the waitlist, money back), `organising` (the organisers'
writes and every view), `registrations` (the users' side and check-in), `payables` (cash
registrations as payments' payable), `jobs` (unpaid seats freed, reminders, finishing, the
daily metric), `demo_activities`.
"""
