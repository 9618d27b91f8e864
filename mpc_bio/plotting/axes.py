"""The figure and axes a plot function draws on: the caller's or new ones."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["figure_axes"]


def figure_axes(ax, figsize: tuple[float, float], shape: tuple[int, int] | None = None, **subplots):
    """(figure, axes) of ``ax`` (one Axes, or with ``shape`` as many Axes as rows x columns, returned
    as a flat array), or of a new figure of ``figsize`` (inches) when ``ax`` is None (``subplots``:
    further options of :func:`matplotlib.pyplot.subplots`, e.g. ``sharex=True``)."""
    if shape is None:
        if ax is None:
            _, ax = plt.subplots(figsize=figsize)
        return ax.figure, ax
    if ax is None:
        fig, axs = plt.subplots(*shape, figsize=figsize, constrained_layout=True, **subplots)
        return fig, np.ravel(axs)
    axs = np.ravel(np.atleast_1d(ax))
    if axs.size != shape[0] * shape[1]:
        raise ValueError(f"This figure needs {shape[0] * shape[1]} axes; got {axs.size}.")
    return axs[0].figure, axs
