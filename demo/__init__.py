"""``atelier demo``: a small textile atelier and fablab, simulated end to end.

The demo is, with the ``atelier`` command, the one place that composes the
server and the gateways in one process; they still talk only through MQTT.
"""
