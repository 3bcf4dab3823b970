"""One command from videos to the committed near-duplicate retrieval report.

    .venv/bin/python -m benchmarks.retrieval.report --split dev \\
        --models chain=runs/chain64/model no_order=runs/no_order/model \\
        --training-log runs/chain64/train_log.csv \\
        --out docs/near_duplicate_report.md

Steps: cut and edit the split's videos with ffmpeg (cached), compute the EfficientNet-Lite0
frame features once (cached), run every method (float reference, PCA-sign, random hyperplanes,
each CHAIN model dir, each installed peer), rank the database per query, and write the Markdown
report, its figures (next to it, in `figures/`) and a JSON file with every query's rank.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from benchmarks.retrieval import dataset, features, methods, metrics, peers, probing
from benchmarks.retrieval.edits import FAMILIES, UNSEEN
from chain_sdk import data

log = logging.getLogger("benchmarks.retrieval")


@dataclass
class Evaluated:
    result: methods.MethodResult
    ranks: np.ndarray  # [Q], 1-based; failed queries get N + 1 (never retrieved)
    overall: dict[str, float]
    per_edit: dict[str, dict[str, float]]  # per edit family
    per_group: dict[str, dict[str, float]]  # per source group of the query (cartoon, cg, live)
    seen: dict[str, float]  # queries of the families used in training
    unseen: dict[str, float]  # queries of the families never used in training
    per_edit_counted: dict[str, dict[str, float]]  # families with a pasted video, scored as if finding it were a miss

    @property
    def worst(self) -> tuple[str, float]:
        family = min(self.per_edit, key=lambda e: self.per_edit[e]["top1"])
        return family, self.per_edit[family]["top1"]


def evaluate(result: methods.MethodResult, rs: dataset.RetrievalSet) -> Evaluated:
    """Ranks with each query's pasted video left out (a true copy, not a miss); the families that
    paste one are also scored the old way, counting it against the query, for comparison."""
    def ranks_of(ignored: np.ndarray | None) -> np.ndarray:
        ranks = metrics.relevant_ranks(result.distances, rs.relevant_indices(), ignored)
        return ranks if result.failed is None else np.where(result.failed, len(rs.database) + 1, ranks)

    ranks, counted = ranks_of(rs.ignored_mask()), ranks_of(None)
    edits = np.array([q.edit for q in rs.queries])
    groups = np.array([q.group for q in rs.queries])
    unseen = np.isin(edits, UNSEEN)
    per_edit = {e: metrics.summarize(ranks[edits == e]) for e in dict.fromkeys(edits)}
    per_group = {g: metrics.summarize(ranks[groups == g]) for g in data.GROUPS if (groups == g).any()}
    pasting = dict.fromkeys(q.edit for q in rs.queries if q.pasted is not None)
    per_edit_counted = {e: metrics.summarize(counted[edits == e]) for e in pasting}
    return Evaluated(result, ranks, metrics.summarize(ranks), per_edit, per_group,
                     metrics.summarize(ranks[~unseen]), metrics.summarize(ranks[unseen]), per_edit_counted)


def feature_set(rs: dataset.RetrievalSet, frames: int, backbone: str = features.BACKBONE, *,
                progress: bool) -> methods.FeatureSet:
    """Per-frame features of the set plus the training frames (for PCA and the centring mean)."""
    db = features.many_features([v.path for v in rs.database], frames, backbone, progress=progress,
                                desc="database features")
    qs = features.many_features([v.path for v in rs.queries], frames, backbone, progress=progress,
                                desc="query features")
    # PCA and the centring mean: every sampled frame of every 10 s window of the training sources
    # (film 0-240 s every 5 s and the other training sources; all of them distractors, so cached)
    train_paths = dataset.materialize([(c, None) for c in dataset.train_clips()], progress=progress)
    train_frames = np.vstack([features.video_features(p, frames, backbone).frames for p in train_paths])
    return methods.FeatureSet(
        database=np.stack([f.frames for f in db]), queries=np.stack([f.frames for f in qs]),
        train_means=train_frames,
        feature_s=np.array([f.decode_s + f.backbone_s for f in db + qs]),
        label=feature_label(backbone))


def feature_label(backbone: str) -> str:
    """Row-name suffix of a backbone's features: "" for the colour backbone, " (luma)" for
    `efficientnet_lite0_luma`."""
    if backbone == features.BACKBONE:
        return ""
    return f" ({backbone.removeprefix(features.BACKBONE).strip('_') or backbone})"


def feature_backbones(models: list[tuple[str, Path]], colour: bool,
                      extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Backbones with feature-hash rows: the colour one (with --colour-baselines or without models),
    each one a model declares, then the `extra` ones asked for with --backbones."""
    declared = [methods.model_backbone(d) for _, d in models]
    return list(dict.fromkeys(([features.BACKBONE] if colour or not declared else []) + declared + list(extra)))


