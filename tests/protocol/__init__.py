"""Tests of the MQTT contract (protocol/) and of the broker set-up the project ships."""
