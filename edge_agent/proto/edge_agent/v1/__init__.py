"""Generated protobuf/gRPC code for edge_agent.v1 (see scripts/gen_proto.py)."""
