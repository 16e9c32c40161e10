"""The clinician's phone web app: built assets in static/, served by ``edge-agent phone-web serve`` (docs/phone.md)."""
