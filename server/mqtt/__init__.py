"""The server's side of the MQTT contract: answer access requests, ingest events, track gateways."""

from server.mqtt.service import MqttService

__all__ = ["MqttService"]
