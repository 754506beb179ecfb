"""Deciding at the machine without the server: the signed allowlist, and each machine's policy.

When the server does not answer an access request within the request timeout, or
while it is known to be out of reach, the gateway decides alone from the newest
allowlist snapshot it holds (:mod:`protocol.allowlist`), as the machine's
``offline_policy`` allows: everyone the snapshot admits (``cache``), only its
managers (``managers``), or nobody (``deny``). The answer takes the form of the
server's own :class:`~protocol.messages.AccessReply`, so the interlock treats both
alike; the session then records ``decided_by = "cache"``.

:class:`AllowlistKeeper` holds the snapshot: it trusts only one signed by a key
of the gateway's configuration, newer than the one it has, meant for this
gateway, and not expired; and it keeps it in the state directory, so that a
restarted gateway decides (and keeps lockouts) without waiting for the server.
"""

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from controller.config import OfflinePolicy
from protocol.allowlist import (
    Allowlist,
    AllowlistEntry,
    AllowlistGrant,
    BadAllowlist,
    VerifyKey,
    accept,
    public_key_from_text,
    receive,
)
from protocol.errors import ProtocolError
from protocol.messages import AccessReply, AccessRequest, CertificationLevel, Reason

log = logging.getLogger(__name__)


def _refuse(
    request: AccessRequest, reason: Reason, message: str, entry: AllowlistEntry | None = None
) -> AccessReply:
    return AccessReply(
        request_id=request.request_id,
        machine=request.machine,
        badge=request.badge,
        granted=False,
        reason=reason,
        message=message[:200],
        member_id=None if entry is None else entry.member_id,
        member_name=None if entry is None else entry.member_name or None,
    )


_index: tuple[Allowlist, dict[str, AllowlistEntry]] | None = None


def _badges(allowlist: Allowlist) -> dict[str, AllowlistEntry]:
    """The snapshot's entries by badge, built once per snapshot (which changes rarely).

    ``Allowlist.entry`` reads the entries in turn: up to about 20,000 of them, 1.4 ms for the
    last one on a 2-core EPYC (docs/benchmarks.md), over the 1 ms a decision may take. The
    first entry of a badge wins, as there.
    """
    global _index  # noqa: PLW0603 - one snapshot in use at a time; building it twice is harmless
    known = _index
    if known is None or known[0] is not allowlist:
        known = _index = (allowlist, {e.badge.upper(): e for e in reversed(allowlist.entries)})
    return known[1]


def _entry(allowlist: Allowlist, badge: str) -> AllowlistEntry | None:
    return _badges(allowlist).get(badge.upper())


def _grant_of(entry: AllowlistEntry, machine: str) -> AllowlistGrant | None:
    for grant in entry.grants:
        if grant.machine == machine:
            return grant
    return None


def _live(grant: AllowlistGrant | None, now_ms: int) -> bool:
    return grant is not None and (grant.until_ms is None or grant.until_ms > now_ms)


def _trains(grant: AllowlistGrant | None, now_ms: int) -> bool:
    return grant is not None and _live(grant, now_ms) and grant.level is CertificationLevel.TRAINER


def decide(
    allowlist: Allowlist | None, policy: OfflinePolicy, request: AccessRequest, now_ms: int
) -> AccessReply:
    """The gateway's own answer to ``request``, from ``allowlist`` under ``policy``."""
    refused = _machine_refusal(allowlist, policy, request, now_ms)
    if refused is not None or allowlist is None:
        return refused or _refuse(request, Reason.SERVER_UNREACHABLE, "No allowlist.")
    entry = _entry(allowlist, request.badge)
    if entry is None:
        return _refuse(request, Reason.UNKNOWN_BADGE, "Badge not in the offline allowlist.")
    grant = _grant_of(entry, request.machine)
    if policy is OfflinePolicy.MANAGERS:
        if not entry.manager:
            return _refuse(request, Reason.SERVER_UNREACHABLE, "Server unreachable: managers only.", entry)
        if entry.max_minutes == 0:
            return _refuse(request, Reason.INSUFFICIENT_BALANCE, "Balance too low: top up first.", entry)
        return _granted(request, entry, grant, now_ms, supervisor_id=None)
    refused, supervisor_id = _member_refusal(allowlist, entry, grant, request, now_ms)
    return refused or _granted(request, entry, grant, now_ms, supervisor_id=supervisor_id)


def _member_refusal(
    allowlist: Allowlist,
    entry: AllowlistEntry,
    grant: AllowlistGrant | None,
    request: AccessRequest,
    now_ms: int,
) -> tuple[AccessReply | None, int | None]:
    """Why the holder of ``entry`` may not use the machine (or None), and their supervisor's id."""
    if grant is None:
        return _refuse(request, Reason.NOT_CERTIFIED, "Not certified for this machine.", entry), None
    if not _live(grant, now_ms):
        return _refuse(request, Reason.CERTIFICATION_EXPIRED, "Certification expired.", entry), None
    supervisor_id = None
    if grant.level is CertificationLevel.SUPERVISED:
        trainer = None if request.supervisor_badge is None else _entry(allowlist, request.supervisor_badge)
        if trainer is None or not _trains(_grant_of(trainer, request.machine), now_ms):
            return _refuse(
                request, Reason.SUPERVISION_REQUIRED, "A trainer must badge in first.", entry
            ), None
        supervisor_id = trainer.member_id
    if entry.max_minutes == 0:
        return _refuse(request, Reason.INSUFFICIENT_BALANCE, "Balance too low: top up first.", entry), None
    return None, supervisor_id


