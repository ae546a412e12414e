"""Reading the matrices back out of the playground's equations.

Every matrix the page typesets is ``\\htmlData{matrix=<tag>}{\\underset{R\\times C}{
\\begin{bmatrix}...\\end{bmatrix}}}``, and KaTeX keeps each equation's TeX source in a MathML
``<annotation encoding="application/x-tex">``, so the numbers read here are the ones shown.
"""

from __future__ import annotations

import re

import numpy as np
from numpy.typing import NDArray

MATRIX = re.compile(
    r"\\htmlData\{matrix=(?P<tag>[^}]+)\}\{\\underset\{(?P<rows>\d+)\\times (?P<cols>\d+)\}"
    r"\{\\begin\{bmatrix\}(?P<body>.*?)\\end\{bmatrix\}\}\}",
    re.S,
)
TIMES_TEN = re.compile(r"^(?P<mantissa>-?[\d.]+)\{\\times\}10\^\{(?P<exponent>-?\d+)\}$")


def number(cell: str) -> float:
    """A cell as the page writes it: 0.1234, -5, or 1.234{\\times}10^{-5}."""
    cell = cell.strip()
    match = TIMES_TEN.match(cell)
    if match:
        return float(match["mantissa"]) * 10.0 ** int(match["exponent"])
    return float(cell)


def matrices(tex: str) -> list[tuple[str, NDArray[np.float64]]]:
    """Every tagged matrix of an equation, in order; an elided one (dots) is refused."""
    found = []
    for match in MATRIX.finditer(tex):
        body = match["body"]
        assert "dots" not in body, f"{match['tag']} is elided; use a smaller network or batch"
        rows = [[number(cell) for cell in row.split("&")] for row in body.split("\\\\")]
        value = np.array(rows, dtype=np.float64)
        assert value.shape == (int(match["rows"]), int(match["cols"])), match["tag"]
        found.append((match["tag"], value))
    return found


def shown(value: NDArray[np.float64]) -> NDArray[np.float64]:
    """What four significant digits make of ``value``, as the page rounds."""
    return np.array([float(f"{x:.4g}") for x in value.ravel()]).reshape(value.shape)
