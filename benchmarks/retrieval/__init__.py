"""Near-duplicate video retrieval benchmark (issue 6).

`python -m benchmarks.retrieval.report --split dev --out docs/near_duplicate_report.md` builds the
edited query set with ffmpeg, encodes it with every method (feature-hash ablations, CHAIN model
dirs, PyPI peers in their own virtual environments), ranks the database and writes the report.
"""
