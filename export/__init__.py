"""Export (installed as chain_sdk.export)."""
