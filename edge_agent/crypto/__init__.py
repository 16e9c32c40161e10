"""Keys, the site CA and certificates, and sealing of feedback to a clinician."""
