"""Matplotlib figures for the notebooks and widgets, one submodule per topic.

This file holds what every figure shares: the colour-blind-safe palette
(Okabe & Ito, 2008) and a style readable on a projector (fonts >= 12 pt,
thick lines, light grid). Topic modules (``fl_dp_lab.plots.numdiff``,
``fl_dp_lab.plots.accounting``, ...) build figures and return the artists
they will update, so widgets can redraw in place instead of rebuilding.
"""

from __future__ import annotations

import io
import math
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from cycler import cycler
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.layout_engine import PlaceHolderLayoutEngine
from matplotlib.transforms import Bbox, BboxBase
from PIL import Image

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

__all__ = [
    "JPEG_QUALITY",
    "PALETTE",
    "STYLE",
    "animate",
    "course_style",
    "figure_jpeg",
    "figure_png",
    "new_figure",
    "remember_views",
    "set_limits",
    "snap_up",
    "sticky_limit",
]

#: Okabe-Ito colours, distinguishable with the common colour-vision deficiencies.
PALETTE: dict[str, str] = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "sky": "#56B4E9",
    "purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
}

#: The course's matplotlib rcParams: fonts >= 12 pt, thick lines, a light grid.
STYLE: dict[RcKeyType, Any] = {
    "font.size": 12,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "legend.fontsize": 11,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "lines.linewidth": 2.0,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "figure.constrained_layout.use": True,
    "axes.prop_cycle": cycler(color=list(PALETTE.values())),
}


#: JPEG quality of every dashboard frame (``figure_jpeg``). At 80, with full-resolution
#: colour, text and lines stay sharp at the figures' 100 dpi (ringing is a faint halo one
#: pixel wide) and a frame is about 40 % smaller than at 95: 65 kB instead of 106 kB for
#: notebook 01's 1120 x 420 px figure, 83 kB instead of 138 kB for notebook 04's
#: 1380 x 410 px one. That is less to send and to decode on each slider step.
JPEG_QUALITY = 80


def course_style() -> None:
    """Apply the course's figure style to matplotlib's global rcParams.

    Called once in each notebook's setup cell; figures built by this package
    pass the same settings explicitly, so they look right without it.
    """
    mpl.rcParams.update(STYLE)


def new_figure(
    nrows: int = 1, ncols: int = 1, *, width: float = 6.4, height: float = 4.0, **kwargs: Any
) -> tuple[plt.Figure, Any]:
    """A figure in the course style: ``(fig, axes)`` like ``plt.subplots``.

    ``width``/``height`` are per panel, in inches.
    """
    with mpl.rc_context(STYLE):
        figure = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), **kwargs)
        # The first figure of a session resolves the backend, and Jupyter's inline backend
        # turns interactive mode on then; leaving the context would turn it off again, and
        # later figures would no longer show at the end of their cell.
        interactive = mpl.is_interactive()
    mpl.interactive(interactive)
    return figure


#: Mantissas ``snap_up`` rounds to: fine enough that a curve fills most of its panel.
_SNAPS = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def snap_up(value: float) -> float:
    """The smallest of 1, 1.5, 2, 3, 4, 5, 6, 8 times a power of ten that is >= ``value``.

    Dashboards set axis limits to snapped values, so most slider steps keep the axes
    (and ``figure_png`` redraws only the moving curves) while the curve still fills
    most of its panel.

    >>> snap_up(4.2), snap_up(0.031), snap_up(8.0), snap_up(0.0)
    (5.0, 0.04, 8.0, 0.0)
    """
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"value must be finite and >= 0, got {value!r}")
    if value == 0:
        return 0.0
    power = 10.0 ** math.floor(math.log10(value))
    for mantissa in _SNAPS:
        snapped = float(f"{mantissa * power:.12g}")  # 3 * 0.01 is 0.030000000000000002
        if snapped >= value * (1 - 1e-12):
            return snapped
    return 10.0 * power


def sticky_limit(current: float, needed: float, *, fill: float = 0.6) -> float:
    """An axis limit that moves only when it must: ``current`` while ``needed`` fits it well.

    Keeps ``current`` while ``fill * current <= needed <= current`` (the data reaches at
    least ``fill`` of the way to the limit), else returns ``snap_up(needed)``. A slider
    step then rarely changes the axes, and the figure redraws only its moving curves.

    >>> sticky_limit(5.0, 4.2), sticky_limit(5.0, 5.5), sticky_limit(5.0, 2.0)
    (5.0, 6.0, 2.0)
    """
    if not 0.0 < fill <= 1.0:
        raise ValueError(f"fill must be in (0, 1], got {fill!r}")
    if math.isfinite(current) and current > 0 and fill * current <= needed <= current:
        return current
    return snap_up(needed)


