"""Where a drawn figure's texts lie: inside the figure, and off other axes."""

import matplotlib.text
from matplotlib.figure import Figure


def drawn_texts(fig: Figure) -> list[matplotlib.text.Text]:
    """Every visible, non-empty text of `fig` after drawing it (titles, labels, tick labels, notes)."""
    fig.canvas.draw()
    return [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]


def texts_outside(fig: Figure) -> list[str]:
    """The texts whose extent crosses the figure's edge (cut off in the saved image)."""
    box = fig.bbox
    renderer = fig.canvas.get_renderer()
    outside = []
    for text in drawn_texts(fig):
        extent = text.get_window_extent(renderer)
        if extent.x0 < box.x0 - 0.5 or extent.y0 < box.y0 - 0.5 or extent.x1 > box.x1 + 0.5 or extent.y1 > box.y1 + 0.5:
            outside.append(text.get_text())
    return outside


def texts_over_other_axes(fig: Figure) -> list[str]:
    """The texts that cover part of an axes they do not belong to (a title over the image above it, say)."""
    renderer = fig.canvas.get_renderer()
    covering = []
    for text in drawn_texts(fig):
        extent = text.get_window_extent(renderer)
        for ax in fig.axes:
            if ax is text.axes or not ax.get_visible() or not ax.axison:
                continue
            if extent.overlaps(ax.get_window_extent(renderer)):
                covering.append(text.get_text())
                break
    return covering
