"""The clinician's phone (the lead is moving the reference client here; the web app lives in web/)."""
