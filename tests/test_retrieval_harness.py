"""The retrieval harness end to end on a tiny real subset: 2 film segments, 1 distractor,
2 ffmpeg edit families (one draw each), 8 frames per video, PCA-sign fitted on film 0-20 s
(CPU, well under a minute once the sample film is fetched; cuts and features are cached)."""

from __future__ import annotations


import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("imageio_ffmpeg")

from benchmarks.retrieval import dataset, edits, features, methods, report  # noqa: E402

pytestmark = pytest.mark.slow
FRAMES = 8
FAMILIES = ["mirror", "noise_blur"]


@pytest.fixture(scope="module")
def tiny():
    rs = dataset.build("dev", edits_=FAMILIES, limit_segments=2, limit_distractors=1, draws=1, progress=False)
    db = features.many_features([v.path for v in rs.database], FRAMES, progress=False)
    qs = features.many_features([v.path for v in rs.queries], FRAMES, progress=False)
    fs = methods.FeatureSet(np.stack([f.frames for f in db]), np.stack([f.frames for f in qs]),
                            features.train_window_means(20.0, 25, progress=False),
                            np.array([f.decode_s + f.backbone_s for f in db + qs]))
    return rs, fs


def test_set_layout(tiny) -> None:
    rs, fs = tiny
    # two segments round-robin over the dev sources: the film's first and Sintel's first
    assert [v.key for v in rs.database] == ["film_000.0s", "film_240.0s", "sintel_trailer_020.0s"]
    assert len(rs.queries) == 4 and {q.edit for q in rs.queries} == set(FAMILIES)
    assert [q.group for q in rs.queries] == ["cartoon"] * 2 + ["cg"] * 2 and all(q.description for q in rs.queries)
    assert rs.relevant_indices().tolist() == [1, 1, 2, 2]
    assert all(v.path.stat().st_size > 10_000 for v in rs.database + rs.queries)
    assert fs.database.shape == (3, FRAMES, 1280) and fs.queries.shape == (4, FRAMES, 1280)


def test_pca_sign_end_to_end(tiny) -> None:
    rs, fs = tiny
    result = methods.pca_sign(fs, 16)
    assert result.distances.shape == (4, 3) and result.distances.max() <= 16
    ev = report.evaluate(result, rs)
    # Blur and flip of a 10 s film segment keep its content: the relevant original must at least
    # beat the black-opening distractor, and the metrics must agree with the ranks.
    assert ev.ranks.max() <= 2
    assert ev.overall["top1"] == pytest.approx(np.mean(ev.ranks == 1))
    assert ev.overall["map@5"] == pytest.approx(np.mean(1.0 / ev.ranks))


def test_failed_queries_are_never_found(tiny) -> None:
    rs, fs = tiny
    result = methods.pca_sign(fs, 16)
    result.failed = np.array([True, False, False, False])
    ev = report.evaluate(result, rs)
    assert ev.ranks[0] == len(rs.database) + 1


def test_edits_are_deterministic(tiny) -> None:
    rs, _ = tiny
    again = dataset.build("dev", edits_=FAMILIES, limit_segments=2, limit_distractors=1, draws=1, progress=False)
    assert [q.path for q in again.queries] == [q.path for q in rs.queries]
    font, other = dataset.font_file(), ("OTHER.mp4", 0.0)
    for family in edits.FAMILIES:
        first = [edits.draw("film_240.0s", family, i, font=font, other=other) for i in range(6)]
        assert first == [edits.draw("film_240.0s", family, i, font=font, other=other) for i in range(6)]
        assert len({r.graph for r in first}) > 1, family  # draws differ
        assert all(r.family == family and r.graph.endswith("[out]") for r in first)


def test_goal_averages_seeds_and_needs_every_rival_and_the_family_floor(tiny) -> None:
    """The goal rule on the tiny set's real ranks: a recipe's seeds are averaged, rivals are the
    same-feature projections and the peers (another backbone's PCA-sign does not count), a tie
    at 1.000 counts, and a family below 0.8 top-1 fails the goal."""
    rs, fs = tiny
    pca = report.evaluate(methods.pca_sign(fs, 16), rs)

    def like(name, family, ranks, features=""):
        result = methods.MethodResult(name, family, "16 bits", pca.result.distances, 0.0, features=features)
        out = report.evaluate(result, rs)
        out.ranks = np.asarray(ranks)
        fam = np.array([q.edit for q in rs.queries])
        out.overall = report.metrics.summarize(out.ranks)
        out.per_edit = {e: report.metrics.summarize(out.ranks[fam == e]) for e in dict.fromkeys(fam)}
        unseen = np.isin(fam, edits.UNSEEN)
        out.seen, out.unseen = report.metrics.summarize(out.ranks[~unseen]), report.metrics.summarize(out.ranks[unseen])
        return out

    perfect = [1, 1, 1, 1]
    seeds = [like("chain#0", "chain", perfect, " (luma)"), like("chain#1", "chain", perfect, " (luma)")]
    same = like("PCA-sign 16 bits (luma)", "ablation", [2, 1, 2, 1], " (luma)")
    other = like("PCA-sign 16 bits", "ablation", perfect)
    peer = like("peer", "peer", [2, 2, 1, 1])
    text = "\n".join(report.goal_section(seeds + [same, other, peer], 16))
    assert "mean over 2 seed(s)" in text and "**Goal met.**" in text and "| PCA-sign 16 bits |" not in text
    uneven = [seeds[0], like("chain#1", "chain", [1, 1, 1, 2], " (luma)")]  # noise_blur 1.0 and 0.5
    text = "\n".join(report.goal_section(uneven + [same, like("peer", "peer", perfect)], 16))
    assert "0.750 (< 0.8)" in text and "**Goal NOT met.**" in text and "loses (0.875 vs 1.000)" in text
    table = "\n".join(report.seed_table(uneven))
    assert "| chain | 2 | 0.875 ± 0.177 (0.750-1.000) |" in table
    # seeded random hyperplanes are one rival, their mean over seeds (not their luckiest draw)
    hyperplanes = [like("random hyperplanes 16 bits (luma)#0", "ablation", perfect, " (luma)"),
                   like("random hyperplanes 16 bits (luma)#1", "ablation", [2, 2, 2, 2], " (luma)")]
    text = "\n".join(report.goal_section(uneven + hyperplanes, 16))
    assert "| random hyperplanes 16 bits (luma), mean of 2 seeds | beats (0.875 vs 0.500)" in text
    assert "| random hyperplanes 16 bits (luma) | 2 | 0.500 ± 0.707 (0.000-1.000) |" in "\n".join(
        report.seed_table(uneven + hyperplanes))


def test_the_video_pasted_into_a_query_is_left_out_of_its_ranking() -> None:
    rs = dataset.build("dev", edits_=["pip"], limit_segments=2, limit_distractors=1, draws=1, progress=False)
    # the only distractor is the background of both picture-in-picture queries
    assert [q.pasted for q in rs.queries] == ["film_000.0s", "film_000.0s"]
    mask = rs.ignored_mask()
    assert mask.tolist() == [[True, False, False], [True, False, False]]
    assert not mask[np.arange(len(rs.queries)), rs.relevant_indices()].any()
    plain = dataset.build("dev", edits_=FAMILIES, limit_segments=2, limit_distractors=1, draws=1, progress=False)
    assert not plain.ignored_mask().any()  # mirror and blur paste nothing
