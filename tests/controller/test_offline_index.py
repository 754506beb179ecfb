"""Offline decisions look badges up in an index of the snapshot, with the snapshot's own answers."""

from __future__ import annotations

from controller.config import OfflinePolicy
from controller.offline import decide
from protocol.allowlist import Allowlist, AllowlistEntry, AllowlistGrant, AllowlistMachine
from protocol.messages import AccessRequest, CertificationLevel, Reason

NOW = 1_750_000_000_000


def grant(level: CertificationLevel = CertificationLevel.AUTONOMOUS) -> list[AllowlistGrant]:
    return [AllowlistGrant(machine="sew-1", level=level)]


def snapshot(entries: list[AllowlistEntry], version: int = 1) -> Allowlist:
    return Allowlist(
        site="lyon",
        gateway="gw-1",
        version=version,
        issued_at_ms=NOW,
        expires_at_ms=NOW + 86_400_000,
        machines=[AllowlistMachine(machine="sew-1")],
        entries=entries,
    )


def ask(allowlist: Allowlist, badge: str, supervisor: str | None = None) -> tuple[Reason, int | None]:
    request = AccessRequest(
        request_id="r-1",
        machine="sew-1",
        badge=badge,
        sent_at_ms=NOW,
        expires_at_ms=NOW + 500,
        supervisor_badge=supervisor,
    )
    reply = decide(allowlist, OfflinePolicy.CACHE, request, NOW)
    return reply.reason, reply.member_id


def test_every_badge_of_a_large_snapshot_is_found_as_the_snapshot_finds_it() -> None:
    entries = [AllowlistEntry(badge=f"{n:08X}", member_id=n + 1, grants=grant()) for n in range(5000)]
    allowlist = snapshot(entries)
    for n in (0, 1, 2499, 4999):
        assert ask(allowlist, f"{n:08X}") == (Reason.GRANTED, n + 1)
        assert allowlist.entry(f"{n:08X}") is not None
    assert ask(allowlist, "0badbad0") == (Reason.UNKNOWN_BADGE, None)
    assert ask(allowlist, "00000abc") == (Reason.GRANTED, 0xABC + 1)  # any case, as Allowlist.entry


def test_the_first_entry_of_a_badge_listed_twice_wins_as_in_the_snapshot() -> None:
    allowlist = snapshot(
        [
            AllowlistEntry(badge="0A0A0A0A", member_id=1, grants=grant()),
            AllowlistEntry(badge="0A0A0A0A", member_id=2, grants=[]),
        ]
    )
    found = allowlist.entry("0A0A0A0A")
    assert found is not None
    assert (found.member_id, ask(allowlist, "0A0A0A0A")) == (1, (Reason.GRANTED, 1))


def test_a_new_snapshot_is_read_and_not_the_index_of_the_old_one() -> None:
    old = snapshot([AllowlistEntry(badge="0A0A0A0A", member_id=1, grants=grant())])
    assert ask(old, "0A0A0A0A") == (Reason.GRANTED, 1)
    new = snapshot([AllowlistEntry(badge="0B0B0B0B", member_id=2, grants=grant())], version=2)
    assert ask(new, "0A0A0A0A") == (Reason.UNKNOWN_BADGE, None)
    assert ask(new, "0B0B0B0B") == (Reason.GRANTED, 2)
    assert ask(old, "0B0B0B0B") == (Reason.UNKNOWN_BADGE, None)


def test_the_supervisor_is_looked_up_in_the_index_too() -> None:
    allowlist = snapshot(
        [AllowlistEntry(badge=f"{n:08X}", member_id=n + 1, grants=grant()) for n in range(100)]
        + [
            AllowlistEntry(badge="7E550001", member_id=900, grants=grant(CertificationLevel.TRAINER)),
            AllowlistEntry(badge="5E550001", member_id=901, grants=grant(CertificationLevel.SUPERVISED)),
        ]
    )
    assert ask(allowlist, "5E550001")[0] is Reason.SUPERVISION_REQUIRED
    assert ask(allowlist, "5E550001", supervisor="00000001")[0] is Reason.SUPERVISION_REQUIRED
    assert ask(allowlist, "5E550001", supervisor="7e550001") == (Reason.GRANTED, 901)
