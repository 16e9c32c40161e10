"""Generated protobuf/gRPC code for edge_agent.v1 (see tools/gen_proto.py)."""