def parse_models(items: list[str]) -> list[tuple[str, Path]]:
    from chain_sdk.export.onnx_export import export_cached
    from chain_sdk.models import is_checkpoint_dir, is_packaged_dir, resolve_model

    out = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--models takes NAME=DIR, got {item!r}")
        p = Path(path)  # model dir as is; a checkpoint (not a packaged default) is exported once
        out.append((name, export_cached(p) if is_checkpoint_dir(p) and not is_packaged_dir(p) else resolve_model(p)))
    return out


def run_methods(rs, args, *, progress: bool) -> tuple[list[Evaluated], list[peers.PeerOutcome], list[str]]:
    """Feature-hash rows for every backbone a CHAIN model declares (so each model is compared with
    PCA-sign and random hyperplanes on its own features; the colour backbone too with
    --colour-baselines or without models), then the models, then peers."""
    models = parse_models(args.models or [])
    backbones = feature_backbones(models, args.colour_baselines, args.backbones)
    sets = {b: feature_set(rs, features.DEFAULT_FRAMES, b, progress=progress) for b in backbones}
    results = []
    for fs in sets.values():
        results.append(methods.float_cosine(fs))
        for bits in args.bits:
            results.append(methods.pca_sign(fs, bits))
            results += [methods.random_hyperplanes(fs, bits, seed) for seed in args.hyperplane_seeds]
    chain_notes = []
    for name, model_dir in models:
        frames, backbone = methods.model_frames(model_dir), methods.model_backbone(model_dir)
        mfs = (sets[backbone] if frames == features.DEFAULT_FRAMES
               else feature_set(rs, frames, backbone, progress=progress))
        results.append(methods.chain_model(name, model_dir, mfs))
        check = methods.verify_against_encoder(model_dir, *parity_videos(rs, mfs))
        source = dict(item.partition("=")[::2] for item in args.models)[name]
        chain_notes.append(f"`{name}` ({source}): {check}")
    outcomes = []
    for peer in args.peers:
        outcome = peers.run_peer(peer, rs, overrides=dict(p.split("=", 1) for p in args.peer_python or []))
        outcomes.append(outcome)
        results.extend(outcome.results)
        if outcome.error:
            log.warning("peer %s: %s", peer, outcome.error)
    evaluated = [evaluate(r, rs) for r in results]
    probes = probe_section(rs, evaluated, sets, models, args, progress=progress) if args.probes else []
    return evaluated, outcomes, chain_notes, probes


def _query_passes(code_size: str) -> str:
    """Backbone passes per query: the probe count of a probed row ("64 bits x 6"), else 1."""
    return code_size.rsplit(" x ", 1)[1] if " x " in code_size else "1"


def probe_section(rs, evaluated: list[Evaluated], sets: dict, models, args, *, progress: bool) -> list[str]:
    """Query-side multi-probe (`benchmarks.retrieval.probing`) on the first draw's queries: each
    probed row next to the same method without probes on the same queries."""
    sub = probing.first_draw(rs, args.probe_segments)
    keep = np.isin([q.key for q in rs.queries], [q.key for q in sub.queries])
    bits = args.bits[0]
    plain = {f"float cosine, mean feature{fs.label}" for fs in sets.values()}
    plain |= {f"random hyperplanes {bits} bits{fs.label}#0" for fs in sets.values()} | {name for name, _ in models}
    rows = [evaluate(replace(ev.result, distances=ev.result.distances[keep],
                             failed=None if ev.result.failed is None else ev.result.failed[keep]), sub)
            for ev in evaluated if ev.result.name in plain]
    for probe_set in args.probes:
        for backbone, fs in sets.items():
            rows += [evaluate(r, sub) for r in probing.probed_rows(sub, fs, backbone, models, probe_set, bits,
                                                                   progress=progress)]
    segments = len({q.relevant for q in sub.queries})
    lines = [f"### Query-side multi-probe ({len(sub.queries)} queries: the first draw of every family, "
             f"{segments} evaluation segments)", "",
             "Each query is also hashed from crops of its picture (`Encoder.encode_probes`) and matched by its "
             "nearest probe (`chain_sdk.index.search_probes`); the database is unchanged. Cost: one backbone "
             "pass per probe on the query side.", "",
             "| method | code size | top-1 | mAP@5 | unseen top-1 | pip top-1 | worst family (top-1) | query backbone passes |",
             "|---|---|---|---|---|---|---|---|"]
    for ev in rows:
        worst, value = ev.worst
        pip = ev.per_edit.get("pip", {}).get("top1", float("nan"))
        lines.append(f"| {ev.result.name} | {ev.result.code_size} | {_fmt(ev.overall['top1'])} | "
                     f"{_fmt(ev.overall['map@5'])} | {_fmt(ev.unseen['top1'])} | {_fmt(pip)} | {worst} {_fmt(value)} | "
                     f"{_query_passes(ev.result.code_size)} |")
    return lines + [""]


def parity_videos(rs: dataset.RetrievalSet, fs) -> tuple[list[Path], np.ndarray]:
    """Videos whose cached-feature CHAIN codes are checked against `Encoder.encode`: three
    database items and the first black-bar re-framing query (the one the bar crop changes)."""
    bars = [i for i, q in enumerate(rs.queries) if q.edit == "reframe" and "black" in q.description][:1]
    paths = [v.path for v in rs.database[:3]] + [rs.queries[i].path for i in bars]
    return paths, np.concatenate([fs.database[:3], fs.queries[bars]])


