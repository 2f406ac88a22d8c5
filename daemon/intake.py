"""IMAP intake: one worker per mailbox reads new mail (IDLE or polling) into the service.

The order of operations is what makes intake exactly-once: fetch with
``BODY.PEEK[]`` (nothing changes on the server), store and commit, and only
then move or flag the mail. A crash before the commit leaves the mail
unprocessed on the server; a crash after it leaves a receipt in the database,
so the next sync only finishes the move.
"""

from __future__ import annotations

import logging
import random
import select
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from imapclient import IMAPClient
from pydantic import SecretStr

from daemon.errors import ComplaintdError, PermanentError, TransientError
from daemon.imap_connection import IMAP_ERRORS, connect_mailbox
from daemon.mailbox_store import MailboxStore
from daemon.service import IngestResult, IntakeService, MailSource
from daemon.settings import IntakeSettings, MailboxSettings

__all__ = ["MailboxWorker", "SyncReport"]

logger = logging.getLogger(__name__)

_FETCH_SIZE = b"RFC822.SIZE"
_FETCH_BODY = b"BODY[]"
# Mails in the first fetch of a pass; each later fetch of the pass doubles it.
_FIRST_BATCH = 16


@dataclass(slots=True)
class SyncReport:
    """Counts of one sync pass."""

    stored: int = 0
    acknowledged: int = 0
    seen: int = 0
    """UIDs the pass looked at (new, or stored but not yet moved/flagged)."""


