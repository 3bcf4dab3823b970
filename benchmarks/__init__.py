"""Side-by-side benchmarks of chain-sdk against its peers (not part of the installed package)."""
