"""Getting posts into Kafka: validation, file/HTTP/synthetic sources and the producer."""