def set_limits(
    ax: plt.Axes,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
) -> None:
    """Set an axes' limits only where they change (equal limits set again still mark the
    figure stale, and ``figure_png`` would redraw all of it)."""
    if xlim is not None and tuple(ax.get_xlim()) != tuple(xlim):
        ax.set_xlim(xlim)
    if ylim is not None and tuple(ax.get_ylim()) != tuple(ylim):
        ax.set_ylim(ylim)


class _Blit:
    """What ``figure_png`` keeps of a figure whose moving artists ``animate`` named."""

    def __init__(self, artists: list[mpl.artist.Artist]) -> None:
        self.artists = artists
        self.background: Any = None  # the canvas without the animated artists, once drawn
        # title -> (what it showed, the pixels of its box as drawn on this background)
        self.titles: dict[mpl.artist.Artist, tuple[tuple, Any]] = {}
        # view (``_view_key``) -> its background and slots, once ``remember_views`` asked
        self.views: dict[tuple, tuple[Any, Any]] | None = None
        # axes -> the part of the canvas only it draws in (``_axes_slots``), or None
        self.slots: dict[mpl.axes.Axes, Bbox] | None = None


_BLITS: weakref.WeakKeyDictionary[mpl.figure.Figure, _Blit] = weakref.WeakKeyDictionary()


