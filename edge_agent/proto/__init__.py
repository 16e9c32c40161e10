"""Generated protocol code lives below (edge_agent/v1); see scripts/gen_proto.py."""
