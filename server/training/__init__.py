"""Training: who may certify whom in which skill, certifications' expiry, and certifying at the machine.

- :mod:`server.training.rules`: who may certify or revoke, prerequisites, what a member holds.
- :mod:`server.training.certify`: grant and revoke, the same for the API and the machine.
- :mod:`server.training.machine`: a trainer certifies a member at the machine (MQTT).
- :mod:`server.training.expiry`: expiry by date and by disuse; the sweep that records expiries.
- :mod:`server.training.sweeper`: runs the sweep at start and then periodically.

Whether a member may *use* a machine is decided in :mod:`server.access` only, with
the same notion of a valid certification (:func:`server.training.expiry.standing`).
"""
