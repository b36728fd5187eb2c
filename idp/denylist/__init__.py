"""The deny-list: entries and their matching set, the service, its Security Event Tokens and the feed.

:mod:`~idp.denylist.entries`, :mod:`~idp.denylist.denyset` and :mod:`~idp.denylist.secevent` are pure
(no I/O, no state beyond the set) and are shared with resource servers (``idp.resource``);
:mod:`~idp.denylist.service` (``DenyList``) and :mod:`~idp.denylist.feed` (``DenyFeed``) run in the IdP.
This module imports nothing, so a resource server importing the pure modules loads nothing else.
"""
