"""The gateway daemon of Atelier Access, on each Raspberry Pi.

It reads badges and current clamps, asks the server over MQTT whether a member
may use a machine, switches the machine, and reports usage sessions metered by
sensed running time. Start at :class:`controller.gateway.Gateway`.
"""
