"""The CDF factors of a network's noisy leaves laid out per parent, so that a sweep
(:mod:`~bayesdx.engine.sweep`) gathers those of all its cases' findings with one index per parent.

For parent ``p``, :meth:`LeafFactors.cdf` is an array ``(leaves, levels, states of p)``: row ``f`` holds
``C_i(t, x)`` of leaf ``f`` (``p`` its parent ``i``, see :class:`~bayesdx.engine.network.Decomposition`) and
ones where ``p`` is not a parent of ``f`` or past ``f``'s top level. A CDF is one at the top level, so
"the top level" is a factor of ones for every leaf: index ``levels - 1``.
"""

from __future__ import annotations

import numpy as np

from .network import CompiledNetwork

__all__ = ["LeafFactors"]


class LeafFactors:
    """Per parent, the CDF factors of the noisy leaves (with a leak) of ``net``.

    Parameters
    ----------
    net : CompiledNetwork

    Attributes
    ----------
    rows : dict of int to int
        Each noisy variable's row in the arrays.
    levels : int
        The most levels of any of them.
    leak : numpy.ndarray
        ``(rows, levels)``: each one's leak CDF ``L(t)``, one past its top level.
    """

    def __init__(self, net: CompiledNetwork) -> None:
        decs = net.decompositions or ()
        noisy = [v for v, d in enumerate(decs) if d is not None and d.leak_cdf is not None and d.order]
        self._net = net
        self.rows = {v: r for r, v in enumerate(noisy)}
        self.levels = max([len(decs[v].order) for v in noisy], default=1)  # type: ignore[union-attr]
        self.leak = np.ones((len(noisy), self.levels))
        self._of: dict[int, list[tuple[int, int]]] = {}  # parent -> (row, parent position) of its noisy children
        for r, v in enumerate(noisy):
            dec = decs[v]
            assert dec is not None
            assert dec.leak_cdf is not None
            self.leak[r, : dec.leak_cdf.size] = dec.leak_cdf
            for i, p in enumerate(net.parents[v]):
                self._of.setdefault(p, []).append((r, i))
        self._cdf: dict[int, np.ndarray] = {}
        self._parent: dict[int, np.ndarray] = {}

    def cdf(self, p: int) -> np.ndarray:
        """``(rows, levels, states of p)``: the CDF factors on ``p`` of every noisy variable, ones where none."""
        out = self._cdf.get(p)
        if out is None:
            decs = self._net.decompositions
            assert decs is not None
            out = np.ones((len(self.rows), self.levels, self._net.cards[p]))
            noisy = list(self.rows)
            for r, i in self._of.get(p, []):
                factor = decs[noisy[r]].factors[i]  # type: ignore[union-attr]
                out[r, : factor.shape[0]] = factor
            self._cdf[p] = out
        return out

    def is_parent(self, p: int) -> np.ndarray:
        """``(rows,)``: whether ``p`` is a parent of each noisy variable."""
        out = self._parent.get(p)
        if out is None:
            out = np.zeros(len(self.rows), dtype=bool)
            out[[r for r, _ in self._of.get(p, [])]] = True
            self._parent[p] = out
        return out
