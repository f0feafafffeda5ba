"""Events: identifications, stream presence and tagged photos, published to MQTT and webhooks."""
