"""Checking the configuration: the table types, and every problem of a file named by its place.

The configuration is msgspec structs, converted from the TOML with ``msgspec.convert``,
which stops at the first problem. An operator fixing a file wants them all at once: when
the conversion fails, :func:`problems` walks the data alongside the types, table by table
and key by key, and converts each value on its own.

What msgspec's constraints cannot say (a broker URL that parses, a public key) is a
:class:`Check` in the field's annotation, run by :meth:`Section.__post_init__` on every
conversion and by :func:`problems` on each key.
"""

import enum
import functools
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import msgspec

S = TypeVar("S", bound=msgspec.Struct)

Where = tuple[str | int, ...]
"""Keys and list indexes from the file's top, as the file names them: ``("machine", 1, "switch", "pin")``."""


class Check:
    """A check of one value, in a field's annotation: ``Annotated[str, Check(usable_url)]``.

    The function raises ValueError saying what is wrong; msgspec has already checked the
    value's type and its ``Meta`` constraints.
    """

    __slots__ = ("function",)

    def __init__(self, function: Callable[[Any], object]) -> None:
        self.function = function

    def __repr__(self) -> str:
        return f"Check({self.function.__qualname__})"


def _parts(kind: Any) -> tuple[Any, list[Any]]:
    """``kind`` without its ``Annotated`` wrapping, and the metadata it had."""
    if get_origin(kind) is Annotated:
        base, *metadata = get_args(kind)
        inner, more = _parts(base)
        return inner, [*more, *metadata]
    return kind, []


def _members(kind: Any) -> tuple[Any, ...]:
    """The members of a union (``A | B | None``), or ``(kind,)``."""
    if get_origin(kind) in (Union, types.UnionType):
        return get_args(kind)
    return (kind,)


def _checks_of(kind: Any) -> list[Check]:
    found = [m for m in _parts(kind)[1] if isinstance(m, Check)]
    for member in _members(_parts(kind)[0]):
        if member is not kind:
            found += [m for m in _parts(member)[1] if isinstance(m, Check)]
    return found


@functools.cache
def _field_checks(struct: type[msgspec.Struct]) -> tuple[tuple[str, tuple[Check, ...]], ...]:
    return tuple(
        (field.name, tuple(checks))
        for field in msgspec.structs.fields(struct)
        if (checks := _checks_of(field.type))
    )


def _run(checks: tuple[Check, ...] | list[Check], value: object) -> Iterator[str]:
    if value is None:
        return
    for check in checks:
        try:
            check.function(value)
        except ValueError as error:
            yield str(error)


class Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A table of the file: unknown keys are errors (a misspelt key would silently keep a default)."""

    def __post_init__(self) -> None:
        for name, checks in _field_checks(type(self)):
            for problem in _run(checks, getattr(self, name)):
                raise ValueError(f"{name}: {problem}")


class Part(Section, frozen=True, kw_only=True, tag_field="type"):
    """A part of a machine, chosen by the ``type`` key of its table (a tagged union)."""

    @property
    def type(self) -> str:
        return str(self.__struct_config__.tag)


def dec_hook(kind: type, value: Any) -> Any:
    """The types msgspec does not convert by itself: a path, from a string."""
    if kind is Path and isinstance(value, str | Path):
        return Path(value)
    raise TypeError(f"Expected `{getattr(kind, '__name__', kind)}`, got `{type(value).__name__}`")


def enc_hook(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise NotImplementedError(f"cannot write a {type(value).__name__} in a configuration")


def convert(data: object, kind: type[S]) -> S:
    """``data`` as ``kind``, or msgspec's ValidationError (its first problem: see :func:`problems`)."""
    return msgspec.convert(data, kind, dec_hook=dec_hook)


def problems(data: object, kind: Any, where: Where = ()) -> list[tuple[Where, str]]:
    """Every problem of ``data`` read as ``kind``, each with where it is; empty if there is none."""
    try:
        value = msgspec.convert(data, kind, dec_hook=dec_hook)
    except msgspec.ValidationError as error:
        return _inside(data, kind, where) or [_located(error, kind, where)]
    return [(where, problem) for problem in _run(_checks_of(kind), value)]