class MailboxWorker:
    """Reads one mailbox until told to stop, surviving any disconnect."""

    def __init__(
        self,
        mailbox: MailboxSettings,
        intake: IntakeSettings,
        service: IntakeService,
        store: MailboxStore,
        secret: Callable[[], SecretStr],
        *,
        resolve_path: Callable[[str], str] = str,
        on_batch: Callable[[Sequence[IngestResult]], None] | None = None,
    ) -> None:
        self.mailbox = mailbox
        self._intake = intake
        self._service = service
        self._store = store
        self._secret = secret
        self._resolve_path = resolve_path
        self._on_batch = on_batch
        self._highest_uid = 0

    # -- entry points ----------------------------------------------------------

    def run_once(self) -> SyncReport:
        """Connect, process everything waiting, disconnect (for ``run --once`` and cron)."""
        client = self._connect()
        try:
            uidvalidity = self._select(client)
            return self._sync(client, uidvalidity, full=True)
        finally:
            _logout_quietly(client)

    def run_forever(self, stop: threading.Event) -> None:
        """Sync and wait for new mail until ``stop`` is set; reconnect with backoff on failure."""
        delay = self._intake.reconnect_initial_delay
        while not stop.is_set():
            try:
                self._serve(stop)
                delay = self._intake.reconnect_initial_delay
            except PermanentError as exc:
                # Wrong credentials will not fix themselves soon; keep trying,
                # slowly, so a password rotation is picked up without a restart.
                self._note_failure(exc)
                delay = self._intake.reconnect_max_delay
            except TransientError as exc:
                self._note_failure(exc)
            except IMAP_ERRORS as exc:
                self._note_failure(exc)
            except Exception as exc:  # the loop never dies; a bug is logged, then retried
                logger.exception("mailbox %s: unexpected error; reconnecting", self.mailbox.name)
                self._note_failure(exc)
            if stop.is_set():
                break
            wait = min(delay, self._intake.reconnect_max_delay) * random.uniform(0.8, 1.2)
            logger.info("mailbox %s: reconnecting in %.1f s", self.mailbox.name, wait)
            stop.wait(wait)
            delay = min(delay * 2, self._intake.reconnect_max_delay)

    # -- one connection --------------------------------------------------------

    def _serve(self, stop: threading.Event) -> None:
        client = self._connect()
        try:
            uidvalidity = self._select(client)
            self._sync(client, uidvalidity, full=True)
            use_idle = self.mailbox.idle and client.has_capability("IDLE")
            logger.info(
                "mailbox %s: watching %s (%s)",
                self.mailbox.name,
                self.mailbox.folder,
                "IDLE" if use_idle else f"polling every {self.mailbox.poll_interval:g} s",
            )
            while not stop.is_set():
                if use_idle:
                    self._wait_idle(client, stop)
                else:
                    stop.wait(self.mailbox.poll_interval)
                    client.noop()
                if not stop.is_set():
                    self._sync(client, uidvalidity, full=False)
        finally:
            _logout_quietly(client)

    def _connect(self) -> IMAPClient:
        return connect_mailbox(self.mailbox, self._secret, resolve_path=self._resolve_path)

    def _select(self, client: IMAPClient) -> int:
        target = self.mailbox.move_target
        if target is not None and not client.folder_exists(target):
            client.create_folder(target)
        status = client.select_folder(self.mailbox.folder)
        uidvalidity = int(status[b"UIDVALIDITY"])
        previous = self._store.record_connect(self.mailbox.name, uidvalidity)
        if previous is not None:
            # Every UID is new to us now; Message-ID deduplication keeps the
            # mail already stored from becoming second tickets.
            logger.warning(
                "mailbox %s: UIDVALIDITY changed from %d to %d; re-reading the folder",
                self.mailbox.name,
                previous,
                uidvalidity,
            )
            self._highest_uid = 0
        return uidvalidity

    def _wait_idle(self, client: IMAPClient, stop: threading.Event) -> None:
        """Block in IDLE until the server says anything, the IDLE times out, or ``stop``.

        We wait for the socket ourselves and let ``idle_done()`` read the
        responses in blocking mode, instead of polling ``idle_check()``: that
        reads non-blocking, so a response split across packets raises
        "unterminated line", and at EOF it returns nothing forever
        (imapclient #519). Any data at all ends the wait; the sync that
        follows is a cheap UID SEARCH, and a dead or closing connection
        surfaces as an error from ``idle_done()`` and a reconnect.
        """
        client.idle()
        sock = client.socket()
        started = time.monotonic()
        # A bounded wait also catches a notification the server never sent.
        limit = min(self.mailbox.idle_timeout, self.mailbox.resync_interval)
        while not stop.is_set() and time.monotonic() - started < limit:
            # TLS may already hold decrypted bytes that select() cannot see.
            pending = getattr(sock, "pending", None)
            if pending is not None and pending() > 0:
                break
            if _already_read(client):
                break
            readable, _, _ = select.select([sock], [], [], 1.0)
            if readable:
                break
        _text, responses = client.idle_done()
        if any(_is_bye(response) for response in responses):
            raise TransientError("server said BYE during IDLE")

    # -- sync ----------------------------------------------------------------

    def _sync(self, client: IMAPClient, uidvalidity: int, *, full: bool) -> SyncReport:
        """Pass over the folder until a search finds nothing new.

        Mail that arrives while we work is announced in the untagged
        responses of our own FETCH/MOVE commands, which imapclient does not
        hand back; a server will not repeat that news in the IDLE that
        follows. Searching again until nothing is new closes that gap; the
        NOOP before each search makes servers that answer from a per-session
        snapshot (pymap) refresh it, and its own untagged EXISTS is a reason
        to look once more.
        """
        report = self._sync_pass(client, uidvalidity, full=full)
        empty_rounds = 0
        while True:
            _text, responses = client.noop()
            more = self._sync_pass(client, uidvalidity, full=False)
            announced = any(_is_exists(response) for response in responses)
            empty_rounds = 0 if more.seen else empty_rounds + 1
            # A server that repeats EXISTS on every NOOP must not keep us here.
            if empty_rounds and (not announced or empty_rounds >= 2):
                break
            report.stored += more.stored
            report.acknowledged += more.acknowledged
        if report.stored:
            logger.info("mailbox %s: stored %d new mail(s)", self.mailbox.name, report.stored)
        return report

    def _sync_pass(self, client: IMAPClient, uidvalidity: int, *, full: bool) -> SyncReport:
        """Store every mail not stored yet, then move/flag what is stored."""
        if full or self._highest_uid == 0:
            uids = sorted(client.search(["NOT", "DELETED"]))
        else:
            # "UID n:*" always answers with the last mail, even below n.
            found = client.search(["UID", f"{self._highest_uid + 1}:*", "NOT", "DELETED"])
            uids = sorted(uid for uid in found if uid > self._highest_uid)
        report = SyncReport(seen=len(uids))
        if not uids:
            return report
        stored = self._store.stored_uids(self.mailbox.name, uidvalidity, uids)
        pending = [uid for uid in uids if uid not in stored]
        finishing = [uid for uid, leave in stored.items() if not leave]
        if finishing and full:
            unacknowledged = self._still_unacknowledged(client, finishing)
            report.acknowledged += self._acknowledge(client, unacknowledged)
        for batch in self._batches(client, pending):
            report.stored += len(batch)
            results = self._process_batch(client, uidvalidity, batch)
            done = [
                result.source.uid
                for result in results
                if result.source is not None and not result.leave_on_server
            ]
            report.acknowledged += self._acknowledge(client, done)
        highest = max(uids)
        if highest > self._highest_uid:
            self._highest_uid = highest
            self._store.record_highest_uid(self.mailbox.name, highest)
        return report

    def _still_unacknowledged(self, client: IMAPClient, uids: list[int]) -> list[int]:
        """Stored mail whose move/flag did not happen (a crash between commit and ack)."""
        if self.mailbox.move_target is not None:
            return uids
        flag = self.mailbox.processed_flag
        criteria = ["UNSEEN"] if flag == "\\Seen" else ["UNKEYWORD", flag]
        unflagged = set(client.search(criteria))
        return [uid for uid in uids if uid in unflagged]

    def _batches(self, client: IMAPClient, uids: list[int]) -> Iterator[list[tuple[int, int]]]:
        """Group (UID, size) pairs so one fetch holds at most N mails or M bytes.

        Batches start small and double up to ``fetch_batch_messages``: the
        first mails of a burst are committed (and acknowledged) after a
        fraction of a second instead of waiting for a full batch, while a
        long backlog still gets large batches, one commit per many mails.
        """
        limit_count = min(_FIRST_BATCH, self._intake.fetch_batch_messages)
        limit_bytes = self._intake.fetch_batch_bytes
        for start in range(0, len(uids), 5000):
            chunk = uids[start : start + 5000]
            sizes = client.fetch(chunk, [_FETCH_SIZE])
            batch: list[tuple[int, int]] = []
            batch_bytes = 0
            for uid in chunk:
                if uid not in sizes:
                    continue  # expunged meanwhile by someone else
                size = int(sizes[uid].get(_FETCH_SIZE, 0))
                if batch and (len(batch) >= limit_count or batch_bytes + size > limit_bytes):
                    yield batch
                    batch, batch_bytes = [], 0
                    limit_count = min(limit_count * 2, self._intake.fetch_batch_messages)
                batch.append((uid, size))
                batch_bytes += size
            if batch:
                yield batch

    def _process_batch(
        self, client: IMAPClient, uidvalidity: int, batch: list[tuple[int, int]]
    ) -> list[IngestResult]:
        limit = self._intake.max_message_bytes
        wanted = [uid for uid, size in batch if size <= limit]
        fetched = client.fetch(wanted, ["BODY.PEEK[]"]) if wanted else {}
        results: list[IngestResult] = []
        items: list[tuple[bytes, MailSource | None]] = []
        for uid, size in batch:
            source = MailSource(self.mailbox.name, uidvalidity, uid)
            if size > limit:
                header = client.fetch([uid], ["BODY.PEEK[HEADER]"]).get(uid, {})
                header_bytes = header.get(b"BODY[HEADER]", b"")
                results.append(self._service.reject_oversized(header_bytes, size, source))
                continue
            raw = fetched.get(uid, {}).get(_FETCH_BODY)
            if raw is None:
                raise TransientError(f"server returned no body for UID {uid}")
            items.append((raw, source))
        results.extend(self._service.ingest_batch(items))
        if self._on_batch is not None:
            self._on_batch(results)
        return results

    def _acknowledge(self, client: IMAPClient, uids: list[int]) -> int:
        """Move or flag stored mail; only ever called after the commit."""
        if not uids:
            return 0
        target = self.mailbox.move_target
        if target is None:
            client.add_flags(uids, [self.mailbox.processed_flag], silent=True)
        elif client.has_capability("MOVE"):
            client.move(uids, target)
        else:
            client.copy(uids, target)
            client.add_flags(uids, ["\\Deleted"], silent=True)
            if client.has_capability("UIDPLUS"):
                client.uid_expunge(uids)
            else:
                client.expunge()
        return len(uids)

    def _note_failure(self, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, ComplaintdError) else f"{type(exc).__name__}: {exc}"
        logger.warning("mailbox %s: %s", self.mailbox.name, message)
        try:
            self._store.record_error(self.mailbox.name, message)
        except Exception:  # the database may be what failed; the log line above stands
            logger.debug("could not record the mailbox error", exc_info=True)


