"""docs/protocol.md says what protocol/ does: topics, fields, codes and examples agree."""

import re
import typing
from pathlib import Path

import msgspec
import pytest

from protocol.allowlist import KEY_ID_PATTERN, KeyId
from protocol.ids import ID_PATTERN, Ident, whole_text
from protocol.messages import (
    BADGE_PATTERN,
    MAX_PAYLOAD_BYTES,
    TOKEN_PATTERN,
    BadgeUid,
    Message,
    Reason,
    Token,
    decode,
    encode,
)
from protocol.topics import QOS, RETAINED, Channel
from tests.protocol.samples import GATEWAY_TO_SERVER, MODELS, SERVER_TO_GATEWAY

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
ROW = re.compile(r"^\|(.+)\|$")


def _rows_after(marker: str) -> list[list[str]]:
    """The body rows of the first table after ``marker``, as lists of cells."""
    lines = DOC[DOC.index(marker) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        match = ROW.match(line)
        if not match:
            break
        rows.append([cell.strip() for cell in match.group(1).split("|")])
    return rows


def _section(model: type[Message]) -> str:
    match = re.search(rf"^### {model.__name__}\n(.*?)(?=^#)", DOC, flags=re.MULTILINE | re.DOTALL)
    assert match, f"no '### {model.__name__}' section in docs/protocol.md"
    return match.group(1)


def _examples() -> list[tuple[str, str]]:
    return re.findall(r"<!-- model: (\w+) -->\n```json\n(.*?)\n```", DOC, flags=re.DOTALL)


def test_the_topic_table_has_every_channel_with_its_qos_retain_direction_and_payload() -> None:
    rows = {row[0]: row for row in _rows_after("<!-- topic-table -->")}
    assert set(rows) == {c.name for c in Channel}
    for channel in Channel:
        _, suffix, direction, qos, retain, payload = rows[channel.name]
        expected_suffix = "machine/<machine>" if channel is Channel.MACHINE_STATE else channel.value
        assert suffix == f"`{expected_suffix}`"
        assert int(qos) == QOS[channel], channel
        assert retain == ("yes" if channel in RETAINED else "no"), channel
        if channel in GATEWAY_TO_SERVER:
            assert direction == "gateway → server", channel
            model = GATEWAY_TO_SERVER[channel]
        else:
            assert direction == "server → gateway", channel
            model = SERVER_TO_GATEWAY[channel]
        assert payload.startswith(f"[{model.__name__}]"), channel


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_of_every_message_is_documented_with_its_requiredness(model: type[Message]) -> None:
    rows = _rows_after(f"### {model.__name__}\n")
    documented = {row[0].strip("`"): row for row in rows}
    fields = msgspec.structs.fields(model)
    assert list(documented) == [field.name for field in fields], "fields, in the order of the code"
    for field in fields:
        required = documented[field.name][2]
        assert (required == "yes") is field.required, field.name
        if not field.required:
            assert required.startswith("no"), field.name


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_enumeration_value_of_a_message_is_documented_in_its_section(model: type[Message]) -> None:
    section = _section(model)
    for field in msgspec.structs.fields(model):
        name = field.name
        for kind in typing.get_args(field.type) or (field.type,):
            if isinstance(kind, type) and issubclass(kind, Reason):
                continue  # section 7 lists the reason codes
            if isinstance(kind, type) and hasattr(kind, "__members__"):
                for value in kind.__members__.values():
                    assert f"`{value.value}`" in section, (name, value)


def test_the_reason_table_lists_every_code_in_order() -> None:
    rows = _rows_after("<!-- reason-table -->")
    assert [row[0].strip("`") for row in rows] == [r.value for r in Reason]
    for row in rows:
        assert row[1] == ("yes" if row[0] == "`granted`" else "no"), row[0]
        assert row[4], f"no display text for {row[0]}"


def test_every_message_has_an_example_and_every_example_is_exactly_what_the_encoder_writes() -> None:
    examples = _examples()
    assert {name for name, _ in examples} == {m.__name__ for m in MODELS}
    models = {m.__name__: m for m in MODELS}
    for name, text in examples:
        message = decode(models[name], text.encode())
        assert encode(message).decode() == text, name


def test_the_patterns_and_limits_in_the_document_are_those_of_the_code() -> None:
    def pattern(annotated: object) -> str:
        constraint = typing.get_args(annotated)[1]
        return str(constraint.pattern)

    # The document writes ^...$; the code checks up to the very end of the text (\Z).
    for documented, checked in (
        (ID_PATTERN, Ident),
        (TOKEN_PATTERN, Token),
        (BADGE_PATTERN, BadgeUid),
        (KEY_ID_PATTERN, KeyId),
    ):
        assert f"`{documented}`" in DOC
        assert pattern(checked) == whole_text(documented)
    assert f"**{MAX_PAYLOAD_BYTES} bytes**" in DOC
    assert "**500 ms by default**" in DOC
