"""The ``atelier`` command: one entry point for the server, the gateway and the demo.

It is the one place, with the demo, that knows every package; each package
registers its own subcommands, so ``server`` and ``controller`` never import
each other.
"""
