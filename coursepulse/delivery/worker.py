"""The webhook worker every `serve` process runs in the background.

It claims webhooks that have events to send (the claim is in the database, so two
processes never send the same delivery), sends each claimed webhook's events one at a
time in log order, and records every attempt (resolvers/webhooks.py has the rules).
News of committed events wakes it; a timer brings retries and other processes' new
webhooks. Sends are plain awaits on the event loop with a timeout: a slow receiver
holds only its own webhook's delivery, never a request or a live subscription.
"""

import asyncio
import contextlib
import logging
import random
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from coursepulse.delivery.horizon import EventHorizon
from coursepulse.delivery.sender import Sender, body_of
from coursepulse.models.db import BACKGROUND_WORK, Database
from coursepulse.models.rows import ProgressEventRow, WebhookRow
from coursepulse.resolvers import webhooks
from coursepulse.resolvers.webhooks import NO_BOUND, Attempt, RetryPolicy

log = logging.getLogger("coursepulse.webhooks")

#: Events read from the log per query while a webhook catches up.
READ_BATCH = 100
#: Seconds between prunings of old deliveries, and deliveries forgotten per statement.
PRUNE_INTERVAL = 300.0
PRUNE_BATCH = 5000
#: Seconds every-course webhooks may wait for an open transaction before it is logged.
LAG_WARNING_SECONDS = 60.0
#: Seconds before the horizon is read again while events wait for it.
HORIZON_RECHECK_SECONDS = 0.05
#: Seconds a stopping process gives itself to let go of its claims.
RELEASE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """How the worker works (from Settings; tests shorten the waits)."""

    policy: RetryPolicy
    #: Seconds between looks for due retries and new webhooks when no news comes.
    poll_seconds: float = 1.0
    #: Webhooks one process delivers at once.
    concurrency: int = 8
    #: How long a claim holds without being renewed (a process that died lets go then).
    lease: timedelta = timedelta(seconds=60)
    #: Deliveries older than this are forgotten.
    retention: timedelta = timedelta(days=30)


class DeliveryObserver(Protocol):
    """Told what the worker does (metrics)."""

    def webhook_attempted(self, succeeded: bool) -> None: ...

    def webhooks_waiting(self, count: int) -> None: ...


