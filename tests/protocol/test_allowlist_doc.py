"""The signed example of docs/protocol.md is real: it verifies with the documented example key."""

import re
from pathlib import Path

import msgspec
import pytest

from protocol.allowlist import Allowlist, BadAllowlist, SignedAllowlist, public_key_from_text, verify
from protocol.messages import decode
from tests.protocol.samples import COMPLETE, EXAMPLE_PUBLIC_KEY

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def example(model: str) -> str:
    found = re.search(rf"<!-- model: {model} -->\n```json\n(.*?)\n```", DOC, flags=re.DOTALL)
    assert found, model
    return found.group(1)


def test_the_documented_signed_example_verifies_with_the_documented_example_key() -> None:
    assert f"`{EXAMPLE_PUBLIC_KEY}`" in DOC
    assert "`00 01 02 … 1f`" in DOC
    keys = {"site-1": public_key_from_text(EXAMPLE_PUBLIC_KEY)}
    signed = decode(SignedAllowlist, example("SignedAllowlist").encode())
    allowlist = verify(signed, keys)
    # The snapshot inside is the Allowlist example, byte for byte.
    assert signed.snapshot == example("Allowlist")
    assert allowlist == decode(Allowlist, example("Allowlist").encode())
    with pytest.raises(BadAllowlist, match="bad signature"):
        verify(
            msgspec.structs.replace(signed, snapshot=signed.snapshot.replace('"version":42', '"version":43')),
            keys,
        )


def test_the_complete_sample_is_signed_by_the_example_key() -> None:
    sample = COMPLETE[SignedAllowlist]
    assert isinstance(sample, SignedAllowlist)
    assert verify(sample, {"site-1": public_key_from_text(EXAMPLE_PUBLIC_KEY)}) == COMPLETE[Allowlist]
