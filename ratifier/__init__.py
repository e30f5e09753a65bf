"""Ratifier: Kafka-native M-of-N consensus for AI outputs."""