def _is_bye(response: tuple[object, ...]) -> bool:
    return len(response) >= 1 and response[0] == b"BYE"


def _is_exists(response: tuple[object, ...]) -> bool:
    return len(response) >= 2 and response[1] in (b"EXISTS", b"RECENT")


def _logout_quietly(client: IMAPClient) -> None:
    try:
        client.logout()
    except IMAP_ERRORS:
        try:
            client.shutdown()
        except IMAP_ERRORS:
            logger.debug("ignoring an error while closing the connection")


def _already_read(client: IMAPClient) -> bool:
    """True when a server response already sits in imaplib's read buffer.

    Dovecot may send "+ idling" and a new mail's "* n EXISTS" in one packet;
    ``idle()`` reads the first line and leaves the second buffered, where
    select() on the socket cannot see it, so the news would wait for the next
    resync. imapclient offers no public way to ask, hence ``_imap.file``
    (imaplib's buffered reader), peeked without blocking.
    """
    reader = getattr(getattr(client, "_imap", None), "file", None)
    peek = getattr(reader, "peek", None)
    if peek is None:
        return False
    sock = client.socket()
    timeout = sock.gettimeout()
    sock.settimeout(0)
    try:
        return bool(peek(1))
    except (OSError, ValueError):  # nothing to read now (EAGAIN, SSL want-read)
        return False
    finally:
        sock.settimeout(timeout)
