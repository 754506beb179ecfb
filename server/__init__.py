"""The Atelier Access server: who may use which machine, and what was used.

It answers gateways over MQTT (:mod:`server.mqtt`), keeps the workshop's
records in an SQL database (:mod:`server.models`, SQLite or PostgreSQL) and
serves a REST API (:mod:`server.api`). The rules of access live in
:mod:`server.access` only.
"""