def _located(error: msgspec.ValidationError, kind: Any, where: Where) -> tuple[Where, str]:
    """msgspec's ``Expected `int` >= 1 - at `$[3]``` as ``(where + (3,), "Expected `int` >= 1")``."""
    text, at, path = str(error).rpartition(" - at `")
    if not at:
        text, path = str(error), "$"
    here = list(where)
    for step in path.rstrip("`").removeprefix("$").replace("[", ".").replace("]", "").split("."):
        if step:
            here.append(int(step) if step.isdigit() else step)
    missing = text.removeprefix("Object missing required field `")
    if missing != text:
        return (*here, missing.rstrip("`")), "Field required"
    unknown = text.removeprefix("Object contains unknown field `")
    if unknown != text:
        return (*here, unknown.rstrip("`")), "unknown key"
    base = _parts(kind)[0]
    if text.startswith("Invalid enum value") and isinstance(base, type) and issubclass(base, enum.Enum):
        text += f": expected {_either([str(member.value) for member in base])}"
    return tuple(here), text


def _either(values: list[str]) -> str:
    quoted = [repr(value) for value in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _inside(data: object, kind: Any, where: Where) -> list[tuple[Where, str]]:
    """The problems found inside a table or a list of tables; empty where ``kind`` is a leaf."""
    base, metadata = _parts(kind)
    structs = [m for m in _members(base) if isinstance(m, type) and issubclass(m, msgspec.Struct)]
    if isinstance(data, dict) and structs:
        return _tagged(data, structs, where)
    if isinstance(data, list) and get_origin(base) is list:
        (item,) = get_args(base)
        found = _length(data, list[Any], metadata, where)
        for index, entry in enumerate(data):
            found += problems(entry, item, (*where, index))
        return found
    if isinstance(data, dict) and get_origin(base) is dict:
        key_kind, value_kind = get_args(base)
        found = _length(data, dict[Any, Any], metadata, where)
        for key, value in data.items():
            found += [(at, f"key {key!r}: {problem}") for at, problem in problems(key, key_kind, where)]
            found += problems(value, value_kind, (*where, key))
        return found
    return []


def _length(data: object, kind: Any, metadata: list[Any], where: Where) -> list[tuple[Where, str]]:
    """The problem of a list or table with too few or too many items, if it has one."""
    meta = [m for m in metadata if isinstance(m, msgspec.Meta)]
    try:
        msgspec.convert(data, Annotated[(kind, *meta)] if meta else kind)
    except msgspec.ValidationError as error:
        return [_located(error, kind, where)]
    return []


def _tagged(
    data: dict[Any, Any], structs: list[type[msgspec.Struct]], where: Where
) -> list[tuple[Where, str]]:
    """The problems of a table that is one of ``structs``, chosen by its tag (``type = "gpio"``)."""
    if len(structs) == 1 and structs[0].__struct_config__.tag is None:
        return _table(data, structs[0], where)
    tag_field = structs[0].__struct_config__.tag_field or "type"
    if tag_field not in data:
        return [((*where, tag_field), "Field required")]
    chosen = [s for s in structs if s.__struct_config__.tag == data[tag_field]]
    if not chosen:
        known = _either([str(s.__struct_config__.tag) for s in structs])
        return [((*where, tag_field), f"unknown type {data[tag_field]!r}: expected {known}")]
    return _table(data, chosen[0], where)


def _table(data: dict[Any, Any], struct: type[msgspec.Struct], where: Where) -> list[tuple[Where, str]]:
    fields = {field.encode_name: field for field in msgspec.structs.fields(struct)}
    tag_field = struct.__struct_config__.tag_field
    found = [((*where, key), "unknown key") for key in data if key not in fields and key != tag_field]
    for name, field in fields.items():
        if name in data:
            found += problems(data[name], field.type, (*where, name))
        elif field.required:
            found.append(((*where, name), "Field required"))
    return found
