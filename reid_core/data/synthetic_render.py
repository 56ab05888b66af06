"""Rendering of the embedded synthetic re-ID dataset: people, cameras, backgrounds, occluders.

One image = a camera-specific background + one person (identity, viewpoint, walking pose) placed
in a loose "detector" box + optional occluders, then seen through the camera (colour cast,
gamma, saturation, haze, blur, sensor noise). Every image also yields a person foreground mask and
17 COCO keypoints that follow the drawn body.

Coordinate systems:

* **person units** ``(u, v)``: ``v`` goes down from the top of the head (0) to the soles (1);
  ``u`` is horizontal, positive towards the image's right; one unit = the person's height.
* **image pixels** ``(x, y)``: continuous, pixel ``i`` covers ``[i, i+1)``. A person with height
  ``ph`` pixels whose head top is at ``top`` and centre line at ``cx`` maps
  ``x = cx + u * ph``, ``y = top + v * ph``.

The person layer is drawn with PIL at ``SUPERSAMPLE`` x resolution and box-downsampled, which
gives anti-aliased edges and a soft coverage (alpha) that is thresholded into the mask.

Randomness: nothing here owns a global RNG. Identities and cameras are sampled from the
generators handed in; :func:`render_image` derives its generators from ``(seed, image index)`` and
``(seed, track)`` so an image is the same whatever process renders it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

RGB = tuple[int, int, int]

SUPERSAMPLE = 2  # person / occluder layers are drawn at 2x and box-downsampled

# RNG stream ids: each random decision family gets its own stream so that adding images or
# identities never shifts the randomness of the others.
STREAM_PLAN, STREAM_IDENTITY, STREAM_CAMERA, STREAM_TRACK, STREAM_IMAGE = range(5)
# Streams of the sets added in format 2 (``gt_bbox/`` and the partial query sets). They are
# disjoint from the five above, so the original splits stay byte-identical, and each set has
# its own plan / track / image streams, so resizing one set never changes another.
(STREAM_GT_BBOX_PLAN, STREAM_GT_BBOX_IMAGE,
 STREAM_PREID_PLAN, STREAM_PREID_TRACK, STREAM_PREID_IMAGE,
 STREAM_PILIDS_PLAN, STREAM_PILIDS_TRACK, STREAM_PILIDS_IMAGE) = range(5, 13)

NOSE, L_EYE, R_EYE, L_EAR, R_EAR, L_SH, R_SH, L_EL, R_EL, L_WR, R_WR, L_HIP, R_HIP, \
    L_KNEE, R_KNEE, L_ANK, R_ANK = range(17)  # fmt: skip

# "left" / "right": the person walks towards the image's left / right (a side view).
VIEWS: tuple[str, ...] = ("front", "back", "left", "right")
JUNK_KINDS: tuple[str, ...] = ("offcentre", "zoom", "occluded", "tiny")
# Partial probes: one large occluder hides the lower part of the body ("occlude_low": a car, a
# low wall, a counter) or one side of it ("occlude_side": a wall edge, a door frame), as in the
# occluded images of Partial-REID / Partial-iLIDS.
PARTIAL_KINDS: tuple[str, ...] = ("occlude_low", "occlude_side")
# Whole-body gallery images of the partial sets: never occluded.
CLEAN_KIND = "clean"
BACKGROUND_STYLES: tuple[str, ...] = ("gradient", "rectangles", "lines", "texture", "bricks",
                                      "tiles")

# ---------------------------------------------------------------------------------------------
# Palettes: deliberately small, and weighted like real clothing, so that many identities share
# each colour and no single attribute identifies a person.
# ---------------------------------------------------------------------------------------------

Palette = tuple[tuple[str, RGB, float], ...]  # (name, colour, sampling weight)

CLOTH: Palette = (
    ("black", (28, 28, 32), 0.14), ("white", (232, 232, 226), 0.11), ("grey", (128, 128, 130), 0.09),
    ("darkgrey", (72, 72, 78), 0.07), ("navy", (32, 42, 92), 0.08), ("blue", (52, 98, 186), 0.07),
    ("lightblue", (140, 178, 222), 0.05), ("red", (186, 38, 44), 0.07), ("green", (44, 118, 62), 0.05),
    ("olive", (112, 110, 54), 0.03), ("yellow", (226, 196, 56), 0.04), ("brown", (110, 72, 42), 0.04),
    ("beige", (204, 184, 146), 0.05), ("pink", (228, 150, 176), 0.04), ("purple", (108, 62, 138), 0.03),
    ("orange", (228, 122, 44), 0.04),
)  # fmt: skip
TROUSERS: Palette = (
    ("black", (30, 30, 34), 0.26), ("jeans", (48, 66, 112), 0.2), ("darkgrey", (70, 70, 76), 0.12),
    ("grey", (128, 128, 130), 0.07), ("beige", (196, 176, 136), 0.1), ("brown", (104, 70, 44), 0.07),
    ("white", (226, 226, 220), 0.05), ("lightjeans", (112, 140, 180), 0.06),
    ("olive", (96, 98, 52), 0.04), ("red", (170, 40, 46), 0.03),
)  # fmt: skip
HAIR: Palette = (
    ("black", (22, 20, 20), 0.45), ("darkbrown", (58, 38, 26), 0.25), ("brown", (104, 70, 40), 0.12),
    ("blonde", (200, 168, 104), 0.1), ("grey", (160, 156, 150), 0.05), ("auburn", (132, 58, 32), 0.03),
)  # fmt: skip
SKIN: Palette = (
    ("light", (236, 200, 172), 0.3), ("medium", (210, 164, 126), 0.3), ("tan", (176, 124, 88), 0.2),
    ("brown", (124, 84, 58), 0.12), ("dark", (84, 56, 40), 0.08),
)  # fmt: skip
SHOES: Palette = (
    ("black", (24, 24, 26), 0.35), ("white", (236, 236, 232), 0.3), ("brown", (96, 62, 36), 0.15),
    ("grey", (120, 120, 124), 0.1), ("red", (180, 40, 40), 0.05), ("blue", (50, 80, 170), 0.05),
)  # fmt: skip
BAGS: Palette = (
    ("black", (26, 26, 30), 0.35), ("brown", (102, 66, 40), 0.2), ("navy", (34, 44, 94), 0.12),
    ("grey", (118, 118, 122), 0.1), ("red", (176, 40, 44), 0.08), ("beige", (196, 176, 136), 0.08),
    ("green", (50, 110, 62), 0.07),
)  # fmt: skip
BACKGROUND: Palette = (
    ("asphalt", (92, 92, 96), 1.0), ("concrete", (160, 156, 148), 1.0), ("brick", (150, 82, 62), 1.0),
    ("grass", (84, 120, 60), 1.0), ("sand", (190, 170, 130), 1.0), ("glass", (110, 140, 160), 1.0),
    ("wood", (130, 96, 62), 1.0), ("white", (214, 214, 208), 1.0), ("darkgreen", (40, 70, 44), 1.0),
    ("slate", (70, 80, 96), 1.0), ("rust", (160, 100, 60), 1.0), ("tile", (180, 176, 160), 1.0),
)  # fmt: skip
CARS: Palette = (
    ("silver", (178, 180, 184), 1.0), ("black", (30, 30, 34), 1.0), ("white", (230, 230, 228), 1.0),
    ("red", (160, 30, 30), 1.0), ("blue", (40, 60, 130), 1.0), ("grey", (96, 98, 102), 1.0),
)  # fmt: skip

# Per-camera colour casts (channel gains), assigned to cameras by a seeded permutation. They are
# strong on purpose: raw colour matching across cameras must be unreliable.
CASTS: tuple[tuple[float, float, float], ...] = (
    (1.28, 1.0, 0.7),   # sodium / warm
    (0.74, 0.96, 1.32),  # shade / blue
    (0.84, 1.22, 0.84),  # fluorescent / green
    (1.18, 0.8, 1.14),   # magenta
    (1.0, 1.0, 1.0),     # neutral
    (1.12, 1.06, 0.86),  # slightly warm
)


def _pick(rng: np.random.Generator, palette: Palette, exclude: str | None = None) -> tuple[str, RGB]:
    """Draw ``(name, colour)`` from a weighted palette, optionally excluding one name."""
    entries = [e for e in palette if e[0] != exclude]
    w = np.array([e[2] for e in entries], dtype=float)
    name, colour, _ = entries[int(rng.choice(len(entries), p=w / w.sum()))]
    return name, colour


def _jitter(rng: np.random.Generator, colour: RGB, sd: float = 10.0) -> RGB:
    """The palette colour with a small per-instance shift (clothes of 'the same' colour differ)."""
    c = np.clip(np.asarray(colour, dtype=float) + rng.normal(0.0, sd, 3), 0, 255)
    return (int(c[0]), int(c[1]), int(c[2]))


# ---------------------------------------------------------------------------------------------
# Identities and cameras
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """What one person looks like. Colours are RGB 0..255; lengths are in person units.

    ``height`` is relative (1 = average); in a tight detector crop height is normalised away, so
    it shows as a slimmer (tall) or broader (short) silhouette: widths are divided by it.
    """

    skin: RGB
    hair: RGB
    long_hair: bool
    upper: RGB
    upper_pattern: str  # solid | hstripes | vstripes | checks | logo
    upper_second: RGB  # stripe / check / logo colour
    pattern_period: float  # stripe / check period, person units
    long_sleeves: bool
    lower: RGB
    lower_type: str  # trousers | shorts | skirt
    shoes: RGB
    carry: str  # none | backpack | handbag
    carry_colour: RGB
    bag_side: str  # the person's own "left" / "right" (handbag side)
    height: float  # 0.9 .. 1.1
    shoulder: float  # shoulder width / height, 0.2 .. 0.27
    leg: float  # hip-to-sole length / height, 0.46 .. 0.53
    head: float  # head height / height, 0.115 .. 0.135


UPPER_PATTERNS = (("solid", 0.42), ("hstripes", 0.16), ("vstripes", 0.1), ("checks", 0.12),
                  ("logo", 0.2))
LOWER_TYPES = (("trousers", 0.62), ("shorts", 0.2), ("skirt", 0.18))
CARRY = (("none", 0.5), ("backpack", 0.3), ("handbag", 0.2))


def _choice(rng: np.random.Generator, table: Sequence[tuple[str, float]]) -> str:
    w = np.array([p for _, p in table])
    return table[int(rng.choice(len(table), p=w / w.sum()))][0]


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw one person's appearance from the shared attribute distribution."""
    upper_name, upper = _pick(rng, CLOTH)
    pattern = _choice(rng, UPPER_PATTERNS)
    _, second = _pick(rng, CLOTH, exclude=upper_name)
    lower_type = _choice(rng, LOWER_TYPES)
    _, lower = _pick(rng, TROUSERS if lower_type == "trousers" else CLOTH)
    carry = _choice(rng, CARRY)
    return Identity(
        skin=_jitter(rng, _pick(rng, SKIN)[1], 6),
        hair=_jitter(rng, _pick(rng, HAIR)[1], 6),
        long_hair=bool(rng.random() < 0.35),
        upper=_jitter(rng, upper),
        upper_pattern=pattern,
        upper_second=_jitter(rng, second),
        pattern_period=float(rng.uniform(0.035, 0.06)),
        long_sleeves=bool(rng.random() < 0.5),
        lower=_jitter(rng, lower),
        lower_type=lower_type,
        shoes=_jitter(rng, _pick(rng, SHOES)[1], 6),
        carry=carry,
        carry_colour=_jitter(rng, _pick(rng, BAGS)[1]),
        bag_side="left" if rng.random() < 0.5 else "right",
        height=float(rng.uniform(0.9, 1.1)),
        shoulder=float(rng.uniform(0.2, 0.27)),
        leg=float(rng.uniform(0.46, 0.53)),
        head=float(rng.uniform(0.115, 0.135)),
    )


