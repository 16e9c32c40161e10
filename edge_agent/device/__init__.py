"""The room device: the audio pipeline around the ASR decoder, the visit it runs,
the visit lifecycle (start/stop, seal, queue), the outbox, the gRPC server, mDNS
and the operations glue (systemd, signals, button/LED, metrics, logs).

``device/main.py`` is the one place that builds and runs it.
"""
