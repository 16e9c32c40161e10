"""The device's gRPC face: mutual-TLS server, handlers, caller identity."""
