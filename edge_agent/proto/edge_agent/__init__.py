"""Namespace mirroring the proto package path edge_agent.v1."""