def timing_videos(rs: dataset.RetrievalSet, n: int) -> list[dataset.Video]:
    """A fixed mix for the timing pass: evaluation originals and queries of different edits."""
    originals = [v for v in rs.database if v.key in set(rs.eval_keys)][: (n + 1) // 2]
    step = max(1, len(rs.queries) // max(1, n // 2))
    return originals + rs.queries[1::step][: n // 2]


def timing_pass(rs, evaluated: list[Evaluated], models: list[tuple[str, Path]], outcomes, n: int,
                extra_backbones: list[str] | tuple[str, ...] = ()) -> str:
    """Encode the same few videos from scratch with every method, one after the other in this run,
    and replace each method's encode time by that measurement (cached timings come from runs
    under different machine load, so they are not comparable)."""
    videos = timing_videos(rs, n)
    by_name = {ev.result.name: ev.result for ev in evaluated}

    def fresh_features(frames: int, backbone: str) -> tuple[float, np.ndarray]:
        seconds, feats = [], []
        for v in videos:
            t0 = time.perf_counter()
            feats.append(features.run_backbone(features.sample(v.path, frames, backbone), backbone))
            seconds.append(time.perf_counter() - t0)
        return float(np.mean(seconds)), np.stack(feats)

    timed: dict[tuple[int, str], tuple[float, np.ndarray]] = {}

    def features_of(frames: int, backbone: str) -> tuple[float, np.ndarray]:
        """One fresh pass per (T, backbone), shared by every method that uses those features."""
        if (frames, backbone) not in timed:
            timed[frames, backbone] = fresh_features(frames, backbone)
        return timed[frames, backbone]

    backbones = {feature_label(b): b for b in feature_backbones(models, True, extra_backbones)}
    for r in by_name.values():
        if r.family in ("reference", "ablation"):
            r.encode_s = features_of(features.DEFAULT_FRAMES, backbones[r.features])[0]
    for name, model_dir in models:
        secs, f = features_of(methods.model_frames(model_dir), methods.model_backbone(model_dir))
        per_video = [methods.temporal_codes(model_dir, f[i:i + 1])[1] for i in range(len(f))]
        by_name[name].encode_s = secs + float(np.mean(per_video))
    for o in outcomes:
        if o.error is None:
            secs = peers.time_peer(o.peer, videos, o.python)
            for r in o.results:
                r.encode_s = secs
    return (f"{len(videos)} videos ({', '.join(v.key for v in videos)}), each encoded from scratch by every "
            "method in turn in this run")


# ---------------------------------------------------------------- figures


def contact_sheet(rs: dataset.RetrievalSet, out: Path) -> None:
    """Centre frame of the first evaluation original and of each of its edited copies."""
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chain_sdk.video import sample_clip

    key = rs.eval_keys[0]
    items = [(f"original ({key})", next(v.path for v in rs.database if v.key == key))]
    items += [(q.edit, q.path) for q in rs.queries if q.relevant == key]
    cols = 4
    rows = -(-len(items) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.5 * rows))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, (title, path) in zip(np.ravel(axes), items):
        frame = sample_clip(str(path), frames=1).frames[0]
        ax.imshow(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=72)
    plt.close(fig)
    from PIL import Image  # matplotlib's own dependency

    # Film frames compress badly as true-colour PNG: a 256-colour palette keeps the committed file small.
    Image.open(out).convert("P", palette=Image.ADAPTIVE, colors=256).save(out, optimize=True)


def per_edit_plot(evaluated: list[Evaluated], edits: list[str], out: Path, bits: int) -> None:
    """Top-1 per edit of the `bits`-bit hashes and the peers (the tables hold every row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evaluated = [ev for ev in evaluated if ev.result.family == "peer" or ev.result.code_size == f"{bits} bits"]
    # one bar per seeded feature hash (its seed 0); CHAIN seeds all get theirs
    evaluated = [ev for ev in evaluated if ev.result.family != "ablation" or ev.result.name.endswith("#0")
                 or "#" not in ev.result.name]
    width = 0.8 / len(evaluated)
    fig, ax = plt.subplots(figsize=(max(10, 1.4 * len(edits)), 5.5))
    x = np.arange(len(edits))
    cmap = plt.get_cmap("tab20")
    for i, ev in enumerate(evaluated):
        ax.bar(x + i * width - 0.4 + width / 2, [ev.per_edit[e]["top1"] for e in edits], width,
               label=ev.result.name, color=cmap(i % 20))
    ax.set_xticks(x, edits, rotation=20, ha="right")
    ax.set_ylabel(f"top-1 ({bits}-bit hashes and peers)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, ncol=min(5, len(evaluated)), loc="lower center", bbox_to_anchor=(0.5, 1.01))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def read_training_log(path: Path) -> dict[str, np.ndarray]:
    """Columns of a CSV, JSON (list of records or dict of lists) or JSON-lines training log."""
    text = path.read_text()
    if path.suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
    else:
        try:
            parsed = json.loads(text)
            rows = parsed if isinstance(parsed, list) else [dict(zip(parsed, v)) for v in zip(*parsed.values())]
        except json.JSONDecodeError:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    columns: dict[str, list[float]] = {}
    for row in rows:
        for k, v in row.items():
            try:
                columns.setdefault(k, []).append(float(v))
            except (TypeError, ValueError):
                pass
    return {k: np.array(v) for k, v in columns.items()}


def training_plot(logs: list[Path], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for path in logs:
        cols = read_training_log(path)
        step = cols.get("step", np.arange(len(next(iter(cols.values())))))
        for name, values in cols.items():
            if name.startswith("loss"):
                ax.plot(step[: len(values)], values, label=f"{path.parent.name}: {name}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------- markdown


def _fmt(x: float) -> str:
    return "n/a" if x != x else f"{x:.3f}"


def main_table(evaluated: list[Evaluated]) -> list[str]:
    lines = ["| method | kind | code size | top-1 | mAP@1 | mAP@5 | mAP@10 | encode s/video |",
             "|---|---|---|---|---|---|---|---|"]
    for ev in evaluated:
        o = ev.overall
        lines.append(f"| {ev.result.name} | {ev.result.family} | {ev.result.code_size} | {_fmt(o['top1'])} | "
                     f"{_fmt(o['map@1'])} | {_fmt(o['map@5'])} | {_fmt(o['map@10'])} | {ev.result.encode_s:.2f} |")
    return lines


def per_edit_table(evaluated: list[Evaluated], edits: list[str], metric: str) -> list[str]:
    lines = ["| method | " + " | ".join(edits) + " |", "|---" * (len(edits) + 1) + "|"]
    for ev in evaluated:
        lines.append(f"| {ev.result.name} | " + " | ".join(_fmt(ev.per_edit[e][metric]) for e in edits) + " |")
    return lines


def recipe_of(name: str) -> str:
    """Models named `RECIPE#SEED` are seeds of one recipe."""
    return name.split("#", 1)[0]


def recipes(evaluated: list[Evaluated], family: str = "chain") -> dict[str, list[Evaluated]]:
    """The rows of `family` grouped by recipe (their seeds), in first-seen order."""
    out: dict[str, list[Evaluated]] = {}
    for ev in evaluated:
        if ev.result.family == family:
            out.setdefault(recipe_of(ev.result.name), []).append(ev)
    return out


def scores(ev: Evaluated) -> dict[str, float]:
    """The numbers the goal and the seed table use, of one evaluated method."""
    out = {"top1": ev.overall["top1"], "map@5": ev.overall["map@5"],
           "unseen top1": ev.unseen["top1"], "unseen map@5": ev.unseen["map@5"],
           "seen top1": ev.seen["top1"], "worst family top1": ev.worst[1]}
    out.update({f"{g} top1": v["top1"] for g, v in ev.per_group.items()})
    return out


def mean_scores(evs: list[Evaluated]) -> dict[str, float]:
    per = [scores(ev) for ev in evs]
    out = {k: float(np.mean([p[k] for p in per])) for k in per[0]}
    # worst family of the mean: each family's top-1 averaged over seeds, then the lowest
    fam = {e: np.mean([ev.per_edit[e]["top1"] for ev in evs]) for e in evs[0].per_edit}
    out["worst family top1"] = float(min(fam.values()))
    return out


def summary_table(evaluated: list[Evaluated]) -> list[str]:
    groups = [g for g in data.GROUPS if any(g in ev.per_group for ev in evaluated)]
    lines = ["| method | code size | top-1 | mAP@5 | seen top-1 | unseen top-1 | unseen mAP@5 | worst family (top-1) | "
             + " | ".join(f"{g} top-1" for g in groups) + " | encode s/video |",
             "|---" * (9 + len(groups)) + "|"]
    for ev in evaluated:
        fam, worst = ev.worst
        lines.append(f"| {ev.result.name} | {ev.result.code_size} | {_fmt(ev.overall['top1'])} | "
                     f"{_fmt(ev.overall['map@5'])} | {_fmt(ev.seen['top1'])} | {_fmt(ev.unseen['top1'])} | "
                     f"{_fmt(ev.unseen['map@5'])} | {fam} {_fmt(worst)} | "
                     + " | ".join(_fmt(ev.per_group.get(g, {}).get("top1", float("nan"))) for g in groups)
                     + f" | {ev.result.encode_s:.2f} |")
    return lines


def seed_table(evaluated: list[Evaluated]) -> list[str]:
    """Mean, standard deviation and range over the seeds of each CHAIN recipe and of each seeded
    feature hash (random hyperplanes)."""
    keys = ["top1", "map@5", "seen top1", "unseen top1", "unseen map@5", "worst family top1"]
    keys += [f"{g} top1" for g in data.GROUPS]
    lines = ["| recipe | seeds | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    seeded = {**recipes(evaluated), **{r: evs for r, evs in recipes(evaluated, "ablation").items() if len(evs) > 1}}
    for recipe, evs in seeded.items():
        per = [scores(ev) for ev in evs]
        mean = mean_scores(evs)
        cells = []
        for k in keys:
            vals = [p[k] for p in per if k in p]
            if not vals:
                cells.append("n/a")
            elif len(vals) == 1:
                cells.append(_fmt(vals[0]))
            else:
                cells.append(f"{_fmt(mean[k])} ± {np.std(vals, ddof=1):.3f} ({_fmt(min(vals))}-{_fmt(max(vals))})")
        lines.append(f"| {recipe} | {len(evs)} | " + " | ".join(cells) + " |")
    return lines


def goal_section(evaluated: list[Evaluated], bits: int) -> list[str]:
    """Issue 14's goal: the default recipe (the first CHAIN model's; mean over its seeds) beats
    random hyperplanes (mean over their seeds) and PCA-sign at `bits` on the same features and
    every peer in top-1 and mAP@5, overall and on the unseen families, and no edit family is below
    0.8 top-1. A tie at 1.000 counts as met."""
    groups = recipes(evaluated)
    if not groups:
        return ["**CHAIN rows pending**: no `--models` were given.", ""]
    recipe, evs = next(iter(groups.items()))
    mine = mean_scores(evs)
    label = evs[0].result.features
    hashes = {r: evs for r, evs in recipes(evaluated, "ablation").items()
              if evs[0].result.code_size == f"{bits} bits" and evs[0].result.features == label}
    rivals = [(r if len(evs) == 1 else f"{r}, mean of {len(evs)} seeds", mean_scores(evs)) for r, evs in hashes.items()]
    rivals += [(ev.result.name, scores(ev)) for ev in evaluated if ev.result.family == "peer"]
    lines = [f"Default recipe: `{recipe}` ({evs[0].result.code_size}, mean over {len(evs)} seed(s)). It must beat "
             f"random hyperplanes and PCA-sign at {bits} bits on the same features and every peer in top-1 and "
             f"mAP@5, overall and on the unseen families ({', '.join(UNSEEN)}), and no edit family may be below "
             "0.8 top-1.", "",
             "| rival | top-1 | mAP@5 | unseen top-1 | unseen mAP@5 |", "|---|---|---|---|---|"]
    met = True
    for rival, theirs in rivals:
        cells = []
        for k in ("top1", "map@5", "unseen top1", "unseen map@5"):
            if np.isnan(mine[k]):  # no unseen queries in this set (a subset run)
                cells.append("n/a")
                continue
            ok = mine[k] > theirs[k] or mine[k] == theirs[k] == 1.0
            met &= ok
            verdict = "beats" if mine[k] > theirs[k] else ("ties" if mine[k] == theirs[k] else "loses")
            cells.append(f"{verdict} ({_fmt(mine[k])} vs {_fmt(theirs[k])})")
        lines.append(f"| {rival} | " + " | ".join(cells) + " |")
    floor_ok = mine["worst family top1"] >= 0.8
    lines += ["", f"Worst edit family of the default (top-1 averaged over seeds): {_fmt(mine['worst family top1'])} "
              f"({'>=' if floor_ok else '<'} 0.8).", "",
              f"**Goal {'met' if met and floor_ok else 'NOT met'}.**", ""]
    return lines


def peer_section(outcomes: list[peers.PeerOutcome]) -> list[str]:
    lines = ["| peer | pinned | interpreter | status |", "|---|---|---|---|"]
    for o in outcomes:
        if o.error:
            status = "could not run: " + o.error.replace("\n", " ").replace("|", "\\|")
        else:
            status = f"ran ({', '.join(r.name for r in o.results)})"
            extra = [n for r in o.results[:1] for n in r.notes[1:]]
            if extra:
                status += "; " + "; ".join(extra).replace("|", "\\|")
        lines.append(f"| {o.peer} | `{peers.PINS[o.peer]}` | `{peers.display_python(o.python)}` | {status} |")
    return lines


def pasted_table(evaluated: list[Evaluated]) -> list[str]:
    """Top-1 of the families that paste another database video into the query, under both rules."""
    families = list(evaluated[0].per_edit_counted) if evaluated else []
    if not families:
        return []
    lines = ["### Queries with a pasted database video: left out of the ranking vs counted as a miss", "",
             "Picture-in-picture puts the segment on top of another database video (70-91 % of the picture), "
             "`overlay` may paste a patch of one, `temporal` an intro. Finding that video is a correct copy "
             "detection, so the tables above leave it out of that query's ranking (it is neither relevant nor a "
             "negative). Before 2026-12-02 it counted as a miss: a method that found the larger copy first was "
             "scored wrong. Top-1, left out / counted:", "",
             "| method | " + " | ".join(families) + " |", "|---" * (len(families) + 1) + "|"]
    for ev in evaluated:
        cells = [f"{_fmt(ev.per_edit[e]['top1'])} / {_fmt(ev.per_edit_counted[e]['top1'])}" for e in families]
        lines.append(f"| {ev.result.name} | " + " | ".join(cells) + " |")
    return lines + [""]


def write_report(path: Path, rs: dataset.RetrievalSet, evaluated: list[Evaluated], outcomes, chain_notes,
                 args, figures: dict[str, str], runtime_s: float, command: str, timing_note: str | None,
                 probe_lines: list[str] = ()) -> None:
    edits = [f for f in FAMILIES if any(q.edit == f for q in rs.queries)]
    n_db, n_q = len(rs.database), len(rs.queries)
    evaluation, distractors = len(rs.eval_keys), n_db - len(rs.eval_keys)
    pending = not args.models
    md = ["# Near-duplicate video retrieval: CHAIN vs feature hashes vs peers", ""]
    if pending:
        md += ["> **CHAIN rows pending.** This run has the baselines and the peers only; the lead adds the "
               "trained CHAIN model directories with `--models NAME=DIR ...`.", ""]
    md += [f"Split **{rs.split}**: {evaluation} evaluation segments, {distractors} distractors "
           f"(database {n_db} videos), {n_q} edited queries ({len(edits)} edit families, "
           f"{sum(q.edit in UNSEEN for q in rs.queries)} queries of the unseen ones). Generated by:", "",
           "```", command, "```", "",
           f"Machine: {platform.processor() or platform.machine()}, {_cpu_count()} CPU cores shared with other jobs, "
           f"Python {platform.python_version()}. Whole run (cached videos/features/peer hashes reused when present): "
           f"{runtime_s:.0f} s.", ""]
    md += ["## Results", "", *goal_section(evaluated, args.bits[0]),
           "### Seeds of each CHAIN recipe and of random hyperplanes (mean ± sd (min-max))", "", *seed_table(evaluated), "",
           "### Overall, seen / unseen families, worst family, source groups", "", *summary_table(evaluated), "",
           f"Unseen families (never used in training): {', '.join(UNSEEN)}. Source groups: the group of the query's "
           "source (cartoon: Big Buck Bunny; cg: Sintel; live: live action).", "",
           *probe_lines,
           "### All metrics", "", *main_table(evaluated), "",
           "Encode s/video: decoding plus hashing one video on this CPU. For the feature methods: sampling 25 "
           "frames with `chain_sdk.video.sample_clip` plus the EfficientNet-Lite0 backbone (onnxruntime, 2 threads) "
           "(+ `temporal.onnx` for CHAIN); for peers: the peer's own hashing call. "
           + (f"Timing pass: {timing_note}. " if timing_note else
              "Measured when each video was first cached (no timing pass), so under varying load. ")
           + "The machine is shared with other jobs: compare ratios within one run only.", "",
           "### Top-1 per edit family", "", *per_edit_table(evaluated, edits, "top1"), "",
           f"![per-edit top-1]({figures['per_edit']})", "",
           "### mAP@5 per edit family", "", *per_edit_table(evaluated, edits, "map@5"), "",
           *pasted_table(evaluated)]
    if chain_notes:
        md += ["### CHAIN rows: cached-feature path vs `Encoder.encode`", "",
               "CHAIN rows run each model's `temporal.onnx` on the cached backbone features of the same "
               "frames `Encoder` samples (the model's own T).", ""] + [f"- {n}" for n in chain_notes] + [""]
    if "training" in figures:
        md += ["### Training curves", "", f"![training losses]({figures['training']})", ""]
    md += ["## Setup", "",
           "**Data.** Every video of `chain_sdk.data` (`chain-sdk data fetch`): Big Buck Bunny (`bbb.mp4`, "
           "cartoon), the Sintel trailer (CG) and live-action clips from PyPI packages and Debian packages "
           "(torchvision's test clips of HMDB51 / UCF101 / Kinetics, OpenShot's examples, the Ren'Py demo's "
           "launch). " + _ATTRIBUTION, "",
           "**Splits** (`chain_sdk.data.SOURCES`, by source and by time): " + split_summary(), "",
           "Evaluation segments are 10 s windows (whole clips when shorter); each has "
           f"{dataset.DEV_DRAWS if rs.split == 'dev' else dataset.HELDOUT_DRAWS} queries per edit family, with "
           "parameters drawn per query. Distractors: the 10 s windows (5 s hop) of every training source, plus the "
           "dev sources on held-out. Each query has one relevant item, its source segment.", "",
           "**Queries** (`benchmarks/retrieval/edits.py`: ffmpeg filter graphs of imageio-ffmpeg's ffmpeg, other code "
           "and other parameters than the training augmentation `train/reupload.py`; every query at most 640 px "
           "wide, H.264). AugLy was not used: " + AUGLY_NOTE, "",
           "| family | in training? | what a query does (one draw each) |", "|---|---|---|"]
    for name in edits:
        examples = list(dict.fromkeys(q.description for q in rs.queries if q.edit == name))[:3]
        md.append(f"| `{name}` | {'**unseen**' if name in UNSEEN else 'seen'} | {'; '.join(examples)}; ... |")
    md += ["", f"![one segment and its edited copies]({figures['contact_sheet']})", "",
           "**Methods.** Feature methods share one set of EfficientNet-Lite0 frame features per backbone variant "
           "(25 frames at segment centres, 224x224, `chain_sdk.export.backbones.get_backbone`; "
           + ("each clip cropped to the picture inside the black bars all its frames share, as `Encoder` does "
              "by default (`chain_sdk.video.borders`)" if features.CROP_BORDERS else
              "whole frames: run with `--no-crop-borders`, unlike `Encoder`'s default") + "): the colour "
           "backbone, and each variant a CHAIN model declares, such as `efficientnet_lite0_luma` (rows marked "
           "`(luma)`: the same CNN fed BT.601 luma in all three channels). "
           + backbones_note(args.backbones) + "*float cosine*: cosine of the centred "
           "mean feature (a reference, not a hash). *PCA-sign*: PCA fitted on training-window mean features only "
           "(the 25 sampled frames of every 10 s window of the training sources: film 0-240 s every 5 s and the "
           "other training clips), sign "
           "of the projection. *Random hyperplanes*: seeded Gaussian projection of the centred mean feature, sign, "
           f"one row per seed ({', '.join(map(str, args.hyperplane_seeds))}; named `#SEED`): at 64 bits one draw "
           "differs from the next by about 0.02 top-1, so the goal compares with their mean, not one draw. "
           "*CHAIN*: each model dir's `temporal.onnx` on its own backbone's features. Hashes rank by Hamming distance; peers "
           "by their own similarity (videohash: Hamming on its 64 bits; vpdq: quality-filtered frame match "
           "percentage of `matchTwoHashBrute`, quality >= 50, PDQ distance < 31, query match % then target "
           "match %; tmkpy: TMK level-1 cosine and level-2 scores; perception: TMKL1 cosine and TMKL2 score).", "",
           "**Metrics.** Ranking ties are broken by database order (film windows by time, then the small clips), "
           "so a tie with an earlier film distractor counts against the query. The database video pasted into "
           "a query (picture-in-picture background, overlaid patch, intro) is left out of that query's ranking. "
           "top-1: the relevant item ranks "
           "first. AP@K with a single relevant item = 1/rank if rank <= K else 0; mAP@K is its mean over queries "
           "(so mAP@1 = top-1). This differs from the SSVH/BTH/ConMH mAP@K used for FCVID etc., which averages "
           "precision over the many relevant (same-class) items in the top K.", "",
           "## Peers", "", *peer_section(outcomes), "",
           "Peers run in their own virtual environments (`benchmarks/retrieval/install_peers.sh` makes them under "
           "`$CHAIN_PEER_VENVS`, default `~/.cache/chain-sdk/peer-venvs`) through `benchmarks/retrieval/peer_worker.py`, so "
           "their pins never touch the project's environment: `perception` needs `opencv-contrib-python-headless<5` "
           "(the project has OpenCV 5) and `videohash` 3.0.1 calls `PIL.Image.ANTIALIAS`, removed in Pillow 10 "
           "(the project has Pillow 13), so it runs with `Pillow<10`. `vpdq` and `tmkpy` are source-only "
           "distributions that compile C++ against system libraries (vpdq: libavcodec/libavformat/libswscale "
           "headers; tmkpy: SWIG).", "",
           "A video a peer crashes on counts as never found when it is a query and is never returned when it is a "
           "database item. perception 0.9.3 crashes on videos that contain a uniform frame (such as the black frames "
           "of the film's opening and fades): its PHashF frame hasher returns None when a frame's DCT is all zero "
           "and `TMKL1.process_frame` asserts on it (TMKL2 shares the decoding pass).", "",
           "## Reproduce", "", "```",
           "make install                                  # the project environment",
           "bash benchmarks/retrieval/install_peers.sh    # optional: the four peers, each in its own venv",
           command, "```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(md))


def backbones_note(extra: list[str]) -> str:
    """The Methods sentence on the backbones asked for with --backbones (empty without)."""
    if not extra:
        return ""
    sizes = ", ".join(f"`{b}` at {'x'.join(map(str, features.input_size(b)))}" for b in extra)
    return (f"Also the backbones asked for with `--backbones`, each at its own ImageNet input size and with "
            f"its own PCA and centring mean: {sizes} (rows marked with the backbone's name). ")


AUGLY_NOTE = ("`augly==1.0.0` (its last release, 2022) installs, but `augly.video` needs the `[video]` extra "
              "(ffmpeg-python, moviepy and more), whose pip resolution had not finished after an hour on the "
              "shared 2-core VM, so every query here is a plain ffmpeg filter graph.")


def split_summary() -> str:
    parts = []
    for split in data.SPLITS:
        items = []
        for source, (a, b) in data.split_sources(split):
            span = "" if (a, b) == (0.0, float("inf")) else f" {a:g}-{'end' if b == float('inf') else f'{b:g}'} s"
            items.append(f"`{source.name}`{span} ({source.group})")
        parts.append(f"*{split}*: " + ", ".join(items))
    return "; ".join(parts) + "."


_ATTRIBUTION = ("Big Buck Bunny (c) copyright 2008, Blender Foundation, www.bigbuckbunny.org, CC BY 3.0. "
                "Sintel (c) copyright Blender Foundation, www.sintel.org, CC BY 3.0.")


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.retrieval.report", description=__doc__.split("\n")[0])
    p.add_argument("--split", choices=dataset.SPLITS, default="dev")
    p.add_argument("--models", nargs="*", default=[], metavar="NAME=DIR",
                   help="CHAIN model dirs (chain-export output); the first is the default model")
    p.add_argument("--colour-baselines", action="store_true",
                   help="also the baselines on the colour backbone's features (a second backbone pass per video)")
    p.add_argument("--backbones", nargs="*", default=[], metavar="NAME",
                   help="also the baselines on these backbones' features, each at its own input size "
                   "(e.g. efficientnet_lite1 efficientnet_lite2: the `lite12` extra)")
    p.add_argument("--bits", nargs="+", type=int, default=[64], help="code sizes of the PCA/random baselines")
    p.add_argument("--hyperplane-seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], metavar="SEED",
                   help="random hyperplane draws at every code size; the goal compares with their mean")
    p.add_argument("--peers", nargs="*", default=list(peers.PEERS), choices=peers.PEERS)
    p.add_argument("--peer-python", nargs="*", metavar="NAME=PYTHON", help="interpreter for a peer")
    p.add_argument("--edits", nargs="*", default=None, choices=list(FAMILIES), help="edit families")
    p.add_argument("--draws", type=int, default=None, help="queries per family and segment (default: the split's)")
    p.add_argument("--limit-segments", type=int, default=None, help="first N evaluation segments (smoke runs)")
    p.add_argument("--limit-distractors", type=int, default=None)
    p.add_argument("--training-log", nargs="*", default=[], type=Path, help="CSV/JSON loss logs to plot")
    p.add_argument("--out", type=Path, default=Path("docs/near_duplicate_report.md"))
    p.add_argument("--figures-stem", default=None,
                   help="file-name stem of the figures and results JSON (default: near_duplicate_SPLIT)")
    p.add_argument("--timing-videos", type=int, default=6,
                   help="videos every method encodes from scratch, side by side, for the encode-time column (0: off)")
    p.add_argument("--no-crop-borders", action="store_true",
                   help="feature methods see whole frames (Encoder(crop_borders=False)); default: bars cropped")
    p.add_argument("--probes", nargs="*", default=[], choices=["grid9", "corners5"],
                   help="also score query-side multi-probe with these probe sets (first draw's queries)")
    p.add_argument("--probe-segments", type=int, default=None,
                   help="probe the queries of only the first N evaluation segments (cost)")
    p.add_argument("--no-progress", action="store_true")
    return p


def run(args: argparse.Namespace, command: str | None = None) -> list[Evaluated]:
    t0 = time.perf_counter()
    progress = not args.no_progress
    features.CROP_BORDERS = not args.no_crop_borders
    rs = dataset.build(args.split, edits_=args.edits, limit_segments=args.limit_segments,
                       limit_distractors=args.limit_distractors, draws=args.draws, progress=progress)
    evaluated, outcomes, chain_notes, probe_lines = run_methods(rs, args, progress=progress)
    timing_note = None
    if args.timing_videos > 0:
        timing_note = timing_pass(rs, evaluated, parse_models(args.models or []), outcomes, args.timing_videos,
                                  args.backbones)
    fig_dir = args.out.parent / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    stem = args.figures_stem or f"near_duplicate_{rs.split}"
    edits = list(dict.fromkeys(q.edit for q in rs.queries))
    figures = {"per_edit": f"figures/{stem}_per_edit_top1.png", "contact_sheet": f"figures/{stem}_edits.png"}
    per_edit_plot(evaluated, edits, args.out.parent / figures["per_edit"], args.bits[0])
    contact_sheet(rs, args.out.parent / figures["contact_sheet"])
    if args.training_log:
        figures["training"] = f"figures/{stem}_training.png"
        training_plot(args.training_log, args.out.parent / figures["training"])
    runtime = time.perf_counter() - t0
    command = command or "python -m benchmarks.retrieval.report " + " ".join(sys.argv[1:])
    write_report(args.out, rs, evaluated, outcomes, chain_notes, args, figures, runtime, command, timing_note,
                 probe_lines)
    results = {"split": rs.split, "runtime_s": runtime, "queries": [q.key for q in rs.queries],
               "database": [v.key for v in rs.database],
               "methods": {ev.result.name: {"family": ev.result.family, "code_size": ev.result.code_size,
                                            "encode_s": ev.result.encode_s, "overall": ev.overall,
                                            "per_edit": ev.per_edit, "per_group": ev.per_group,
                                            "seen": ev.seen, "unseen": ev.unseen, "ranks": ev.ranks.tolist(),
                                            "notes": ev.result.notes} for ev in evaluated},
               "peers": {o.peer: {"version": o.version, "python": peers.display_python(o.python), "error": o.error} for o in outcomes}}
    (fig_dir / f"{stem}_results.json").write_text(json.dumps(results, indent=1))
    log.info("wrote %s in %.0f s", args.out, runtime)
    return evaluated


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    evaluated = run(args, "python -m benchmarks.retrieval.report " + " ".join(argv if argv is not None else sys.argv[1:]))
    print("\n".join(main_table(evaluated)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
