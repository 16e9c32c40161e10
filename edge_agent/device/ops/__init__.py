"""Operations glue of the running device: systemd notify/watchdog, signals,
button/LED, metrics, logs. Each module has one job; ``device/main.py`` wires them.
"""