@dataclass(frozen=True)
class Camera:
    """One camera's look. Gains/brightness multiply linear 0..1 colour; ``gamma`` is applied after.

    ``view_probs`` is over :data:`VIEWS`; ``scale_range`` is the person height as a fraction of
    the image height; ``jitter_x`` is the sd of the person centre as a fraction of the width;
    ``blur`` is a Gaussian radius in output pixels; ``noise`` an sd in 0..255 grey levels.
    """

    index: int
    gain: tuple[float, float, float]
    gamma: float
    brightness: float
    saturation: float
    haze: float
    haze_colour: RGB
    bg_style: str
    bg_colours: tuple[RGB, ...]
    horizon: float
    view_probs: tuple[float, float, float, float]
    scale_range: tuple[float, float]
    jitter_x: float
    occlusion_prob: float
    blur: float
    noise: float


def sample_cameras(seed: int, num_cameras: int, strength: float = 1.0) -> tuple[Camera, ...]:
    """The ``num_cameras`` (<= 6) cameras of a dataset, all distinct in cast, style and view.

    ``strength`` scales how far each camera's photometry (colour cast, gamma, brightness,
    saturation, haze) departs from a neutral camera: 0 = all cameras render colours alike,
    1 = the full casts of :data:`CASTS`. It is the main difficulty knob of the dataset.
    """
    rng = np.random.default_rng([seed, STREAM_CAMERA])
    casts = rng.permutation(len(CASTS))
    styles = rng.permutation(len(BACKGROUND_STYLES))
    cams = []
    for c in range(num_cameras):
        crng = np.random.default_rng([seed, STREAM_CAMERA, c + 1])
        gain = np.asarray(CASTS[casts[c % len(CASTS)]]) * crng.uniform(0.94, 1.06, 3)
        bg_idx = crng.choice(len(BACKGROUND), 4, replace=False)
        lo = float(crng.uniform(0.72, 0.86))
        toward = lambda v: float(1 + strength * (v - 1))  # noqa: E731  (neutral = 1)
        cams.append(Camera(
            index=c,
            gain=(toward(gain[0]), toward(gain[1]), toward(gain[2])),
            gamma=toward(crng.uniform(0.7, 1.45)),
            brightness=toward(crng.uniform(0.65, 1.25)),
            saturation=toward(crng.uniform(0.55, 1.25)),
            haze=float(strength * crng.uniform(0.0, 0.25)),
            haze_colour=_jitter(crng, (150, 150, 150), 25),
            bg_style=BACKGROUND_STYLES[styles[c % len(styles)]],
            bg_colours=tuple(_jitter(crng, BACKGROUND[i][1], 12) for i in bg_idx),
            horizon=float(crng.uniform(0.45, 0.75)),
            # Lopsided view preferences: cameras along a corridor mostly see fronts or backs.
            view_probs=tuple(float(p) for p in crng.dirichlet([1.2, 1.2, 0.7, 0.7])),
            scale_range=(lo, min(0.97, lo + float(crng.uniform(0.08, 0.14)))),
            jitter_x=float(crng.uniform(0.03, 0.08)),
            occlusion_prob=float(crng.uniform(0.1, 0.35)),
            blur=float(crng.uniform(0.0, 0.9)),
            noise=float(crng.uniform(1.5, 6.0)),
        ))  # fmt: skip
    return tuple(cams)


