"""The bridge's errors: one root, each also the builtin it resembles (as gpiozero's are),
so the gateway, which knows nothing of this package, can catch OSError or ValueError."""


class BridgeError(Exception):
    """Root of every error raised by :mod:`firmware_bridge`."""


class BadFrame(BridgeError, ValueError):
    """Bytes that are not a frame: bad COBS, bad CRC, too short or too long."""


class BadMessage(BridgeError, ValueError):
    """A well-framed packet whose type or payload makes no sense."""


class LinkDown(BridgeError, OSError):
    """The microcontroller does not answer (or speaks another protocol version)."""


class BridgeClosed(BridgeError, RuntimeError):
    """A bridge part was used after close()."""
