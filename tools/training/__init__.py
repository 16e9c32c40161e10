"""Scripts that rebuild the bundled models from packages and the labelled data here."""
