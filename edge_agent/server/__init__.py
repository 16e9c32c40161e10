"""Room-device daemon side: gRPC services, visit lifecycle, outbox, zeroconf."""
