"""Domain signals: the domain says what happened, mail and jobs react in the same transaction.

Receivers get ``(sender, session=..., now=..., **details)`` and must only add rows to
``session``; the caller of the domain function commits once for everything. On the signup fast
path ``session`` is the Core connection of the transaction (``outbox`` takes either;
``with database.orm_session(session)`` gives an ORM session in the same transaction).
"""

from blinker import Namespace

_signals = Namespace()

#: sender=event; details: changed (set of field names), previous (dict of old values)
event_published = _signals.signal("event-published")
event_changed = _signals.signal("event-changed")
event_cancelled = _signals.signal("event-cancelled")
#: sender=registration
registration_pending = _signals.signal("registration-pending")
registration_confirmed = _signals.signal("registration-confirmed")
registration_waitlisted = _signals.signal("registration-waitlisted")
registration_promoted = _signals.signal("registration-promoted")
registration_cancelled = _signals.signal("registration-cancelled")
#: the same address signed up again: re-send the manage link
registration_repeated = _signals.signal("registration-repeated")
