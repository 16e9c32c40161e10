"""Reference clinician phone client: key file, discovery, visits, feedback."""
