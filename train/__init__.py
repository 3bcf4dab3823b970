"""CHAIN training (installed as chain_sdk.train)."""
