"""Device operations: provisioning, systemd notify/watchdog, button/LED, logs, metrics, doctor, signals.

Each module has one job and a small interface; ``edge-agent serve`` wires them.
"""
