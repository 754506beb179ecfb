"""The gateway's configuration: one TOML file, parsed into typed models.

A bad file is refused as a whole at start-up with every problem named by
where it is in the file, rather than half-running a workshop. Unknown keys
are errors too: a misspelt ``idle_timout_s`` would otherwise silently keep
the default.
"""

import os
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

# The part models live in controller.part_config; they are re-exported here, where the
# configuration is.
from controller.part_config import (
    BridgeButtonConfig,
    BridgeCurrentConfig,
    BridgeIndicatorConfig,
    BridgePart,
    BridgeReaderConfig,
    BridgeSwitchConfig,
    ButtonConfig,
    CurrentConfig,
    CurrentSection,
    GpioButtonConfig,
    GpioIndicatorConfig,
    GpioSwitchConfig,
    IndicatorConfig,
    Mcp3008CurrentConfig,
    Pin,
    Pn532ReaderConfig,
    Rdm6300ReaderConfig,
    ReaderConfig,
    Section,
    ShellyCurrentConfig,
    ShellySwitchConfig,
    SimulatedButtonConfig,
    SimulatedCurrentConfig,
    SimulatedReaderConfig,
    SwitchConfig,
)
from protocol.allowlist import KeyId, public_key_from_text
from protocol.errors import ProtocolError
from protocol.ids import Ident
from protocol.messages import CertificationLevel
from protocol.mqtt import BrokerURL

__all__ = [
    "EXAMPLE_CONFIG",
    "MQTT_URL_ENV",
    "BadConfig",
    "BridgeButtonConfig",
    "BridgeCurrentConfig",
    "BridgeIndicatorConfig",
    "BridgePart",
    "BridgeReaderConfig",
    "BridgeSwitchConfig",
    "ButtonConfig",
    "CurrentConfig",
    "CurrentSection",
    "GatewayConfig",
    "GatewaySection",
    "GpioButtonConfig",
    "GpioIndicatorConfig",
    "GpioSwitchConfig",
    "IndicatorConfig",
    "MachineSection",
    "Mcp3008CurrentConfig",
    "OfflinePolicy",
    "Pin",
    "Pn532ReaderConfig",
    "Rdm6300ReaderConfig",
    "ReaderConfig",
    "Section",
    "ShellyCurrentConfig",
    "ShellySwitchConfig",
    "SimulatedButtonConfig",
    "SimulatedCurrentConfig",
    "SimulatedReaderConfig",
    "SwitchConfig",
    "load_config",
    "parse_config",
]

MQTT_URL_ENV = "ATELIER_MQTT_URL"
"""Overrides ``[gateway] mqtt_url``, so one file serves on a bench and in the workshop."""

EXAMPLE_CONFIG = Path(__file__).parent / "examples" / "atelier-gateway.toml"


class BadConfig(ValueError):
    """A configuration file that cannot be used; the message says where and why."""


class GatewaySection(Section):
    id: Ident
    site: Ident
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    state_dir: Path = Path("/var/lib/atelier-gateway")
    """Where the event journal lives; relative paths are from the working directory."""
    request_timeout_ms: Annotated[int, Field(ge=10, le=60_000)] = 500
    sample_interval_ms: Annotated[int, Field(ge=5, le=10_000)] = 100
    telemetry_interval_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    pin_factory: Annotated[str, Field(min_length=1)] = "mock"
    """gpiozero pin factory: "mock" in simulation, "lgpio" or "native" on a Raspberry Pi."""
    allowlist_keys: dict[KeyId, str] = Field(default_factory=dict, max_length=8)
    """The site's public keys (``atelier keys public``) by key id: a signed allowlist is
    trusted only if one of these verifies it. Empty: no offline decisions at all."""
    checkpoint_interval_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    """How often an open session's totals are saved in the journal, so that a crash of the
    gateway loses at most this much of a session's sensed time."""

    @field_validator("mqtt_url")
    @classmethod
    def _usable_url(cls, value: str) -> str:
        BrokerURL.parse(value)  # raises BadBrokerURL, a ValueError, with the reason
        return value

    @field_validator("allowlist_keys")
    @classmethod
    def _usable_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key_id, text in value.items():
            try:
                public_key_from_text(text)
            except ProtocolError as error:
                raise ValueError(f"allowlist key {key_id!r}: {error}") from None
        return value

    @property
    def broker(self) -> BrokerURL:
        return BrokerURL.parse(self.mqtt_url)


