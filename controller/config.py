"""The gateway's configuration: one TOML file, parsed into typed models.

A bad file is refused as a whole at start-up with every problem named by
where it is in the file, rather than half-running a workshop. Unknown keys
are errors too: a misspelt ``idle_timout_s`` would otherwise silently keep
the default.
"""

import os
import re
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)

from protocol.allowlist import KeyId, public_key_from_text
from protocol.errors import ProtocolError
from protocol.ids import Ident
from protocol.messages import CertificationLevel
from protocol.mqtt import BrokerURL

MQTT_URL_ENV = "ATELIER_MQTT_URL"
"""Overrides ``[gateway] mqtt_url``, so one file serves on a bench and in the workshop."""

EXAMPLE_CONFIG = Path(__file__).parent / "examples" / "atelier-gateway.toml"

_PIN_NAME = re.compile(r"^(GPIO|BCM|BOARD|J8:)?\d{1,2}$")


def _check_pin(value: object) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 53:
        return value
    if isinstance(value, str) and _PIN_NAME.match(value):
        return value
    raise ValueError(
        f"a pin is a BCM number from 0 to 53 or a name like 'GPIO17' or 'BOARD11', not {value!r}"
    )


Pin = Annotated[int | str, PlainValidator(_check_pin)]
"""A BCM number (17) or a gpiozero pin name ("GPIO17", "BOARD11")."""


class BadConfig(ValueError):
    """A configuration file that cannot be used; the message says where and why."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class SimulatedReaderConfig(Section):
    type: Literal["simulated"]


class SimulatedCurrentConfig(Section):
    """A simulated clamp, and the thresholds that tell running from idle.

    Hysteresis: the machine counts as running once the current has stayed above
    ``running_above_a`` for ``running_after_s``, and as idle again once it has
    stayed below ``idle_below_a`` for ``idle_after_s``.
    """

    type: Literal["simulated"]
    running_above_a: Annotated[float, Field(gt=0, le=1000)] = 0.5
    idle_below_a: Annotated[float, Field(ge=0, le=1000)] = 0.3
    running_after_s: Annotated[float, Field(ge=0, le=600)] = 2.0
    idle_after_s: Annotated[float, Field(ge=0, le=3600)] = 5.0
    noise_a: Annotated[float, Field(ge=0, le=10)] = 0.0
    scale: Annotated[float, Field(gt=0, le=1000)] = 1.0
    """Calibration: every raw reading becomes ``max(0, raw * scale + offset_a)`` amperes,
    before the thresholds above see it."""
    offset_a: Annotated[float, Field(ge=-100, le=100)] = 0.0
    voltage_v: Annotated[float, Field(gt=0, le=1000)] | None = None
    """The machine's supply voltage. When set, sessions meter energy (``energy_wh``) and
    telemetry carries power; absent, neither is reported."""
    power_factor: Annotated[float, Field(gt=0, le=1)] = 1.0

    @model_validator(mode="after")
    def _hysteresis(self) -> Self:
        if self.idle_below_a > self.running_above_a:
            raise ValueError(
                f"idle_below_a ({self.idle_below_a}) must not be above running_above_a ({self.running_above_a})"
            )
        return self


class GpioSwitchConfig(Section):
    type: Literal["gpio"]
    pin: Pin
    active_high: bool = True


class GpioIndicatorConfig(Section):
    type: Literal["gpio"]
    green_pin: Pin
    red_pin: Pin
    buzzer_pin: Pin | None = None


class SimulatedButtonConfig(Section):
    type: Literal["simulated"]


class GpioButtonConfig(Section):
    """A push button between ``pin`` and ground; ``pull_up = false`` if it pulls the pin high instead."""

    type: Literal["gpio"]
    pin: Pin
    pull_up: bool = True
    bounce_ms: Annotated[int, Field(ge=0, le=1000)] = 50


ButtonConfig = Annotated[SimulatedButtonConfig | GpioButtonConfig, Field(discriminator="type")]


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
    reader: SimulatedReaderConfig
    current: SimulatedCurrentConfig
    switch: GpioSwitchConfig
    indicator: GpioIndicatorConfig
    button: ButtonConfig | None = None
    """An optional button that confirms a trainer's certification at the machine."""

    def pins(self) -> list[tuple[str, int | str]]:
        used: list[tuple[str, int | str]] = [
            ("switch.pin", self.switch.pin),
            ("indicator.green_pin", self.indicator.green_pin),
            ("indicator.red_pin", self.indicator.red_pin),
        ]
        if self.indicator.buzzer_pin is not None:
            used.append(("indicator.buzzer_pin", self.indicator.buzzer_pin))
        if isinstance(self.button, GpioButtonConfig):
            used.append(("button.pin", self.button.pin))
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
        return self

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


def _where(loc: tuple[int | str, ...], data: Mapping[str, Any]) -> str:
    parts = list(loc)
    if len(parts) >= 2 and parts[0] in ("machine", "machines") and isinstance(parts[1], int):
        index = parts[1]
        entries = data.get("machine", data.get("machines", []))
        entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
        name = f" ({entry['id']!r})" if isinstance(entry, Mapping) and "id" in entry else ""
        rest = ".".join(str(p) for p in parts[2:])
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
