"""The gateway's configuration: one TOML file, parsed into typed structs (msgspec).

A bad file is refused as a whole at start-up with every problem named by
where it is in the file, rather than half-running a workshop
(:mod:`controller.config_check`). Unknown keys are errors too: a misspelt
``idle_timout_s`` would otherwise silently keep the default.
"""

import os
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from controller.config_check import Check, Section, Where, convert, enc_hook, problems

# The part structs live in controller.part_config; they are re-exported here, where the
# configuration is.
from controller.part_config import (
    BridgeButtonConfig,
    BridgeCurrentConfig,
    BridgeIndicatorConfig,
    BridgePart,
    BridgeReaderConfig,
    BridgeSwitchConfig,
    BrokerUrlText,
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


def _usable_keys(value: dict[str, str]) -> None:
    for key_id, text in value.items():
        try:
            public_key_from_text(text)
        except ProtocolError as error:
            raise ValueError(f"allowlist key {key_id!r}: {error}") from None


class GatewaySection(Section, frozen=True, kw_only=True):
    id: Ident
    site: Ident
    mqtt_url: BrokerUrlText = "mqtt://127.0.0.1:1883"
    state_dir: Path = Path("/var/lib/atelier-gateway")
    """Where the event journal lives; relative paths are from the working directory."""
    request_timeout_ms: Annotated[int, Meta(ge=10, le=60_000)] = 500
    sample_interval_ms: Annotated[int, Meta(ge=5, le=10_000)] = 100
    telemetry_interval_s: Annotated[float, Meta(gt=0, le=3600)] = 10.0
    pin_factory: Annotated[str, Meta(min_length=1)] = "mock"
    """gpiozero pin factory: "mock" in simulation, "lgpio" or "native" on a Raspberry Pi."""
    allowlist_keys: Annotated[dict[KeyId, str], Meta(max_length=8), Check(_usable_keys)] = {}
    """The site's public keys (``atelier keys public``) by key id: a signed allowlist is
    trusted only if one of these verifies it. Empty: no offline decisions at all."""
    checkpoint_interval_s: Annotated[float, Meta(gt=0, le=3600)] = 5.0
    """How often an open session's totals are saved in the journal, so that a crash of the
    gateway loses at most this much of a session's sensed time."""

    @property
    def broker(self) -> BrokerURL:
        return BrokerURL.parse(self.mqtt_url)


class OfflinePolicy(StrEnum):
    """Who a machine lets in when the server does not answer."""

    CACHE = "cache"  # whoever the signed allowlist lets in
    MANAGERS = "managers"  # only the managers in the signed allowlist
    DENY = "deny"  # nobody


class MachineSection(Section, frozen=True, kw_only=True):
    id: Ident
    name: Annotated[str, Meta(min_length=1, max_length=120)]
    idle_timeout_s: Annotated[float, Meta(gt=0, le=86_400)] = 600.0
    offline_policy: OfflinePolicy = OfflinePolicy.CACHE
    """Who may use the machine when the server does not answer within request_timeout_ms."""
    hard_limit_s: Annotated[float, Meta(gt=0, le=86_400)] | None = None
    """A lock, a timeout or a lockout waits for the machine to be idle, but never longer
    than this: for a machine where running on unattended is the greater danger. Absent:
    it waits as long as the machine draws current."""
    supervision_window_s: Annotated[float, Meta(ge=0, le=86_400)] = 300.0
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


class GatewayConfig(Section, frozen=True, kw_only=True):
    gateway: GatewaySection
    # At most what a GatewayStatus can list (protocol.messages.GatewayStatus.machines).
    machines: Annotated[list[MachineSection], Meta(min_length=1, max_length=32)] = msgspec.field(
        name="machine"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
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
        data = msgspec.to_builtins(self, enc_hook=enc_hook)
        data["gateway"].update(changes)
        return _converted(data, "<replace_gateway>")


def _where(loc: Where, data: Mapping[str, Any]) -> str:
    parts = list(loc)
    if len(parts) >= 2 and parts[0] == "machine" and isinstance(parts[1], int):
        index = parts[1]
        entries = data.get("machine", [])
        entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
        name = f" ({entry['id']!r})" if isinstance(entry, Mapping) and "id" in entry else ""
        rest = ".".join(str(p) for p in parts[2:])
        return f"[[machine]] #{index + 1}{name}" + (f": {rest}" if rest else "")
    return ".".join(str(p) for p in parts) or "(file)"


def _converted(data: Mapping[str, Any], source: str) -> GatewayConfig:
    try:
        return convert(data, GatewayConfig)
    except msgspec.ValidationError as error:
        found = problems(data, GatewayConfig) or [((), str(error))]
    lines = [f"{source}: invalid gateway configuration"]
    lines += [f"  {_where(where, data)}: {problem}" for where, problem in found]
    raise BadConfig("\n".join(lines)) from None


def parse_config(
    data: Mapping[str, Any], *, source: str = "<config>", environ: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Validate already-parsed TOML (or a dict built in code) into a :class:`GatewayConfig`."""
    environ = os.environ if environ is None else environ
    data = dict(data)
    override = environ.get(MQTT_URL_ENV)
    if override and isinstance(data.get("gateway"), Mapping):
        data["gateway"] = {**data["gateway"], "mqtt_url": override}
    return _converted(data, source)


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