class OfflinePolicy(StrEnum):
    """Who a machine lets in when the server does not answer."""

    CACHE = "cache"  # whoever the signed allowlist lets in
    MANAGERS = "managers"  # only the managers in the signed allowlist
    DENY = "deny"  # nobody


class MachineSection(Section):
    id: Ident
    name: Annotated[str, Field(min_length=1, max_length=120)]
    idle_timeout_s: Annotated[float, Field(gt=0, le=86_400)] = 600.0
    offline_policy: OfflinePolicy = OfflinePolicy.CACHE
    """Who may use the machine when the server does not answer within request_timeout_ms."""
    hard_limit_s: Annotated[float, Field(gt=0, le=86_400)] | None = None
    """A lock, a timeout or a lockout waits for the machine to be idle, but never longer
    than this: for a machine where running on unattended is the greater danger. Absent:
    it waits as long as the machine draws current."""
    supervision_window_s: Annotated[float, Field(ge=0, le=86_400)] = 300.0
    """After a trainer is granted here, a badge tapped within this many seconds is asked
    about as supervised by them (and may be certified at the machine). 0 turns it off."""
    certify_level: CertificationLevel = CertificationLevel.AUTONOMOUS
    """The level a trainer's certification at this machine grants."""
    reader: ReaderConfig
    current: CurrentConfig
    switch: SwitchConfig
    indicator: IndicatorConfig
    button: ButtonConfig | None = None
    """An optional button that confirms a trainer's certification at the machine."""

    def pins(self) -> list[tuple[str, int | str]]:
        used: list[tuple[str, int | str]] = []
        if isinstance(self.switch, GpioSwitchConfig):
            used.append(("switch.pin", self.switch.pin))
        if isinstance(self.indicator, GpioIndicatorConfig):
            used.append(("indicator.green_pin", self.indicator.green_pin))
            used.append(("indicator.red_pin", self.indicator.red_pin))
            if self.indicator.buzzer_pin is not None:
                used.append(("indicator.buzzer_pin", self.indicator.buzzer_pin))
        if isinstance(self.button, GpioButtonConfig):
            used.append(("button.pin", self.button.pin))
        return used

    def serial_ports(self) -> list[tuple[str, str, BridgePart | None]]:
        """Where the machine uses a serial port: (key, port, the bridge part or None for a reader)."""
        used: list[tuple[str, str, BridgePart | None]] = []
        if isinstance(self.reader, Rdm6300ReaderConfig | Pn532ReaderConfig):
            used.append(("reader.port", self.reader.port, None))
        for name in ("reader", "current", "switch", "indicator", "button"):
            part = getattr(self, name)
            if isinstance(part, BridgePart):
                used.append((f"{name}.port", part.port, part))
        return used


def _pin_key(pin: int | str) -> str:
    # 17, "17", "GPIO17" and "BCM17" are the same pin; BOARD numbers are checked by gpiozero.
    text = str(pin).upper()
    for prefix in ("GPIO", "BCM"):
        text = text.removeprefix(prefix)
    return text


