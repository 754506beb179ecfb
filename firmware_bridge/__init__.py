"""The firmware bridge: a machine's badge reader, current clamp, relay, lights and button
driven by a microcontroller over a serial line (docs/firmware-protocol.md).

``crc``, ``cobs``, ``framing`` and ``messages`` are the wire format; ``endpoint`` the
sequencing, acknowledgement and retransmission both sides share; ``link`` the gateway's
side; ``parts`` what the gateway's factory builds for ``type = "bridge"`` (through the
``atelier_access.parts`` entry point: the controller never imports this package);
``simulator`` the microcontroller's side in Python.
"""