# ---------------------------------------------------------------------------------------------
# Body geometry (person units)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    """Where the body parts of one person are, in person units.

    ``kp``: (17, 2) COCO keypoints ``(u, v)``. ``self_vis``: (17,) COCO visibility before
    occluders (1 = hidden by the body itself, 2 = visible). ``facing``: +1 / -1 on side views
    (walking right / left), 0 on front / back views. ``lr_sign``: image direction of the person's
    own left on front (+1) / back (-1) views.
    """

    kp: np.ndarray
    self_vis: np.ndarray
    head_c: tuple[float, float]
    head_r: tuple[float, float]  # (horizontal, vertical) radii
    torso: tuple[tuple[float, float], ...]
    neck_v: float
    view: str
    facing: int
    lr_sign: int
    width: float  # limb width multiplier (1 / height)


def body_geometry(ident: Identity, view: str, phase: float, stride: float) -> Body:
    """Keypoints and outline of ``ident`` seen from ``view`` at walking ``phase`` (radians).

    ``stride`` in [0, 1] scales the leg / arm swing. Left/right follow the viewpoint: on a front
    view the person's left is on the image's right, on a back view on the image's left; on a side
    view the far side (the person's left when walking right) is marked self-occluded.
    """
    wm = 1.0 / ident.height
    hs = ident.head
    rv, rh = hs / 2, hs * 0.39
    head_v = rv + 0.004
    sh_v = hs + 0.055
    hip_v = 1.0 - ident.leg
    ank_v = 0.955
    thigh = (ank_v - hip_v) / 2
    shin = ank_v - hip_v - thigh
    upper_arm, forearm = 0.165, 0.15
    sw = ident.shoulder * wm
    hw = 0.72 * sw
    kp = np.zeros((17, 2))
    vis = np.full(17, 2, dtype=np.int64)
    s = math.sin(phase)
    if view in ("front", "back"):
        lr = 1 if view == "front" else -1
        facing = 0
        for side, sgn in (("l", lr), ("r", -lr)):
            # Legs swing in depth: seen from the front they only shorten / lift a little.
            swing = (s if side == "l" else -s) * stride
            lift = max(0.0, swing)
            sh = (sgn * sw / 2, sh_v)
            hip = (sgn * hw / 2, hip_v)
            knee = (sgn * hw / 2 * 0.95, hip_v + thigh * (1 - 0.08 * lift))
            ank = (sgn * hw / 2 * 0.85, knee[1] + shin * (1 - 0.15 * lift))
            arm_out = 0.07 + 0.03 * abs(swing)
            el = (sh[0] + sgn * upper_arm * math.sin(arm_out), sh_v + upper_arm * (1 - 0.06 * abs(swing)))
            wr = (el[0] + sgn * 0.01, el[1] + forearm * (1 - 0.2 * abs(swing)))
            idx = (L_SH, L_EL, L_WR, L_HIP, L_KNEE, L_ANK) if side == "l" else \
                (R_SH, R_EL, R_WR, R_HIP, R_KNEE, R_ANK)
            for i, p in zip(idx, (sh, el, wr, hip, knee, ank)):
                kp[i] = p
        kp[NOSE] = (0.0, head_v + 0.2 * rv)
        kp[L_EYE], kp[R_EYE] = (lr * 0.4 * rh, head_v - 0.05 * rv), (-lr * 0.4 * rh, head_v - 0.05 * rv)
        kp[L_EAR], kp[R_EAR] = (lr * 0.97 * rh, head_v + 0.05 * rv), (-lr * 0.97 * rh, head_v + 0.05 * rv)
        if view == "back":
            vis[[NOSE, L_EYE, R_EYE]] = 1  # the face is behind the head
        torso_half = (sw / 2 + 0.012, hw / 2 + 0.022)
        torso = ((-torso_half[0], sh_v - 0.015), (torso_half[0], sh_v - 0.015),
                 (torso_half[1], hip_v + 0.025), (-torso_half[1], hip_v + 0.025))
        head_c = (0.0, head_v)
    else:
        d = 1 if view == "right" else -1
        facing, lr = d, 0
        depth = 0.58 * sw
        amp_leg, amp_arm = 0.42 * stride, 0.35 * stride
        near, far = ("r", "l") if d == 1 else ("l", "r")
        for side in ("l", "r"):
            ph = phase if side == "l" else phase + math.pi
            sn = math.sin(ph)
            theta = amp_leg * sn  # thigh angle, positive = forward
            bend = 0.45 * max(0.0, -sn) * stride  # the trailing knee bends
            off = 0.012 * (1 if side == near else -1) * -d  # far limbs slightly behind
            sh = (off, sh_v)
            hip = (off * 0.5, hip_v)
            knee = (hip[0] + d * thigh * math.sin(theta), hip_v + thigh * math.cos(theta))
            ank = (knee[0] + d * shin * math.sin(theta - bend), knee[1] + shin * math.cos(theta - bend))
            alpha = -amp_arm * sn  # arms swing against the same-side leg
            el = (sh[0] + d * upper_arm * math.sin(alpha), sh_v + upper_arm * math.cos(alpha))
            wr = (el[0] + d * forearm * math.sin(alpha + 0.3), el[1] + forearm * math.cos(alpha + 0.3))
            idx = (L_SH, L_EL, L_WR, L_HIP, L_KNEE, L_ANK) if side == "l" else \
                (R_SH, R_EL, R_WR, R_HIP, R_KNEE, R_ANK)
            for i, p in zip(idx, (sh, el, wr, hip, knee, ank)):
                kp[i] = p
        head_c = (d * 0.012, head_v)
        kp[NOSE] = (head_c[0] + d * 1.0 * rh, head_v + 0.15 * rv)
        near_eye, far_eye = (R_EYE, L_EYE) if near == "r" else (L_EYE, R_EYE)
        near_ear, far_ear = (R_EAR, L_EAR) if near == "r" else (L_EAR, R_EAR)
        kp[near_eye] = (head_c[0] + d * 0.62 * rh, head_v - 0.05 * rv)
        kp[far_eye] = (head_c[0] + d * 0.8 * rh, head_v - 0.05 * rv)
        kp[near_ear] = (head_c[0] - d * 0.1 * rh, head_v + 0.05 * rv)
        kp[far_ear] = (head_c[0] - d * 0.05 * rh, head_v + 0.05 * rv)
        far_idx = [far_eye, far_ear] + ([L_SH, L_EL, L_WR, L_HIP] if far == "l" else
                                        [R_SH, R_EL, R_WR, R_HIP])
        vis[far_idx] = 1
        # The far leg is hidden behind the near one unless the stride separates them.
        fk, fa = (L_KNEE, L_ANK) if far == "l" else (R_KNEE, R_ANK)
        nk, na = (R_KNEE, R_ANK) if far == "l" else (L_KNEE, L_ANK)
        if abs(kp[fk, 0] - kp[nk, 0]) < 0.05:
            vis[fk] = 1
        if abs(kp[fa, 0] - kp[na, 0]) < 0.05:
            vis[fa] = 1
        lean = d * 0.012
        torso = ((-depth / 2 + lean, sh_v - 0.015), (depth / 2 + lean, sh_v - 0.015),
                 (depth / 2 * 0.92, hip_v + 0.025), (-depth / 2 * 0.92, hip_v + 0.025))
    return Body(kp=kp, self_vis=vis, head_c=head_c, head_r=(rh, rv), torso=torso,
                neck_v=hs, view=view, facing=facing, lr_sign=lr, width=wm)


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------


class Painter:
    """Draws in person units onto a supersampled RGB canvas and its coverage mask at once.

    ``origin`` is the canvas pixel of person point ``(u, v) = (0, 0)`` and ``scale`` the person
    height in canvas pixels.
    """

    def __init__(self, rgb: Image.Image, alpha: Image.Image, origin: tuple[float, float],
                 scale: float) -> None:
        self.rgb, self.alpha = rgb, alpha
        self.d_rgb, self.d_a = ImageDraw.Draw(rgb), ImageDraw.Draw(alpha)
        self.ox, self.oy = origin
        self.s = scale

    def xy(self, u: float, v: float) -> tuple[float, float]:
        return (self.ox + u * self.s, self.oy + v * self.s)

    def polygon(self, pts: Sequence[tuple[float, float]], colour: RGB) -> None:
        px = [self.xy(u, v) for u, v in pts]
        self.d_rgb.polygon(px, fill=colour)
        self.d_a.polygon(px, fill=255)

    def ellipse(self, c: tuple[float, float], r: tuple[float, float], colour: RGB) -> None:
        box = self._box(c, r)
        self.d_rgb.ellipse(box, fill=colour)
        self.d_a.ellipse(box, fill=255)

    def pieslice(self, c: tuple[float, float], r: tuple[float, float], start: float, end: float,
                 colour: RGB) -> None:
        """Ellipse sector; angles in degrees, clockwise from 3 o'clock (PIL convention)."""
        box = self._box(c, r)
        self.d_rgb.pieslice(box, start, end, fill=colour)
        self.d_a.pieslice(box, start, end, fill=255)

    def limb(self, pts: Sequence[tuple[float, float]], width: float, colour: RGB) -> None:
        """A thick polyline with round caps; ``width`` in person units."""
        px = [self.xy(u, v) for u, v in pts]
        w = max(1, int(round(width * self.s)))
        self.d_rgb.line(px, fill=colour, width=w, joint="curve")
        self.d_a.line(px, fill=255, width=w, joint="curve")
        r = w / 2
        for x, y in px:
            self.d_rgb.ellipse((x - r, y - r, x + r, y + r), fill=colour)
            self.d_a.ellipse((x - r, y - r, x + r, y + r), fill=255)

    def _box(self, c: tuple[float, float], r: tuple[float, float]) -> tuple[float, ...]:
        x, y = self.xy(*c)
        return (x - r[0] * self.s, y - r[1] * self.s, x + r[0] * self.s, y + r[1] * self.s)

    def patterned_polygon(self, pts: Sequence[tuple[float, float]], ident: Identity) -> None:
        """Fill ``pts`` with the identity's upper-body colour and pattern (stripes / checks)."""
        self.polygon(pts, ident.upper)
        if ident.upper_pattern not in ("hstripes", "vstripes", "checks"):
            return
        px = [self.xy(u, v) for u, v in pts]
        x0, y0 = (int(math.floor(min(p[0] for p in px))), int(math.floor(min(p[1] for p in px))))
        x1, y1 = (int(math.ceil(max(p[0] for p in px))) + 1, int(math.ceil(max(p[1] for p in px))) + 1)
        if x1 <= x0 or y1 <= y0:
            return
        period = ident.pattern_period * self.s
        # Stripe phase is anchored to the body (not the canvas) so it moves with the person.
        yy = (np.arange(y0, y1) - self.oy)[:, None] / period
        xx = (np.arange(x0, x1) - self.ox)[None, :] / period
        if ident.upper_pattern == "hstripes":
            on = np.broadcast_to((yy % 1.0) < 0.45, (y1 - y0, x1 - x0))
        elif ident.upper_pattern == "vstripes":
            on = np.broadcast_to((xx % 1.0) < 0.45, (y1 - y0, x1 - x0))
        else:
            on = ((yy % 1.0) < 0.5) ^ ((xx % 1.0) < 0.5)
        shape = Image.new("L", (x1 - x0, y1 - y0))
        ImageDraw.Draw(shape).polygon([(x - x0, y - y0) for x, y in px], fill=255)
        m = np.asarray(shape) & np.where(on, 255, 0).astype(np.uint8)
        self.rgb.paste(ident.upper_second, (x0, y0, x1, y1), Image.fromarray(m, "L"))


def _lerp(a: np.ndarray, b: np.ndarray, t: float) -> tuple[float, float]:
    return (float(a[0] + (b[0] - a[0]) * t), float(a[1] + (b[1] - a[1]) * t))


def draw_person(p: Painter, ident: Identity, body: Body) -> None:
    """Draw ``ident`` with pose ``body``; everything drawn (incl. carried objects) is 'person'.

    Drawing order is back to front, and depends on the view: a backpack is a patch over the
    torso from the back, two straps from the front, a box behind the torso from the side; a
    handbag hangs from the wrist on the person's own ``bag_side``; a logo shows only from the
    front.
    """
    kp, w = body.kp, body.width
    sides = {"l": (L_SH, L_EL, L_WR, L_HIP, L_KNEE, L_ANK),
             "r": (R_SH, R_EL, R_WR, R_HIP, R_KNEE, R_ANK)}
    if body.facing:
        near = "r" if body.facing == 1 else "l"
        far = "l" if near == "r" else "r"
        order_legs, order_arms_back, order_arms_front = (far, near), (far,), (near,)
    else:
        order_legs, order_arms_back, order_arms_front = ("l", "r"), (), ("l", "r")
    bag_side = "l" if ident.bag_side == "left" else "r"

    def leg(side: str) -> None:
        sh, el, wr, hip, knee, ank = (kp[i] for i in sides[side])
        sole = (ank[0] + 0.012 * body.facing, ank[1] + 0.028)
        if ident.lower_type == "trousers":
            p.limb([tuple(hip), tuple(knee)], 0.085 * w, ident.lower)
            p.limb([tuple(knee), tuple(ank)], 0.066 * w, ident.lower)
        else:
            p.limb([tuple(hip), tuple(knee)], 0.078 * w, ident.skin)
            p.limb([tuple(knee), tuple(ank)], 0.058 * w, ident.skin)
            if ident.lower_type == "shorts":
                p.limb([tuple(hip), _lerp(hip, knee, 0.6)], 0.09 * w, ident.lower)
        shoe_r = (0.034 + 0.014 * abs(body.facing), 0.02)
        p.ellipse(sole, shoe_r, ident.shoes)

    def arm(side: str) -> None:
        sh, el, wr = (kp[i] for i in sides[side][:3])
        if ident.long_sleeves:
            p.limb([tuple(sh), tuple(el), tuple(wr)], 0.052 * w, ident.upper)
        else:
            p.limb([tuple(el), tuple(wr)], 0.042 * w, ident.skin)
            p.limb([tuple(sh), _lerp(sh, el, 0.55)], 0.06 * w, ident.upper)
            p.limb([_lerp(sh, el, 0.5), tuple(el)], 0.044 * w, ident.skin)
        p.ellipse((float(wr[0]), float(wr[1]) + 0.012), (0.02, 0.022), ident.skin)

    def handbag(side: str) -> None:
        wr = kp[sides[side][2]]
        cx = float(wr[0]) + (0.0 if body.facing else 0.025 * np.sign(wr[0]))
        top = float(wr[1]) + 0.02
        p.limb([(float(wr[0]), float(wr[1])), (cx, top + 0.01)], 0.01, ident.carry_colour)
        p.polygon([(cx - 0.045, top), (cx + 0.045, top), (cx + 0.05, top + 0.085),
                   (cx - 0.05, top + 0.085)], ident.carry_colour)

    hip_l, hip_r = kp[L_HIP], kp[R_HIP]
    hip_v = float((hip_l[1] + hip_r[1]) / 2)
    knee_v = float((kp[L_KNEE][1] + kp[R_KNEE][1]) / 2)
    sh_v = float((kp[L_SH][1] + kp[R_SH][1]) / 2)
    torso_top = body.torso[0][1]

    for side in order_arms_back:
        if ident.carry == "handbag" and side == bag_side:
            handbag(side)
        arm(side)
    if body.facing and ident.carry == "backpack":
        back = -body.facing
        edge = body.torso[0][0] if back < 0 else body.torso[1][0]
        p.polygon([(edge, sh_v + 0.005), (edge + back * 0.085, sh_v + 0.02),
                   (edge + back * 0.09, sh_v + 0.2), (edge, sh_v + 0.22)], ident.carry_colour)
    for side in order_legs:
        leg(side)
    # Hip band so that trousers / shorts close at the crotch on front / back views.
    if ident.lower_type == "skirt":
        half = abs(body.torso[2][0] - body.torso[3][0]) / 2
        cu = (body.torso[2][0] + body.torso[3][0]) / 2
        flare = 0.05 + 0.03 * (not body.facing)
        p.polygon([(cu - half, hip_v - 0.015), (cu + half, hip_v - 0.015),
                   (cu + half + flare, knee_v + 0.005), (cu - half - flare, knee_v + 0.005)],
                  ident.lower)
    else:
        t2, t3 = body.torso[2], body.torso[3]
        p.polygon([(t3[0], hip_v - 0.015), (t2[0], hip_v - 0.015), (t2[0] * 0.8, hip_v + 0.06),
                   (t3[0] * 0.8, hip_v + 0.06)], ident.lower)
    p.patterned_polygon(body.torso, ident)
    if body.view == "front" and ident.upper_pattern == "logo":
        p.polygon([(-0.035, sh_v + 0.055), (0.035, sh_v + 0.055), (0.035, sh_v + 0.115),
                   (-0.035, sh_v + 0.115)], ident.upper_second)
    if ident.carry == "backpack" and body.view == "back":
        half = 0.4 * abs(body.torso[1][0] - body.torso[0][0])
        p.polygon([(-half, torso_top + 0.01), (half, torso_top + 0.01), (half * 1.05, sh_v + 0.23),
                   (-half * 1.05, sh_v + 0.23)], ident.carry_colour)
    elif ident.carry == "backpack" and body.view == "front":
        for sgn in (-1, 1):
            x = sgn * 0.3 * abs(body.torso[1][0] - body.torso[0][0])
            p.limb([(x, torso_top + 0.005), (x * 1.1, sh_v + 0.15)], 0.018, ident.carry_colour)
    elif ident.carry == "backpack":
        p.limb([(0.0, torso_top + 0.005), (-body.facing * 0.02, sh_v + 0.16)], 0.016,
               ident.carry_colour)
    for side in order_arms_front:
        arm(side)
        if ident.carry == "handbag" and side == bag_side:
            handbag(side)
    _draw_head(p, ident, body)


def _draw_head(p: Painter, ident: Identity, body: Body) -> None:
    """Neck, head and hair: face + hair cap from the front, all hair from the back."""
    (hu, hv), (rh, rv) = body.head_c, body.head_r
    p.limb([(hu * 0.5, body.neck_v - 0.01), (0.0, body.neck_v + 0.04)], 0.05 * body.width,
           ident.skin)
    if ident.long_hair and body.view != "front":
        back = -body.facing
        x0 = hu + back * 0.4 * rh if body.facing else hu
        p.polygon([(x0 - 0.8 * rh, hv), (x0 + 0.8 * rh, hv), (x0 + 0.85 * rh, hv + rv + 0.07),
                   (x0 - 0.85 * rh, hv + rv + 0.07)], ident.hair)
    if body.view == "back":
        p.ellipse((hu, hv), (rh, rv), ident.hair)
        return
    p.ellipse((hu, hv), (rh, rv), ident.skin)
    cap = (hu, hv - 0.004)
    big = (rh * 1.06, rv * 1.04)
    if body.view == "front":
        p.pieslice(cap, big, 180, 360, ident.hair)
        if ident.long_hair:
            for sgn in (-1, 1):
                p.limb([(hu + sgn * rh * 0.95, hv - 0.2 * rv), (hu + sgn * rh * 0.98, hv + rv + 0.05)],
                       0.028, ident.hair)
    elif body.facing == 1:
        p.pieslice(cap, big, 100, 360, ident.hair)  # hair over the back (left) half
    else:
        p.pieslice(cap, big, 180, 80, ident.hair)


# ---------------------------------------------------------------------------------------------
# Backgrounds
# ---------------------------------------------------------------------------------------------


def render_background(cam: Camera, track_rng: np.random.Generator, rng: np.random.Generator,
                      height: int, width: int) -> np.ndarray:
    """The camera's scene behind the person: (height, width, 3) float32 in 0..1.

    The layout comes from ``track_rng`` (consecutive frames of one track share their background)
    and the image only shifts it by a few pixels.
    """
    m = 4  # margin for the per-image shift
    H, W = height + 2 * m, width + 2 * m
    cols = [np.asarray(c, dtype=np.float32) / 255 for c in cam.bg_colours]
    hz = int(H * (cam.horizon + track_rng.uniform(-0.08, 0.08)))
    img = Image.new("RGB", (W, H), tuple(int(v) for v in cam.bg_colours[0]))
    d = ImageDraw.Draw(img)
    d.rectangle((0, hz, W, H), fill=cam.bg_colours[1])
    style = cam.bg_style
    if style == "rectangles":
        for _ in range(int(track_rng.integers(5, 12))):
            x0, y0 = track_rng.uniform(-10, W), track_rng.uniform(-10, hz)
            c = _jitter(track_rng, cam.bg_colours[int(track_rng.integers(0, 4))], 25)
            d.rectangle((x0, y0, x0 + track_rng.uniform(6, 30), y0 + track_rng.uniform(6, 40)), fill=c)
    elif style == "lines":
        for _ in range(int(track_rng.integers(8, 20))):
            c = _jitter(track_rng, cam.bg_colours[int(track_rng.integers(2, 4))], 20)
            pts = (track_rng.uniform(0, W), track_rng.uniform(0, H), track_rng.uniform(0, W),
                   track_rng.uniform(0, H))
            d.line(pts, fill=c, width=int(track_rng.integers(1, 3)))
    elif style == "bricks":
        bh = int(track_rng.integers(5, 9))
        for row, y in enumerate(range(0, hz, bh)):
            d.line((0, y, W, y), fill=cam.bg_colours[2], width=1)
            off = (row % 2) * 7
            for x in range(off, W, 14):
                d.line((x, y, x, min(y + bh, hz)), fill=cam.bg_colours[2], width=1)
    elif style == "tiles":
        y, step = hz, 3.0
        while y < H:  # floor lines get sparser towards the camera (cheap perspective)
            d.line((0, y, W, y), fill=cam.bg_colours[3], width=1)
            y += int(step)
            step *= 1.35
        vx = track_rng.uniform(0, W)
        for k in range(-6, 7):
            d.line((vx, hz, vx + k * 18, H), fill=cam.bg_colours[3], width=1)
    arr = np.asarray(img, dtype=np.float32) / 255
    if style in ("gradient", "texture"):
        # Low-frequency field upsampled to full size: a lit wall / foliage.
        gh, gw = (3, 2) if style == "gradient" else (12, 6)
        field = Image.fromarray((track_rng.random((gh, gw)) * 255).astype(np.uint8), "L")
        t = np.asarray(field.resize((W, H), Image.BILINEAR), dtype=np.float32)[..., None] / 255
        mix = cols[0] * (1 - t) + cols[2 if style == "texture" else 3] * t
        floor = np.arange(H)[:, None, None] >= hz
        arr = np.where(floor, arr * (0.85 + 0.3 * t), mix)
    # Fine texture so that flat regions are not perfectly flat.
    arr = arr + track_rng.normal(0, 0.025, (H, W, 1)).astype(np.float32)
    dy, dx = rng.integers(0, 2 * m + 1, 2)
    return np.clip(arr[dy:dy + height, dx:dx + width], 0, 1)


# ---------------------------------------------------------------------------------------------
# One image
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderJob:
    """Everything needed to render one image; plain data so it pickles to worker processes.

    ``index`` is the image's global index (seeds its RNG); ``camera`` is 0-based; ``track``
    identifies the (person, camera) track whose images share background and rough placement;
    ``kind`` is ``"person"``, one of :data:`JUNK_KINDS`, one of :data:`PARTIAL_KINDS` or
    :data:`CLEAN_KIND`. ``stream`` / ``track_stream`` name the RNG streams the image and track
    generators derive from; the defaults are those of the original splits, the format-2 sets
    use their own (see ``STREAM_GT_BBOX_IMAGE`` and below).
    """

    index: int
    identity: Identity
    camera: int
    view: str
    track: int
    kind: str = "person"
    stream: int = STREAM_IMAGE
    track_stream: int = STREAM_TRACK


@dataclass
class Rendered:
    """``image``: (H, W, 3) uint8 RGB. ``mask``: (H, W) uint8, 255 = person. ``keypoints``:
    (17, 3) float ``[x, y, v]`` in image pixels, COCO visibility (0 outside the image, then
    x = y = 0)."""

    image: np.ndarray
    mask: np.ndarray
    keypoints: np.ndarray


@dataclass(frozen=True)
class Placement:
    """The person in the output image: head top ``top`` and centre ``cx`` in pixels, height
    ``ph`` in pixels."""

    cx: float
    top: float
    ph: float


def place_person(kind: str, cam: Camera, track_rng: np.random.Generator,
                 rng: np.random.Generator, height: int, width: int) -> Placement:
    """A loose detector box: scale and position jitter per camera; junk kinds are bad boxes."""
    fill = track_rng.uniform(*cam.scale_range) + rng.normal(0, 0.015)
    cx = width / 2 + track_rng.normal(0, cam.jitter_x * width) + rng.normal(0, 0.02 * width)
    if kind == "zoom":  # a box on part of the body only (legs, torso or head)
        fill = rng.uniform(1.8, 3.0)
    elif kind == "tiny":  # a far too large box: the person is small, mostly background
        fill = rng.uniform(0.3, 0.45)
        cx = rng.uniform(0.2, 0.8) * width
    elif kind == "offcentre":  # the box caught only an edge of the person
        cx = width / 2 + (1 if rng.random() < 0.5 else -1) * rng.uniform(0.55, 0.85) * width
    ph = float(np.clip(fill, 0.25, 3.5)) * height
    if kind == "zoom":
        top = -rng.uniform(0.0, ph - height)
    else:
        top = (height - ph) * rng.uniform(0.25, 0.75) + rng.normal(0, 0.015 * height)
    return Placement(cx=float(cx), top=float(top), ph=float(ph))


def _draw_occluders(kind: str, cam: Camera, person: Placement, rng: np.random.Generator,
                    rgb: Image.Image, alpha: Image.Image, height: int, width: int) -> None:
    """Draw 0..2 occluders in front of the person on the supersampled occluder layer."""
    S = SUPERSAMPLE
    kinds: list[str] = []
    if kind == "occluded":  # junk: most of the person hidden
        kinds = ["bigcar", "pole"]
    elif kind in PARTIAL_KINDS:  # partial probes: one planned, large occluder
        kinds = [kind]
    elif kind == "person" and rng.random() < cam.occlusion_prob:
        kinds = [str(rng.choice(["pole", "car", "person"], p=[0.35, 0.35, 0.3]))]
    d_rgb, d_a = ImageDraw.Draw(rgb), ImageDraw.Draw(alpha)
    for k in kinds:
        if k == "pole":
            x = person.cx + rng.uniform(-0.2, 0.2) * person.ph * 0.3
            half = rng.uniform(0.03, 0.08) * width
            c = _jitter(rng, (90, 94, 100), 30)
            box = (S * (x - half), 0, S * (x + half), S * height)
            d_rgb.rectangle(box, fill=c)
            d_a.rectangle(box, fill=255)
        elif k in ("car", "bigcar"):
            frac = rng.uniform(0.2, 0.45) if k == "car" else rng.uniform(0.6, 0.8)
            y0 = height * (1 - frac)
            x0, x1 = (0.0, rng.uniform(0.5, 1.0) * width) if rng.random() < 0.5 else \
                (rng.uniform(0.0, 0.5) * width, float(width))
            c = _jitter(rng, _pick(rng, CARS)[1], 12)
            box = (S * x0, S * y0, S * x1, S * height)
            d_rgb.rectangle(box, fill=c)
            d_a.rectangle(box, fill=255)
            # A window band and a wheel make it read as a vehicle, not a wall.
            wy = y0 + 0.15 * frac * height
            d_rgb.rectangle((S * x0, S * wy, S * x1, S * (wy + 0.12 * frac * height)),
                            fill=_jitter(rng, (50, 60, 70), 10))
            wx = (x0 + x1) / 2 + rng.uniform(-0.3, 0.3) * (x1 - x0)
            r = 0.12 * width
            d_rgb.ellipse((S * (wx - r), S * (height - r), S * (wx + r), S * (height + r)),
                          fill=(20, 20, 22))
        elif k == "occlude_low":
            # Hides the lower 35-60 % of the person, across the whole width.
            y0 = person.top + person.ph * (1 - rng.uniform(0.35, 0.6))
            c = _jitter(rng, _pick(rng, CARS if rng.random() < 0.5 else BACKGROUND)[1], 15)
            box = (0, S * y0, S * width, S * height)
            d_rgb.rectangle(box, fill=c)
            d_a.rectangle(box, fill=255)
            d_rgb.line((0, S * y0, S * width, S * y0), fill=_jitter(rng, (40, 40, 44), 10),
                       width=S)  # an edge, so the occluder reads as an object in front
        elif k == "occlude_side":
            # Hides one side of the body from a vertical edge at or just past the body's centre
            # line, so that about half of the body stays visible.
            sgn = 1 if rng.random() < 0.5 else -1
            edge = person.cx + sgn * rng.uniform(0.0, 0.06) * person.ph
            c = _jitter(rng, _pick(rng, BACKGROUND)[1], 15)
            box = (S * edge, 0, S * width, S * height) if sgn > 0 else (0, 0, S * edge, S * height)
            d_rgb.rectangle(box, fill=c)
            d_a.rectangle(box, fill=255)
        else:  # another person partly in front
            other = sample_identity(rng)
            body = body_geometry(other, VIEWS[int(rng.integers(0, 4))], rng.uniform(0, 2 * math.pi),
                                 rng.uniform(0.5, 1.0))
            sgn = 1 if rng.random() < 0.5 else -1
            ph = person.ph * rng.uniform(0.95, 1.15)
            ocx = person.cx + sgn * rng.uniform(0.35, 0.6) * width
            top = person.top + rng.uniform(-0.05, 0.1) * height
            draw_person(Painter(rgb, alpha, (S * ocx, S * top), S * ph), other, body)


def _apply_camera(img: np.ndarray, cam: Camera, rng: np.random.Generator) -> np.ndarray:
    """Camera response on a (H, W, 3) float 0..1 image -> uint8: cast, gamma, saturation, haze,
    blur, noise. Each image gets a little illumination jitter on top of the camera's own look."""
    gain = np.asarray(cam.gain, dtype=np.float32) * rng.uniform(0.95, 1.05, 3).astype(np.float32)
    img = np.clip(img * gain * (cam.brightness * rng.uniform(0.88, 1.12)), 0, 1)
    img = img ** np.float32(cam.gamma)
    grey = img.mean(axis=2, keepdims=True)
    img = grey + np.float32(cam.saturation) * (img - grey)
    haze = np.asarray(cam.haze_colour, dtype=np.float32) / 255
    img = img * np.float32(1 - cam.haze) + haze * np.float32(cam.haze)
    out = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    radius = cam.blur * rng.uniform(0.7, 1.3)
    if radius > 0.15:
        out = out.filter(ImageFilter.GaussianBlur(radius))
    noisy = np.asarray(out, dtype=np.float32) + rng.normal(0, cam.noise, img.shape).astype(np.float32)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def render_image(job: RenderJob, cameras: Sequence[Camera], seed: int, height: int,
                 width: int) -> Rendered:
    """Render one image with its mask and keypoints. Pure function of its arguments."""
    cam = cameras[job.camera]
    rng = np.random.default_rng([seed, job.stream, job.index])
    track_rng = np.random.default_rng([seed, job.track_stream, job.track])
    place = place_person(job.kind, cam, track_rng, rng, height, width)
    bg = render_background(cam, track_rng, rng, height, width)
    body = body_geometry(job.identity, job.view, rng.uniform(0, 2 * math.pi), rng.uniform(0.4, 1.0))

    S = SUPERSAMPLE
    size = (width * S, height * S)
    p_rgb, p_a = Image.new("RGB", size), Image.new("L", size)
    draw_person(Painter(p_rgb, p_a, (S * place.cx, S * place.top), S * place.ph), job.identity, body)
    o_rgb, o_a = Image.new("RGB", size), Image.new("L", size)
    _draw_occluders(job.kind, cam, place, rng, o_rgb, o_a, height, width)

    person = np.asarray(p_rgb.reduce(S), dtype=np.float32) / 255
    pa = np.asarray(p_a.reduce(S), dtype=np.float32)[..., None] / 255
    occ = np.asarray(o_rgb.reduce(S), dtype=np.float32) / 255
    oa = np.asarray(o_a.reduce(S), dtype=np.float32)[..., None] / 255
    # Cylinder-like shading across the body with a random light side: flat fills look fake.
    x = (np.arange(width, dtype=np.float32) + 0.5 - place.cx) / max(place.ph * 0.15, 1.0)
    shade = np.clip(1 - 0.18 * x**2 + rng.uniform(-0.12, 0.12) * x, 0.6, 1.1)[None, :, None]
    img = bg * (1 - pa) + person * shade * pa
    img = img * (1 - oa) + occ * oa
    image = _apply_camera(img, cam, rng)
    mask = np.where((pa[..., 0] >= 0.5) & (oa[..., 0] < 0.5), 255, 0).astype(np.uint8)
    return Rendered(image=image, mask=mask, keypoints=_keypoints_px(body, place, oa[..., 0], height, width))


def _keypoints_px(body: Body, place: Placement, occ_alpha: np.ndarray, height: int,
                  width: int) -> np.ndarray:
    """(17, 3) ``[x, y, v]``: pixels + COCO visibility (occluder-covered visible points -> 1)."""
    xs = place.cx + body.kp[:, 0] * place.ph
    ys = place.top + body.kp[:, 1] * place.ph
    out = np.zeros((17, 3))
    for i in range(17):
        x, y = float(xs[i]), float(ys[i])
        if not (0 <= x < width and 0 <= y < height):
            continue  # COCO: not in the image -> [0, 0, 0]
        v = int(body.self_vis[i])
        if v == 2 and occ_alpha[int(y), int(x)] >= 0.5:
            v = 1
        out[i] = (x, y, v)
    return out


def crop_to_visible(image: np.ndarray, mask: np.ndarray, pad: int = 2) -> np.ndarray:
    """The partial-body crop of an occluded render, as the partial sets' probes are cut by hand.

    Args:
        image: (H, W, 3) uint8 render.
        mask: (H, W) uint8 visible-person mask (255 = person not hidden by an occluder).
        pad: margin in pixels kept around the mask's bounding box (clipped to the image).

    Returns:
        (h, w, 3) uint8 crop, h <= H and w <= W; the whole image if nothing is visible.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return image
    h, w = mask.shape
    y0, y1 = max(0, rows[0] - pad), min(h, rows[-1] + 1 + pad)
    x0, x1 = max(0, cols[0] - pad), min(w, cols[-1] + 1 + pad)
    return np.ascontiguousarray(image[y0:y1, x0:x1])
