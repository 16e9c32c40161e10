"""Mutual-TLS gRPC plumbing shared by the room device and the population
aggregator: who is calling (peer certificate, CRL), the server with its limits,
tolerant request parsing and the handler guard that maps failures to statuses.
"""