def _machine_refusal(
    allowlist: Allowlist | None, policy: OfflinePolicy, request: AccessRequest, now_ms: int
) -> AccessReply | None:
    """A refusal for everyone at this machine now, whoever taps, or None."""
    if policy is OfflinePolicy.DENY:
        return _refuse(request, Reason.SERVER_UNREACHABLE, "Server unreachable: this machine needs it.")
    if allowlist is None or allowlist.expires_at_ms <= now_ms:
        return _refuse(request, Reason.SERVER_UNREACHABLE, "Server unreachable, and no valid allowlist.")
    machine = allowlist.machine(request.machine)
    if machine is None:
        return _refuse(request, Reason.UNKNOWN_MACHINE, "This machine is not in the allowlist.")
    if machine.locked_out:
        why = f": {machine.lockout_reason}" if machine.lockout_reason else "."
        return _refuse(request, Reason.MACHINE_LOCKED_OUT, f"This machine is locked out{why}")
    return None


def _granted(
    request: AccessRequest,
    entry: AllowlistEntry,
    grant: AllowlistGrant | None,
    now_ms: int,
    *,
    supervisor_id: int | None,
) -> AccessReply:
    return AccessReply(
        request_id=request.request_id,
        machine=request.machine,
        badge=request.badge,
        granted=True,
        reason=Reason.GRANTED,
        message="Granted offline, from the allowlist.",
        member_id=entry.member_id,
        member_name=entry.member_name or None,
        trainer=_trains(grant, now_ms),
        supervisor_id=supervisor_id,
        max_minutes=entry.max_minutes,
    )


class AllowlistKeeper:
    """The newest trusted snapshot, kept in ``state_dir`` across restarts. Not thread-safe:
    the gateway's worker alone offers and reads."""

    FILE_NAME = "allowlist.json"

    def __init__(self, keys: Mapping[str, str], state_dir: str | Path, *, site: str, gateway: str) -> None:
        self._keys: dict[str, VerifyKey] = {
            key_id: public_key_from_text(text) for key_id, text in keys.items()
        }
        self.path = Path(state_dir) / self.FILE_NAME
        self.site = site
        self.gateway = gateway
        self.current: Allowlist | None = None

    @property
    def enabled(self) -> bool:
        """False without keys: nothing can be trusted, so nothing is decided offline."""
        return bool(self._keys)

    def load(self, now_ms: int) -> Allowlist | None:
        """The snapshot saved by an earlier run, if it is still trustworthy."""
        if not self.enabled or not self.path.exists():
            return None
        try:
            self.offer(self.path.read_bytes(), now_ms, save=False)
        except (OSError, ProtocolError, ValueError) as error:
            log.warning("ignored the saved allowlist %s: %s", self.path, error)
        return self.current

    def offer(self, payload: bytes | bytearray, now_ms: int, *, save: bool = True) -> Allowlist:
        """Verify and keep ``payload`` (a signed snapshot); :class:`BadAllowlist` if refused."""
        if not self.enabled:
            raise BadAllowlist("this gateway has no allowlist key configured")
        snapshot = accept(
            receive(payload, self._keys), self.current, site=self.site, gateway=self.gateway, now_ms=now_ms
        )
        if save:
            self._save(bytes(payload))
        self.current = snapshot
        _badges(snapshot)  # indexed now, not at the first tap decided offline
        return snapshot

    def _save(self, payload: bytes) -> None:
        # Written aside and renamed: a crash leaves the old file or the new one, never half of one.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        part = self.path.with_suffix(".part")
        with open(part, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())  # rare (a change of rights), unlike usage events: worth a sync
        os.replace(part, self.path)


class ServerWatch:
    """Whether the server answers. A request unanswered past its deadline makes the gateway
    stop asking (taps are then decided offline at once); anything heard from the server
    (a reply, an acknowledgement) makes it ask again."""

    def __init__(self) -> None:
        self._waiting: dict[str, float] = {}
        self.answering = True

    def asked(self, request_id: str, deadline: float) -> None:
        self._waiting[request_id] = deadline

    def heard(self, request_id: str | None = None) -> None:
        if request_id is not None:
            self._waiting.pop(request_id, None)
        if not self.answering:
            log.info("the server answers again: asking it first")
        self.answering = True

    def check(self, now: float) -> None:
        """Call regularly with the monotonic time."""
        late = [request_id for request_id, deadline in self._waiting.items() if deadline <= now]
        for request_id in late:
            del self._waiting[request_id]
        if late and self.answering:
            log.warning("the server did not answer in time: deciding from the allowlist until it does")
            self.answering = False
