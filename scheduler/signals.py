"""Domain signals: the domain says what happened, mail and jobs react in the same transaction.

Receivers get ``(sender, session=..., now=..., **details)``, where ``session`` is the ORM
Session of the domain function's transaction, and must only add rows to it; the caller of the
domain function commits once for everything.
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
#: a waitlisted registrant confirmed their address (their place is unchanged; what waited for a real address goes on)
registration_verified = _signals.signal("registration-verified")
#: the registrant changed their question on the manage page; details: previous (the old text)
registration_question_changed = _signals.signal("registration-question-changed")
#: the same address signed up again: re-send the manage link
registration_repeated = _signals.signal("registration-repeated")
#: sender=announcement: queue it to its audience
announcement_made = _signals.signal("announcement-made")
#: sender=series subscription (scheduler/domain/series.py): waiting for its address to be confirmed,
#: confirmed (a place in each occurrence: one invitation for the series), signed up again, cancelled
series_subscription_pending = _signals.signal("series-subscription-pending")
series_subscription_confirmed = _signals.signal("series-subscription-confirmed")
series_subscription_repeated = _signals.signal("series-subscription-repeated")
series_subscription_cancelled = _signals.signal("series-subscription-cancelled")
#: sender=series: its rule, skipped dates or template changed (its master VEVENT did)
series_changed = _signals.signal("series-changed")