class WebhookWorker:
    """Delivers webhooks for one process (see the module's docstring)."""

    def __init__(
        self,
        db: Database,
        sender: Sender,
        config: WorkerConfig,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self.db = db
        self.sender = sender
        self.config = config
        self.observer = observer
        self.horizon = EventHorizon() if db.dialect == "postgresql" else None
        self.rng = random.Random()  # noqa: S311  (jitter of retries, not a secret)
        self._news = asyncio.Event()
        self._deliveries: dict[int, asyncio.Task[None]] = {}
        #: The claim token of each webhook this process delivers now.
        self._claims: dict[int, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._active = True
        self._pruned_at = 0.0
        self._warned_at = -float("inf")

    def wake(self) -> None:
        """Events were committed: look for webhooks to deliver."""
        self._news.set()

    def start(self, ready: asyncio.Event | None = None) -> None:
        self._task = asyncio.create_task(self._run(ready), name="webhook-worker")

    @property
    def stopped(self) -> bool:
        """True once `stop` has ended the worker's loop (or it never started)."""
        return self._task is None or self._task.done()

    async def stop(self) -> None:
        """Stop looking, cancel the sends under way and let go of their claims, so another
        process (or this one restarted) goes on at once. An event cut off mid-send is sent
        again, which receivers drop by its webhook-id."""
        claims = dict(self._claims)
        tasks = [task for task in (self._task, *self._deliveries.values()) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if claims:
            try:
                async with asyncio.timeout(RELEASE_SECONDS), self.db.write() as tx:
                    for webhook_id, token in claims.items():
                        await webhooks.release(tx, webhook_id, token)
            except Exception as error:  # the claims run out by themselves
                log.warning("could not let go of webhook claims: %s", error)

    @property
    def bound(self) -> int:
        """The newest event id that may be delivered now."""
        return NO_BOUND if self.horizon is None else self.horizon.bound

    async def _run(self, ready: asyncio.Event | None) -> None:
        BACKGROUND_WORK.set(True)  # this task's context, and that of the sends it starts
        if ready is not None:
            await ready.wait()
        ticked_at = -float("inf")
        while True:
            # Not `asyncio.wait_for`: on Python 3.11 it returns the news, swallowing the
            # cancellation, when `stop` comes in the same turn of the loop as a wake-up;
            # the worker then went on and `stop` waited for it forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.poll_seconds):
                    await self._news.wait()
            self._news.clear()
            now = time.monotonic()
            if not self._active and now - ticked_at < self.config.poll_seconds:
                continue  # no webhook was switched on: look again when the time comes
            ticked_at = now
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # The database may be down: the next tick tries again.
                log.warning("webhook delivery paused: %s: %s", type(error).__name__, error)

    async def tick(self) -> None:
        """Claim what is due and start delivering it."""
        async with self.db.read() as tx:
            switched_on = await webhooks.activity(tx)
            if switched_on.any and self.observer is not None:
                self.observer.webhooks_waiting(await webhooks.count_behind(tx, bound=self.bound))
        self._active = switched_on.any
        if not switched_on.any:
            if self.observer is not None:
                self.observer.webhooks_waiting(0)
            return
        if switched_on.every_course and self.horizon is not None:
            async with self.db.write() as tx:  # the horizon takes a transaction id
                last_event_id, *passing = await webhooks.event_horizon(tx)
            if self.horizon.observe(last_event_id, *passing) < last_event_id:
                # Complete once this transaction (at least) has ended: look again soon.
                asyncio.get_running_loop().call_later(HORIZON_RECHECK_SECONDS, self.wake)
                self._note_lag(self.horizon.waited())
        await self._prune_now_and_then()
        free = self.config.concurrency - len(self._deliveries)
        if free <= 0:
            return
        token = secrets.token_hex(16)
        async with self.db.write() as tx:
            claimed = await webhooks.claim_due(
                tx,
                token=token,
                lease=self.config.lease,
                bound=self.bound,
                limit=free,
                busy=list(self._deliveries),
            )
        for webhook in claimed:
            self._claims[webhook.id] = token
            task = asyncio.create_task(self._deliver(webhook, token), name=f"webhook-{webhook.id}")
            self._deliveries[webhook.id] = task

    def _note_lag(self, waited: float) -> None:
        """Say (once a minute) when every-course webhooks wait long for old transactions."""
        now = time.monotonic()
        if waited >= LAG_WARNING_SECONDS and now - self._warned_at >= LAG_WARNING_SECONDS:
            self._warned_at = now
            log.warning(
                "webhooks for every course have waited %.0f s for a database transaction"
                " that is still open (look for one idle in transaction)",
                waited,
            )

    async def _prune_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._pruned_at < PRUNE_INTERVAL:
            return
        self._pruned_at = now
        while True:
            async with self.db.write() as tx:
                pruned = await webhooks.prune_deliveries(
                    tx, older_than=self.config.retention, limit=PRUNE_BATCH
                )
            if pruned < PRUNE_BATCH:
                return

    async def _deliver(self, webhook: WebhookRow, token: str) -> None:
        """Send the claimed webhook's events in order until none is left, one fails, or
        the claim is lost; then let go (after a rewind, of the time it left behind)."""
        try:
            await self._send_in_order(webhook, token)
            async with self.db.write() as tx:
                await webhooks.release(tx, webhook.id, token)
            # Events committed while the claim was held found it taken: look again.
            self.wake()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivering webhook %s failed; its claim runs out", webhook.id)
        finally:
            if self._deliveries.get(webhook.id) is asyncio.current_task():
                del self._deliveries[webhook.id]
                self._claims.pop(webhook.id, None)

    async def _send_in_order(self, webhook: WebhookRow, token: str) -> bool:
        """True when every event up to the bound was sent (the claim is still held); False
        when an attempt failed (retried later) or the claim was lost."""
        cursor = webhook.last_event_id
        attempt = webhook.failed_attempts + 1
        failing_since = webhook.failing_since
        lease = self.config.lease
        while True:
            async with self.db.read() as tx:
                events = await webhooks.events_to_send(
                    tx, webhook, after=cursor, bound=self.bound, limit=READ_BATCH
                )
            if not events:
                return True
            for event in events:
                if not webhooks.wants(webhook, event):
                    continue
                outcome = await self._send(webhook, event)
                if self.observer is not None:
                    self.observer.webhook_attempted(outcome.succeeded)
                async with self.db.write() as tx:
                    held = await webhooks.record_attempt(
                        tx,
                        webhook,
                        token=token,
                        event_id=event.id,
                        attempt=attempt,
                        failing_since=failing_since,
                        outcome=outcome,
                        policy=self.config.policy,
                        lease=lease,
                        rng=self.rng,
                    )
                if not held or not outcome.succeeded:
                    return False
                cursor, attempt, failing_since = event.id, 1, None
            if events[-1].id > cursor:
                async with self.db.write() as tx:
                    if not await webhooks.step_over(
                        tx, webhook, token=token, event_id=events[-1].id, lease=lease
                    ):
                        return False
                cursor = events[-1].id

    async def _send(self, webhook: WebhookRow, event: ProgressEventRow) -> Attempt:
        try:
            body = body_of(webhooks.message_of(event))
        except Exception as error:  # e.g. a kind this version does not know (rolling deploy)
            log.exception("cannot build the message of event %s", event.id)
            return Attempt(succeeded=False, error=f"cannot build the message: {error}")
        return await self.sender.send(webhook.url, webhook.secret, str(event.id), body)
