"""The gateway's service: every operation of the wire protocol, with its checks.

The HTTP routes, the CLI and the embedded client all call this one class, so a decision
is made in one place whichever way a request arrives. :class:`Gateway` is a façade: each
concept lives in its own module, and every part writes through the one
:class:`~agenitry.gateway.service.transactions.Transactions`, so a decision, its hold, its
audit event and its idempotency record commit together or not at all.

=================  ==========================================================
venues             create_venue, get_venue, list_venues
keys               create_key, list_keys, revoke_key, authenticate
client_events      log_event, log_events, list_events, stats
authorizations     authorize, claim, execute, settle, reverse, approve, deny,
                   get_authorization, list_authorizations
policies           put_policy, list_policies, delete_policy
housekeeping       public_event, sweep
transactions       the venue transaction, the idempotent write, the read
=================  ==========================================================
"""

from __future__ import annotations

from typing import Optional

from agenitry.gateway._clock import SECOND, Clock, system_clock
from agenitry.gateway.service.audit import AuditTrail
from agenitry.gateway.service.authorizations import Authorizations
from agenitry.gateway.service.checkpoints import Checkpointer, origin_prefix
from agenitry.gateway.service.client_events import ClientEvents
from agenitry.gateway.service.housekeeping import Housekeeping
from agenitry.gateway.service.key_cache import DEFAULT_SIZE, KeyCache
from agenitry.gateway.service.keys import ApiKeys
from agenitry.gateway.service.policies import Policies
from agenitry.gateway.service.signing import SigningKey
from agenitry.gateway.service.transactions import Idempotency, Outcome, Transactions
from agenitry.gateway.service.venues import Venues
from agenitry.gateway.store.database import Database

__all__ = ["Gateway", "Idempotency", "Outcome"]


class Gateway:
    """The service behind every route.

    >>> gateway = Gateway(Database("sqlite:///agenitry.db"))  # doctest: +SKIP
    >>> gateway.migrate()  # doctest: +SKIP
    """

    def __init__(
        self,
        database: Database,
        *,
        clock: Clock = system_clock,
        execute_window: float = 300.0,
        approval_window: float = 86_400.0,
        public_url: str = "http://127.0.0.1:8700",
        signing_key: Optional[SigningKey] = None,
        checkpoint_every: int = 1000,
        checkpoint_interval: float = 60.0,
        log_origin: str = "",
        key_cache_ttl: float = 5.0,
        key_cache_size: int = DEFAULT_SIZE,
    ) -> None:
        """Without ``signing_key``, checkpoints are signed by a key made for this instance
        alone (see :mod:`agenitry.gateway.service.signing` for keys that last). A key is
        trusted from memory for ``key_cache_ttl`` seconds (0: read on every request) by
        ``authenticate(..., cached=True)``; writes re-check it on a revocation."""
        self.db = database
        self.keys = KeyCache(int(key_cache_ttl * SECOND), key_cache_size)
        self.clock = clock
        self.execute_window = int(execute_window * SECOND)
        self.approval_window = int(approval_window * SECOND)
        self.public_url = public_url.rstrip("/")
        self.checkpointer = Checkpointer(
            signing_key or SigningKey.generate(),
            prefix=log_origin or origin_prefix(self.public_url),
            every=checkpoint_every,
            interval_ms=int(checkpoint_interval * SECOND),
        )
        transactions = Transactions(
            database, clock=clock, keys=self.keys, checkpointer=self.checkpointer, public_url=self.public_url
        )
        self.transactions = transactions
        self._venue_tx = transactions.venue_tx
        self._transact = transactions.transact
        self._read = transactions.read
        self.audit = AuditTrail(self.db, self.checkpointer, self._venue_tx, clock)
        self.webhooks = transactions.webhooks
        self.commits = transactions.commits

        # The operations are the parts' own methods: one signature and one docstring each.
        venues = Venues(database, clock)
        self.create_venue = venues.create_venue
        self.get_venue = venues.get_venue
        self.list_venues = venues.list_venues

        keys = ApiKeys(transactions)
        self.create_key = keys.create_key
        self.list_keys = keys.list_keys
        self.revoke_key = keys.revoke_key
        self.authenticate = keys.authenticate

        client_events = ClientEvents(transactions, public_url=self.public_url)
        self.log_event = client_events.log_event
        self.log_events = client_events.log_events
        self.list_events = client_events.list_events
        self.stats = client_events.stats

        authorizations = Authorizations(
            transactions, execute_window=self.execute_window, approval_window=self.approval_window
        )
        self.authorize = authorizations.authorize
        self.claim = authorizations.claim
        self.execute = authorizations.execute
        self.settle = authorizations.settle
        self.reverse = authorizations.reverse
        self.approve = authorizations.approve
        self.deny = authorizations.deny
        self.get_authorization = authorizations.get_authorization
        self.list_authorizations = authorizations.list_authorizations

        policies = Policies(transactions)
        self.put_policy = policies.put_policy
        self.list_policies = policies.list_policies
        self.delete_policy = policies.delete_policy

        housekeeping = Housekeeping(transactions, public_url=self.public_url)
        self.public_event = housekeeping.public_event
        self.sweep = housekeeping.sweep

    def migrate(self) -> None:
        self.db.migrate()