def animate(fig: plt.Figure, artists: Iterable[mpl.artist.Artist]) -> None:
    """Name the artists a dashboard moves; ``figure_png``/``figure_jpeg`` then redraw only those.

    The rest of the figure (axes, ticks, labels, titles, legends, static lines) is drawn
    once and kept as a bitmap; each render pastes it back and draws the named artists on
    top, in their axes' order and by zorder (a legend named here is drawn over the
    curves; one left out stays under them). The static part is drawn again whenever
    matplotlib marks the figure stale: a change of axis limits, a title text, an artist
    added or removed; in a figure whose layout is fixed, a change inside some axes
    (their limits, say) redraws only those axes on the kept bitmap (``_draw_stale_axes``).
    Animated artists do not mark it stale (matplotlib's own rule), so moving them with
    ``set_data``, ``set_text``, ``set_visible`` ... costs only their drawing. ``animate``
    may be called again to add artists.

    >>> fig, ax = new_figure(width=2.0, height=1.0)
    >>> (line,) = ax.plot([0, 1], [0, 1])
    >>> animate(fig, [line])
    >>> first = figure_png(fig); line.set_ydata([1, 0]); second = figure_png(fig)
    >>> first != second
    True
    """
    if not isinstance(fig, mpl.figure.Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    artists = list(artists)
    for artist in artists:
        if not isinstance(artist, mpl.artist.Artist) or artist.get_figure(root=True) is not fig:
            raise ValueError(f"artists must be artists of fig, got {artist!r}")
        artist.set_animated(True)
    blit = _BLITS.setdefault(fig, _Blit([]))
    blit.artists += [a for a in artists if a not in blit.artists]
    blit.background = None


def remember_views(fig: plt.Figure, show: Callable[[Any], object], values: Iterable[Any]) -> None:
    """Draw the static background of every view ``show(value)`` leads to, once, and keep them.

    For a dashboard whose figure (with its moving artists named by ``animate``, its
    layout fixed, as ``fl_dp_lab.widgets._output.freeze_layout`` leaves it) changes its
    static part only through its axes' limits and scales and which artists are
    visible: ``show`` moves the figure to a slider value, and is called here for each of
    ``values`` (the slider's stops). Each new view's background is drawn now and kept;
    later renders that land on a kept view paste it instead of drawing the figure again,
    so a slider step that moves an axis costs no more than one that does not. A view is
    told apart by each axes' position, limits and scales and the visibility of each of
    its artists (``_view_key``): anything else a dashboard changes in its static part
    would be shown from a stale background. ``show`` is left at the last of ``values``.

    >>> fig, ax = new_figure(width=2.0, height=1.0, layout="none")
    >>> (line,) = ax.plot([0, 1], [0, 1])
    >>> animate(fig, [line])
    >>> def show(top): ax.set_ylim(0, top); line.set_ydata([0, top])
    >>> remember_views(fig, show, [1, 2, 2, 1])
    >>> len(_BLITS[fig].views)
    2
    """
    blit = _BLITS.get(fig)
    if blit is None:
        raise ValueError("fig has no moving artists: call animate(fig, artists) first")
    engine = fig.get_layout_engine()
    if engine is not None and not isinstance(engine, PlaceHolderLayoutEngine):
        # each drawing would move the axes, and no view would be found again
        raise ValueError(
            f"fig must have a fixed layout, got a {type(engine).__name__}: lay it out once "
            "and set_layout_engine('none')"
        )
    if blit.views is None:
        blit.views = {}
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    for value in values:
        show(value)
        if blit.background is None or fig.stale:
            _refresh_background(canvas, fig, blit)  # a new view: only its changed axes drawn


def _view_key(fig: plt.Figure, canvas: FigureCanvasAgg) -> tuple:
    """What tells one view of a figure's static part from another (see ``remember_views``)."""
    return (
        canvas.get_width_height(physical=True),
        tuple(
            (
                tuple(ax.get_position().bounds), tuple(ax.get_xlim()), tuple(ax.get_ylim()),
                ax.get_xscale(), ax.get_yscale(), ax.get_visible(),
                tuple(child.get_visible() for child in ax.get_children()
                      if not child.get_animated()),
            )
            for ax in fig.axes
        ),
        tuple(child.get_visible() for child in fig.get_children() if not child.get_animated()),
    )  # fmt: skip


def _draw_blit(canvas: FigureCanvasAgg, fig: plt.Figure, blit: _Blit) -> None:
    """Paste the static background (drawing it first if stale), then the animated artists.

    A stale background is pasted from a remembered view (``remember_views``), else has
    only its changed axes redrawn (``_draw_stale_axes``), else is drawn anew.

    An animated title (an axes' title or the figure's suptitle) that shows what it
    showed in the last two frames is pasted as the pixels it drew then: rendering its
    glyphs again costs more than all of a dashboard's moving lines. Only when the
    pixels are sure to be the same: the background is the one they were drawn on,
    the title's box meets no axes and no other title, and every other moving
    artist is clipped to its axes, so nothing else is drawn inside that box.
    """
    blit.artists = [a for a in blit.artists if a.get_figure(root=True) is fig]  # drop removed
    if blit.background is None or fig.stale:
        _refresh_background(canvas, fig, blit)
    else:
        canvas.restore_region(blit.background)
    renderer = canvas.get_renderer()
    axes = list(dict.fromkeys(a.axes for a in blit.artists))
    visible = sorted(
        (a for a in blit.artists if a.get_visible()),
        key=lambda a: (a.axes is None, axes.index(a.axes), a.get_zorder()),
    )
    titles = _titles(fig)
    reusable = all(a in titles or (a.axes is not None and a.get_clip_on()) for a in visible)
    shown = tuple(t for t in visible if t in titles)  # part of each title's state: its neighbours
    for artist in visible:
        if not (reusable and artist in titles):
            artist.draw(renderer)
            continue
        state = (_text_state(artist), shown)
        kept_state, pixels = blit.titles.get(artist, (None, None))
        if kept_state == state and pixels is not None:
            canvas.restore_region(pixels)
            continue
        artist.draw(renderer)
        # keep the pixels of a title drawn twice in a row the same (one that changes on
        # every frame is not worth measuring)
        box = _title_box(artist, renderer, fig, shown) if kept_state == state else None
        blit.titles[artist] = (state, None if box is None else canvas.copy_from_bbox(box))


def _refresh_background(canvas: FigureCanvasAgg, fig: plt.Figure, blit: _Blit) -> None:
    """Bring the kept background up to date, and leave it on the canvas."""
    views, key = blit.views, _view_key(fig, canvas) if blit.views is not None else ()
    kept, slots = (None, None) if views is None else views.get(key, (None, None))
    if kept is None:
        if not _draw_stale_axes(canvas, fig, blit):
            canvas.draw()  # skips animated artists
            blit.slots = _axes_slots(fig, canvas.get_renderer(), blit.slots)
        kept = canvas.copy_from_bbox(fig.bbox)
        if views is not None:
            views[key] = (kept, blit.slots)
    else:
        canvas.restore_region(kept)
        blit.slots = slots
        _unstale(fig)  # the static part is this view's, as drawn before
    if kept is not blit.background:
        blit.background = kept
        blit.titles.clear()


def _draw_stale_axes(canvas: FigureCanvasAgg, fig: plt.Figure, blit: _Blit) -> bool:
    """Redraw only the axes that changed on the kept background; False where it cannot.

    A slider step that moves one panel's limits then costs that panel's drawing, not the
    whole figure's. Each changed axes is drawn on its slot of the canvas, cleared to the
    figure's colour (``_axes_slots``): only when nothing but axes changed, every axes has
    a slot, and the changed axes still fit theirs once drawn (tick labels can grow).
    """
    slots = blit.slots
    if blit.background is None or slots is None or set(slots) != set(fig.axes):
        return False
    stale = [ax for ax in fig.axes if ax.stale]
    others = [c for c in fig.get_children() if c not in slots and not c.get_animated()]
    if not stale or any(c.stale for c in others):
        return False
    canvas.restore_region(blit.background)
    renderer = canvas.get_renderer()
    pixels = np.asarray(canvas.buffer_rgba())
    height = pixels.shape[0]
    colour = np.round(255 * np.asarray(mpl.colors.to_rgba(fig.patch.get_facecolor())))
    for ax in stale:
        x0, y0, x1, y1 = (int(round(v)) for v in slots[ax].extents)
        pixels[height - y1 : height - y0, x0:x1] = colour.astype(np.uint8)
        ax.draw(renderer)  # skips animated artists
    if not all(_inside(ax.get_tightbbox(renderer), slots[ax], fig.bbox) for ax in stale):
        return False  # a caller's full drawing replaces what was drawn here
    _unstale(fig)
    return True


def _unstale(fig: plt.Figure) -> None:
    """Mark the figure and its axes drawn (measuring an axes' box marks it stale again)."""
    for ax in fig.axes:
        ax.stale = False
    fig.stale = False


def _inside(box: BboxBase | None, slot: BboxBase, canvas: BboxBase) -> bool:
    """Whether ``box`` (cut to the canvas) keeps a pixel away from the slot's inner edges."""
    if box is None:
        return False
    box = Bbox.intersection(box, canvas) or box
    return (
        (slot.x0 + 1 <= box.x0 or slot.x0 <= canvas.x0 == box.x0)
        and (box.x1 <= slot.x1 - 1 or box.x1 == canvas.x1 <= slot.x1)
        and (slot.y0 + 1 <= box.y0 or slot.y0 <= canvas.y0 == box.y0)
        and (box.y1 <= slot.y1 - 1 or box.y1 == canvas.y1 <= slot.y1)
    )


def _axes_slots(
    fig: plt.Figure, renderer: Any, kept: dict[mpl.axes.Axes, Bbox] | None = None
) -> dict[mpl.axes.Axes, Bbox] | None:
    """Per axes, a box of the canvas no other static artist draws in; None if there is none.

    Each axes' drawn box (``get_tightbbox``: ticks, labels, legend, title) is cut from the
    others' and from the figure's own static artists halfway across the gap between them
    (at least 4 pixels wide); the slots of a fixed layout are the panels with their
    decorations and margins. None for a figure whose layout moves its axes, that is not
    opaque, or whose axes' boxes come closer than that. The ``kept`` slots stay while
    every axes still fits its own: slots cut when a panel's tick labels were narrow
    would leave it no room to grow back.
    """
    engine = fig.get_layout_engine()
    if engine is not None and not isinstance(engine, PlaceHolderLayoutEngine):
        return None
    if mpl.colors.to_rgba(fig.patch.get_facecolor())[3] != 1 or not fig.axes:
        return None
    boxes = {ax: ax.get_tightbbox(renderer) for ax in fig.axes}
    statics = [
        c.get_window_extent(renderer)
        for c in fig.get_children()
        if c not in boxes and c is not fig.patch and c.get_visible() and not c.get_animated()
    ]
    statics = [box for box in statics if box.width > 0 and box.height > 0]
    _unstale(fig)
    if (
        kept is not None
        and set(kept) == set(boxes)
        and all(_inside(box, kept[ax], fig.bbox) for ax, box in boxes.items())
        and not any(box.overlaps(slot) for box in statics for slot in kept.values())
    ):
        return kept
    slots = {}
    for ax, box in boxes.items():
        if box is None or not ax.get_visible():
            return None
        x0, y0, x1, y1 = fig.bbox.extents
        for other in [b for a, b in boxes.items() if a is not ax] + statics:
            if other is None:
                return None
            if other.x0 >= box.x1 + 4:
                x1 = min(x1, (box.x1 + other.x0) / 2)
            elif other.x1 <= box.x0 - 4:
                x0 = max(x0, (other.x1 + box.x0) / 2)
            elif other.y0 >= box.y1 + 4:
                y1 = min(y1, (box.y1 + other.y0) / 2)
            elif other.y1 <= box.y0 - 4:
                y0 = max(y0, (other.y1 + box.y0) / 2)
            else:
                return None
        slots[ax] = Bbox.from_extents(x0, y0, x1, y1)
    _unstale(fig)
    return slots


def _titles(fig: plt.Figure) -> set[mpl.text.Text]:
    """The figure's suptitle and every axes' three titles."""
    # an axes' own Text children that are not in ``ax.texts`` are exactly its three titles;
    # a suptitle is one of the figure's texts
    found = {
        child
        for ax in fig.axes
        for child in ax.get_children()
        if isinstance(child, mpl.text.Text) and child not in ax.texts
    }
    return found | set(fig.texts)


def _text_state(text: mpl.text.Text) -> tuple:
    """Everything a title's pixels depend on, once its figure's layout is fixed."""
    return (
        text.get_text(), text.get_unitless_position(), text.get_color(), text.get_alpha(),
        text.get_fontproperties(), text.get_rotation(), text.get_horizontalalignment(),
        text.get_verticalalignment(), text.get_transform().get_matrix().tobytes(),
        getattr(text.get_figure(root=True), "dpi", None),
    )  # fmt: skip


def _title_box(
    title: mpl.text.Text, renderer: Any, fig: plt.Figure, others: Iterable[mpl.artist.Artist]
) -> Any:
    """The title's drawn box with a margin, or None where its pixels could hold anything else."""
    box = title.get_window_extent(renderer).padded(3)
    if (
        box.width <= 6
        or not fig.bbox.contains(box.x0, box.y0)
        or not fig.bbox.contains(box.x1, box.y1)
    ):
        return None
    if any(box.overlaps(ax.bbox) for ax in fig.axes):
        return None
    if any(box.overlaps(t.get_window_extent(renderer)) for t in others if t is not title):
        return None
    return box


def _render(fig: plt.Figure) -> Image.Image:
    """The figure drawn once on an Agg canvas (only its animated artists, if it has them)."""
    if not isinstance(fig, mpl.figure.Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    blit = _BLITS.get(fig)
    if blit is None:
        canvas.draw()
    else:
        _draw_blit(canvas, fig, blit)
    width, height = canvas.get_width_height(physical=True)
    image = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    return image.convert("RGB")


def figure_png(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes at its own size and dpi, drawn once.

    Jupyter's inline backend saves figures with ``bbox_inches="tight"`` and
    ``savefig`` draws a figure with a layout engine once more before printing;
    printing straight from an Agg canvas draws it once. A figure that ``plt.close``
    left without a drawing canvas is given an Agg one. A figure whose moving artists
    ``animate`` named redraws only those while the rest of it is unchanged.

    >>> fig, ax = new_figure(width=2.0, height=1.0)
    >>> figure_png(fig)[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    buffer = io.BytesIO()
    # zlib level 1: a third of the encode time of the default level, files ~20 % larger
    _render(fig).save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


def figure_jpeg(fig: plt.Figure, *, quality: int | None = None) -> bytes:
    """The figure as JPEG bytes, drawn like ``figure_png``: what a dashboard sends per redraw.

    ``quality`` defaults to ``JPEG_QUALITY``, the one setting every dashboard uses. Colour
    is kept at full resolution (no chroma subsampling), so thin coloured lines and text
    keep their colour edges.

    >>> fig, ax = new_figure(width=2.0, height=1.0)
    >>> figure_jpeg(fig)[:3] == b"\\xff\\xd8\\xff"
    True
    """
    if quality is None:
        quality = JPEG_QUALITY
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer in [1, 100], got {quality!r}")
    buffer = io.BytesIO()
    _render(fig).save(buffer, format="jpeg", quality=quality, subsampling=0)
    return buffer.getvalue()
