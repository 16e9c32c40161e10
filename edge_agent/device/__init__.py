"""The room device (the lead is moving server/ here; new device-side code starts here)."""
