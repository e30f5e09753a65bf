"""The review's processes: the queue's feeder from Kafka and the reviewer web page."""
