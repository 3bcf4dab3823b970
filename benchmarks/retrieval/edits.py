"""Edit families of the re-upload benchmark: ffmpeg filter graphs with per-query random parameters.

Written apart from the training augmentation (train/reupload.py) on purpose: other code (ffmpeg
filters, not OpenCV / albumentations), other parameter ranges, and two whole families that
training never uses ("unseen"):

- `pip`: the clip shrunk to 30-55 % of the width inside ANOTHER video (picture-in-picture);
- `rotate`: rotation by 4-15 degrees (black or coloured fill, or cropped to the rotated
  picture) or a perspective (keystone) warp.

Every query draws its family's parameters from a generator seeded by (segment key, family,
draw), so the set is deterministic and a query's recipe is in its file name's hash. Parameters
of the seen families are kept outside or at the edges of the training ranges where a range
exists (e.g. training zoom keeps 45-100 % of the area, the benchmark zoom 55-80 %; training
JPEG quality 8-35 and H.264 CRF 30-44, the benchmark 60-200 kbit/s at a quarter to half size).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import numpy as np

SEEN = ("reframe", "zoom", "mirror", "colour", "grey", "noise_blur", "quality", "overlay", "temporal")
UNSEEN = ("pip", "rotate")
FAMILIES = SEEN + UNSEEN

EVEN = "trunc({}/2)*2"  # libx264 with yuv420p needs even sizes
CAP = "scale='trunc(min(iw,320)/2)*2':-2"  # every query at most 320 px wide (a small upload size; keeps 1000 queries affordable on 2 cores)


@dataclass(frozen=True)
class Recipe:
    """How to make one query from its source segment (and, for some, a second video).

    `graph` is an ffmpeg -filter_complex graph from [0:v] (the segment, and [1:v] the other
    video when `other` is set) to [out]. `shift` cuts the segment this many seconds earlier,
    `other` = (asset name, start s) of the second input.
    """

    family: str
    description: str
    graph: str
    encode: tuple[str, ...] = ("-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-pix_fmt", "yuv420p")
    shift: float = 0.0
    other: tuple[str, float] | None = None
    other_duration: float | None = None


def rng_for(key: str, family: str, draw: int) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(key.encode()), zlib.crc32(family.encode()), draw])


def _u(rng, lo, hi, nd=2) -> float:
    return round(float(rng.uniform(lo, hi)), nd)


def _chain(*filters: str) -> str:
    return "[0:v]" + ",".join(f for f in filters if f) + f",{CAP}[out]"


def reframe(rng, **_) -> Recipe:
    aspect = float(rng.choice([9 / 16, 1.0, 4 / 5, 2.35]))
    pos = _u(rng, 0.0, 1.0)
    crop = (f"crop='{EVEN.format(f'min(iw,ih*{aspect:.4f})')}':'{EVEN.format(f'min(ih,iw/{aspect:.4f})')}':"
            f"'(iw-ow)*{pos}':'(ih-oh)*{pos}'")
    mode = rng.choice(["bare", "black", "blurfill"])
    desc = f"crop to aspect {aspect:.2f} at {pos:.2f}, {mode}"
    if mode == "bare":
        return Recipe("reframe", desc, _chain(crop))
    if mode == "black":  # back onto a 16:9 canvas with black bars (the bar crop's case)
        return Recipe("reframe", desc, _chain(crop, "pad='max(iw,ih*16/9)':'max(ih,iw*9/16)':(ow-iw)/2:(oh-ih)/2:black",
                                              f"scale={EVEN.format('iw')}:{EVEN.format('ih')}"))
    graph = (f"[0:v]split[a][b];[a]{crop}[fg];[b]scale=320:180,boxblur=10:2[bg];"
             f"[fg]scale=-2:180[fg2];[bg][fg2]overlay=(W-w)/2:0,{CAP}[out]")
    return Recipe("reframe", desc, graph)


def zoom(rng, **_) -> Recipe:
    side = _u(rng, 0.74, 0.9)  # 55-80 % of the area
    px, py = _u(rng, 0, 1), _u(rng, 0, 1)
    return Recipe("zoom", f"zoom: {side:.2f} of each side at ({px:.2f}, {py:.2f}), scaled back",
                  _chain(f"crop=iw*{side}:ih*{side}:(iw-ow)*{px}:(ih-oh)*{py}", "scale=iw/" + f"{side}:-2"))


def mirror(rng, **_) -> Recipe:
    trim = _u(rng, 0.0, 0.06)
    return Recipe("mirror", f"horizontal flip, {trim:.2f} trimmed off each side",
                  _chain("hflip", f"crop=iw*(1-2*{trim}):ih*(1-2*{trim})"))


def colour(rng, **_) -> Recipe:
    kind = rng.choice(["eq", "hue", "curves", "lut"])
    if kind == "eq":
        b, c, s, g = _u(rng, -0.2, 0.2), _u(rng, 0.6, 1.6), _u(rng, 0.3, 2.0), _u(rng, 0.6, 1.7)
        return Recipe("colour", f"eq brightness {b} contrast {c} saturation {s} gamma {g}",
                      _chain(f"eq=brightness={b}:contrast={c}:saturation={s}:gamma={g}"))
    if kind == "hue":
        h, s = int(rng.integers(-60, 61)), _u(rng, 0.5, 1.8)
        return Recipe("colour", f"hue rotated {h} deg, saturation x{s}", _chain(f"hue=h={h}:s={s}"))
    if kind == "curves":
        preset = rng.choice(["vintage", "cross_process", "lighter", "darker", "strong_contrast", "medium_contrast"])
        return Recipe("colour", f"curves preset {preset}", _chain(f"curves=preset={preset}"))
    r, g, b = (_u(rng, 0.7, 1.3) for _ in range(3))
    return Recipe("colour", f"colour balance r{r} g{g} b{b}", _chain(f"colorchannelmixer=rr={r}:gg={g}:bb={b}"))


def grey(rng, **_) -> Recipe:
    if rng.random() < 0.5:
        return Recipe("grey", "greyscale", _chain("format=gray", "format=yuv420p"))
    return Recipe("grey", "sepia", _chain("colorchannelmixer=.393:.769:.189:0:.349:.686:.168:0:.272:.534:.131"))


def noise_blur(rng, **_) -> Recipe:
    kind = rng.choice(["noise", "gblur", "boxblur", "unsharp"])
    if kind == "noise":
        a = int(rng.integers(15, 40))
        return Recipe("noise_blur", f"temporal noise strength {a}", _chain(f"noise=alls={a}:allf=t+u"))
    if kind == "gblur":
        s = _u(rng, 2.5, 6.0)
        return Recipe("noise_blur", f"Gaussian blur sigma {s}", _chain(f"gblur=sigma={s}"))
    if kind == "boxblur":
        r = int(rng.integers(3, 8))
        return Recipe("noise_blur", f"box blur radius {r}", _chain(f"boxblur={r}:1"))
    a = _u(rng, 1.0, 2.5)
    return Recipe("noise_blur", f"unsharp amount {a}", _chain(f"unsharp=7:7:{a}"))


def quality(rng, **_) -> Recipe:
    scale = _u(rng, 0.4, 0.6)
    kbps = int(rng.integers(40, 120))
    fps = int(rng.choice([0, 10, 15]))
    enc = ("-c:v", "libx264", "-preset", "superfast", "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k",
           "-bufsize", f"{2 * kbps}k", "-pix_fmt", "yuv420p")
    scale_f = f"scale={EVEN.format(f'iw*{scale}')}:{EVEN.format(f'ih*{scale}')}"
    return Recipe("quality", f"{scale:.2f} size, {kbps} kbit/s" + (f", {fps} fps" if fps else ""),
                  _chain(scale_f, f"fps={fps}" if fps else ""), enc)


def overlay(rng, font: str, other: tuple[str, float], **_) -> Recipe:
    kind = rng.choice(["caption", "logo", "border"])
    if kind == "caption":
        size, y = _u(rng, 0.06, 0.12), _u(rng, 0.05, 0.85)
        text = rng.choice(["FULL MOVIE HD", "subscribe for more", "(c) 2026 reupload", "LIVE", "best moments 4K"])
        return Recipe("overlay", f"caption '{text}' at height {size} y {y}",
                      _chain(f"drawtext=fontfile={font}:text='{text}':fontsize=h*{size}:fontcolor=yellow:"
                             f"borderw=2:x=(w-text_w)*{_u(rng, 0, 1)}:y=h*{y}"))
    if kind == "logo":
        w, x, y, a = _u(rng, 0.12, 0.22), _u(rng, 0, 1), _u(rng, 0, 1), _u(rng, 0.6, 1.0)
        graph = (f"[1:v]scale=iw*{w}*2:-2,format=yuva420p,colorchannelmixer=aa={a}[logo];"
                 f"[0:v][logo]overlay=(W-w)*{x}:(H-h)*{y}:shortest=1,{CAP}[out]")
        return Recipe("overlay", f"a {w:.2f}-wide patch of another video at ({x}, {y}), opacity {a}", graph,
                      other=other)
    t = _u(rng, 0.04, 0.09)
    colour = rng.choice(["white", "red", "0x3050a0", "0x202020"])
    return Recipe("overlay", f"{colour} border {t} of the height",
                  _chain(f"pad=iw+2*trunc(ih*{t}):ih+2*trunc(ih*{t}):trunc(ih*{t}):trunc(ih*{t}):{colour}"))


def temporal(rng, other: tuple[str, float], **_) -> Recipe:
    kind = rng.choice(["speed", "shift", "intro", "drop"])
    if kind == "speed":
        f = float(rng.choice([0.75, 0.8, 1.3, 1.5]))
        return Recipe("temporal", f"played at {f}x", _chain(f"setpts=PTS/{f}"))
    if kind == "shift":
        s = _u(rng, 1.0, 2.4)  # under half the 5 s hop of dev: the original stays the closest window
        return Recipe("temporal", f"cut {s} s earlier", _chain("null"), shift=s)
    if kind == "intro":
        d = _u(rng, 1.5, 3.0)
        graph = (f"[1:v]scale=320:180,setsar=1,fps=25[i];[0:v]scale=320:180,setsar=1,fps=25[m];"
                 f"[i][m]concat=n=2:v=1:a=0,{CAP}[out]")
        return Recipe("temporal", f"{d} s intro of another video", graph, other=other, other_duration=d)
    k = int(rng.integers(2, 4))
    return Recipe("temporal", f"every {k}th frame dropped", _chain(f"select='not(eq(mod(n\\,{k})\\,0))'", "setpts=N/FRAME_RATE/TB"))


def pip(rng, other: tuple[str, float], **_) -> Recipe:
    w, x, y = _u(rng, 0.3, 0.55), _u(rng, 0, 1), _u(rng, 0, 1)
    graph = (f"[1:v]scale=320:180,setsar=1[bg];[0:v]scale=320*{w}:-2[fg];"
             f"[bg][fg]overlay=(W-w)*{x}:(H-h)*{y}:shortest=1,{CAP}[out]")
    return Recipe("pip", f"shrunk to {w:.2f} of the width inside another video at ({x}, {y})", graph, other=other)


PIP_PLACEMENT = re.compile(r"shrunk to ([\d.]+) of the width inside another video at \(([\d.]+), ([\d.]+)\)")


def pip_placement(description: str) -> tuple[float, float, float]:
    """(width fraction, x, y) of a `pip` query, read back from its description (the drawn
    values are rounded to 2 decimals, so the description is exact)."""
    found = PIP_PLACEMENT.fullmatch(description)
    if found is None:
        raise ValueError(f"not a picture-in-picture description: {description!r}")
    w, x, y = map(float, found.groups())
    return w, x, y


def rotate(rng, **_) -> Recipe:
    kind = rng.choice(["black", "colour", "crop", "perspective"])
    if kind == "perspective":
        d = _u(rng, 0.06, 0.14)
        return Recipe("rotate", f"keystone, top edge narrowed by {d} per side",
                      _chain(f"perspective=x0=W*{d}:y0=0:x1=W*(1-{d}):y1=0:x2=0:y2=H:x3=W:y3=H:sense=destination"))
    a = _u(rng, 4, 15, 1) * float(rng.choice([-1, 1]))
    rad = f"{a}*PI/180"
    if kind == "crop":  # the largest upright rectangle inside the rotated picture, roughly
        k = f"(1-abs(sin({rad}))*1.8)"
        return Recipe("rotate", f"rotated {a} deg, cropped inside",
                      _chain(f"rotate={rad}", f"crop=iw*{k}:ih*{k}"))
    fill = "black" if kind == "black" else rng.choice(["white", "0x406080"])
    return Recipe("rotate", f"rotated {a} deg, {fill} fill", _chain(f"rotate={rad}:fillcolor={fill}"))


MAKERS = {"reframe": reframe, "zoom": zoom, "mirror": mirror, "colour": colour, "grey": grey,
          "noise_blur": noise_blur, "quality": quality, "overlay": overlay, "temporal": temporal,
          "pip": pip, "rotate": rotate}


def draw(key: str, family: str, index: int, *, font: str, other: tuple[str, float]) -> Recipe:
    """The `index`-th query recipe of `family` for the segment `key` (deterministic)."""
    return MAKERS[family](rng_for(key, family, index), font=font, other=other)