class GatewayConfig(Section):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True)

    gateway: GatewaySection
    # At most what a GatewayStatus can list (protocol.messages.GatewayStatus.machines).
    machines: Annotated[list[MachineSection], Field(alias="machine", min_length=1, max_length=32)]

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        seen_ids: set[str] = set()
        seen_pins: dict[str, str] = {}
        for machine in self.machines:
            if machine.id in seen_ids:
                raise ValueError(f"machine id {machine.id!r} is used twice")
            seen_ids.add(machine.id)
            for where, pin in machine.pins():
                key = _pin_key(pin)
                if key in seen_pins:
                    raise ValueError(f"pin {pin} of {machine.id}.{where} is already {seen_pins[key]}")
                seen_pins[key] = f"{machine.id}.{where}"
        self._ports_shared_only_by_a_bridge()
        self._spi_pins_free(seen_pins)
        return self

    def _spi_pins_free(self, used: dict[str, str]) -> None:
        # An MCP3008 holds SPI0's SCLK, MOSI, MISO and its chip select: no LED or relay there.
        clamps = [m for m in self.machines if isinstance(m.current, Mcp3008CurrentConfig)]
        spi = {"11": "SCLK", "10": "MOSI", "9": "MISO"}
        for machine in clamps:
            assert isinstance(machine.current, Mcp3008CurrentConfig)
            spi["8" if machine.current.spi_device == 0 else "7"] = f"CE{machine.current.spi_device}"
        for key, role in spi.items() if clamps else ():
            if key in used:
                raise ValueError(
                    f"pin {key} of {used[key]} is SPI0's {role}, which the MCP3008 current clamps use"
                )

    def _ports_shared_only_by_a_bridge(self) -> None:
        # A reader owns its port; bridge parts share theirs, each (port, channel, part) once.
        owners: dict[str, tuple[str, BridgePart | None]] = {}
        bridged: set[tuple[str, int, str]] = set()
        for machine in self.machines:
            for where, port, part in machine.serial_ports():
                here = f"{machine.id}.{where}"
                first = owners.setdefault(port, (here, part))
                if first[0] != here and (part is None or first[1] is None):
                    raise ValueError(f"serial port {port!r} of {here} is already {first[0]}")
                if part is None:
                    continue
                if first[1] is not None and first[1].baudrate != part.baudrate:
                    raise ValueError(
                        f"{here}: the bridge on {port!r} runs at {first[1].baudrate} baud ({first[0]})"
                    )
                key = (port, part.channel, where.split(".")[0])
                if key in bridged:
                    raise ValueError(
                        f"{here}: channel {part.channel} of the bridge on {port!r} already has a {key[2]}"
                    )
                bridged.add(key)

    def machine(self, machine_id: str) -> MachineSection:
        for machine in self.machines:
            if machine.id == machine_id:
                return machine
        raise KeyError(machine_id)

    def replace_gateway(self, **changes: Any) -> "GatewayConfig":
        """A copy with ``[gateway]`` settings changed, validated like the file."""
        data = self.model_dump(mode="python")
        data["gateway"].update(changes)
        try:
            return GatewayConfig.model_validate(data)
        except ValidationError as error:
            raise BadConfig(_describe(error, data, "<replace_gateway>")) from None


def _without_tags(parts: list[int | str], entry: object) -> list[str]:
    """The path in the file: pydantic puts the chosen ``type`` of a part in its error
    locations (``reader.rdm6300.port``), which is not a key of the file (``reader.port``)."""
    shown: list[str] = []
    here = entry
    for part in parts:
        if isinstance(here, Mapping) and part not in here and here.get("type") == part:
            continue
        shown.append(str(part))
        here = here.get(part) if isinstance(here, Mapping) else None
    return shown


def _where(loc: tuple[int | str, ...], data: Mapping[str, Any]) -> str:
    parts = list(loc)
    if len(parts) >= 2 and parts[0] in ("machine", "machines") and isinstance(parts[1], int):
        index = parts[1]
        entries = data.get("machine", data.get("machines", []))
        entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
        name = f" ({entry['id']!r})" if isinstance(entry, Mapping) and "id" in entry else ""
        rest = ".".join(_without_tags(parts[2:], entry))
        return f"[[machine]] #{index + 1}{name}" + (f": {rest}" if rest else "")
    return ".".join(str(p) for p in parts) or "(file)"


def _describe(error: ValidationError, data: Mapping[str, Any], source: str) -> str:
    lines = [f"{source}: invalid gateway configuration"]
    for problem in error.errors(include_url=False):
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"  {_where(tuple(problem['loc']), data)}: {message}")
    return "\n".join(lines)


def parse_config(
    data: Mapping[str, Any], *, source: str = "<config>", environ: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Validate already-parsed TOML (or a dict built in code) into a :class:`GatewayConfig`."""
    environ = os.environ if environ is None else environ
    data = dict(data)
    override = environ.get(MQTT_URL_ENV)
    if override and isinstance(data.get("gateway"), Mapping):
        data["gateway"] = {**data["gateway"], "mqtt_url": override}
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as error:
        raise BadConfig(_describe(error, data, source)) from None
    except ProtocolError as error:  # pragma: no cover - validators wrap these as ValidationError
        raise BadConfig(f"{source}: {error}") from None


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read and validate the TOML file at ``path``, or raise :class:`BadConfig`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadConfig(f"{path}: no such configuration file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BadConfig(f"{path}: cannot read the configuration file: {error}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise BadConfig(f"{path}: not valid TOML: {error}") from None
    return parse_config(data, source=str(path), environ=environ)
