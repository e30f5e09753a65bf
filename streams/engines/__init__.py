"""What drives the rules over Kafka: the transactional engine (the default, exactly-once) and the
faust adapter. The two never import each other."""
