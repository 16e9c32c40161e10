"""The room device's browser endpoint: gRPC-Web over HTTPS with session tokens (docs/phone.md)."""
