"""What hospital IT runs: the site CA commands, device provisioning, ``doctor``."""
