"""Usage metering: what each tenant used, per session and UTC day."""
