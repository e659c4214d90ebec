"""How the paper's numbered captions, tables and figures render: in the HTML a caption above its table
and below its figure; in the PDF (nbconvert's LaTeX) each table or figure with its caption one float that
LaTeX places where it fits, as in a paper, with the float placement and the barrier before the references.
The report notebook displays these objects; seglib.report computes what they show."""
from __future__ import annotations

import html
import re

import pandas as pd

from .results import index_name_in_header, latex_fitting_the_page


class Captions:
    """Numbered captions in order of appearance: caps.table('...') -> '**Table 3.** ...'; a figure given a
    name is referred to by number (caps.ref(name) -> 'Figure 2'): in the PDF a figure floats, so "the
    figure above" may not be above."""

    def __init__(self):
        self.counts = {"Table": 0, "Figure": 0}
        self.names: dict[str, int] = {}

    def _next(self, kind: str, text: str) -> str:
        self.counts[kind] += 1
        return f"**{kind} {self.counts[kind]}.** {text}"

    def table(self, text: str) -> str:
        return self._next("Table", text)

    def figure(self, text: str, name: str | None = None) -> str:
        caption = self._next("Figure", text)
        if name:
            self.names[name] = self.counts["Figure"]
        return caption

    def ref(self, name: str, otherwise: str = "the prediction figure") -> str:
        """'Figure N' for a figure shown under that name, else `otherwise` (the figure was not drawn)."""
        return f"Figure {self.names[name]}" if name in self.names else otherwise


def _inline(text: str, latex: bool) -> str:
    """A caption's markdown (plain text with **bold**) as LaTeX or HTML, its special characters escaped."""
    if latex:
        specials = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
        text = "".join(specials.get(c, c) for c in text).replace("--", "-{}-")  # an option, not an en dash
    else:
        text = html.escape(text)
    return re.sub(r"\*\*(.+?)\*\*", r"\\textbf{\1}" if latex else r"<strong>\1</strong>", text)


class CaptionedTable:
    """A numbered caption and its table as one output. In the PDF they are one float (TABLE_BEGIN), as in
    a paper: a page cannot fall between a table and its caption, and a table too tall for the rest of its
    page moves to where it fits while the text runs on, instead of leaving that rest blank. The HTML shows
    the caption above the table."""

    def __init__(self, caption: str, frame: pd.DataFrame):
        self.caption, self.frame = caption, frame

    def _repr_html_(self) -> str:
        return f"<p>{_inline(self.caption, latex=False)}</p>\n" + index_name_in_header(self.frame)._repr_html_()

    def _repr_latex_(self) -> str:
        return (TABLE_BEGIN + "\n\\noindent " + _inline(self.caption, latex=True) + "\\par\\medskip\n"
                + latex_fitting_the_page(self.frame) + TABLE_END + "\n")


class LatexOnly:
    """Raw LaTeX for the PDF and nothing in the HTML: the float that holds a figure and its caption begins
    (FIGURE_BEGIN) before the image and ends (FIGURE_END) after the caption, so that LaTeX places them
    together where they fit and lets the text run on, as a paper does, instead of leaving the rest of a
    page blank before a figure too tall for it."""

    def __init__(self, latex: str):
        self.latex = latex

    def _repr_html_(self) -> str:
        return ""

    def _repr_latex_(self) -> str:
        return self.latex


FIGURE_BEGIN, FIGURE_END = "\\begin{figure}[htbp]\\centering", "\\end{figure}"
TABLE_BEGIN, TABLE_END = "\\begin{table}[htbp]", "\\end{table}"  # flush left, as the text's paragraphs
# LaTeX's defaults give a float taking half a page or more a page of its own (floatpagefraction 0.5) and
# keep text pages at least 20% text: half-page figures then stood alone on otherwise blank pages. A float
# page must now be 80% full; a figure may take up to 85% of a text page.
FLOAT_PLACEMENT = ("\\renewcommand{\\topfraction}{0.85}\\renewcommand{\\bottomfraction}{0.7}"
                   "\\renewcommand{\\textfraction}{0.1}\\renewcommand{\\floatpagefraction}{0.8}")
# A figure still waiting for its place when the references begin (Figure 7 printed between two pages of
# references) is put out first: a new page only when one is waiting (as placeins' \FloatBarrier does,
# without a package nbconvert's template lacks).
FLOAT_BARRIER = "\\makeatletter\\ifx\\@deferlist\\@empty\\else\\clearpage\\fi\\makeatother"
