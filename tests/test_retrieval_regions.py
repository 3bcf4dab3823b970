"""The region-probe benchmark's math against brute-force references (fast, no video)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.retrieval import edits, regions


def test_windows_tile_the_grid() -> None:
    assert len(regions.windows(3)) == 25 and len(regions.windows(7)) == 1
    assert all(0 <= y and 0 <= x and y + s <= regions.GRID and x + s <= regions.GRID
               for ws in regions.REGION_SETS.values() for y, x, s in ws)


def test_descriptors_start_with_the_global_mean() -> None:
    maps = np.random.default_rng(0).standard_normal((2, 8, 7, 7)).astype(np.float32)
    d = regions.descriptors(maps, "corners5")
    assert d.shape == (2, 6, 8)
    np.testing.assert_allclose(d[:, 0], maps.mean(axis=(2, 3)), rtol=1e-6)
    np.testing.assert_allclose(d[:, 1], maps[:, :, :4, :4].mean(axis=(2, 3)), rtol=1e-6)
    assert regions.descriptors(maps, "global").shape == (2, 1, 8)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), q=st.integers(1, 140), n=st.integers(1, 5), p=st.integers(1, 4),
       r=st.integers(1, 4), bits=st.sampled_from([8, 64]))
def test_min_distances_match_a_loop_over_pairs(seed: int, q: int, n: int, p: int, r: int, bits: int) -> None:
    rng = np.random.default_rng(seed)
    dim = 6
    queries, database = rng.standard_normal((q, p, dim)), rng.standard_normal((n, r, dim))
    centre, planes = rng.standard_normal(dim), rng.standard_normal((dim, bits))

    def unit(x):
        return (x - centre) / np.linalg.norm(x - centre)

    cosine = np.array([[min(1 - unit(a) @ unit(b) for a in qa for b in nb) for nb in database] for qa in queries])
    hamming = np.array([[min(int(np.count_nonzero((unit(a) @ planes >= 0) != (unit(b) @ planes >= 0)))
                             for a in qa for b in nb) for nb in database] for qa in queries])
    np.testing.assert_allclose(regions.min_distances(queries, database, centre), cosine, atol=1e-9)
    assert regions.min_distances(queries, database, centre, planes).tolist() == hamming.tolist()


@given(seed=st.integers(0, 2**31))
def test_pip_placement_reads_back_the_drawn_values(seed: int) -> None:
    recipe = edits.pip(np.random.default_rng(seed), other=("other.mp4", 0.0))
    w, x, y = edits.pip_placement(recipe.description)
    assert f"scale=320*{w}:-2" in recipe.graph and f"overlay=(W-w)*{x}:(H-h)*{y}" in recipe.graph


def test_pip_placement_refuses_other_descriptions() -> None:
    with pytest.raises(ValueError, match="picture-in-picture"):
        edits.pip_placement("mirrored")
