"""How the paper's numbered captions, tables and figures render: in the HTML a caption above its table
and below its figure; in the PDF (nbconvert's LaTeX) each table or figure with its caption one float that
LaTeX places where it fits, as in a paper, with the float placement and the barrier before the references.
The report notebook shows its text, figures and tables through Paper; seglib.report computes what they show."""
from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd


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


# About how many characters of a table's cells 470 pt of text hold in one row at the report's table font:
# a table whose cells add up to more gets its row labels in a wrapping column and narrower gaps, so that
# it prints at (nearly) the text's size instead of being scaled down to 7-8 pt.
TEXT_WIDTH_CHARS = 95
WRAPPED_COLUMN_SEP = "4pt"  # LaTeX's default \tabcolsep is 6pt
# Rows of a table with wrapped labels set a little apart: at LaTeX's spacing a label's second line sat as
# close to the next row's first as to its own, and "iterations, batch" read as two rows of the protocol table.
WRAPPED_ROW_STRETCH = "1.25"


def index_name_in_header(frame: pd.DataFrame) -> pd.DataFrame:
    """The index's name moved into the header row above the index (where a paper's table names its first
    column), instead of pandas' own row of it under the header, which reads as a stray empty row."""
    names = list(frame.columns.names)
    if frame.index.nlevels > 1 or frame.index.name is None or names[-1] is not None:
        return frame
    return frame.rename_axis(index=None).rename_axis(columns=names[:-1] + [frame.index.name])


def _chars(values) -> int:
    return max((len(str(v)) for v in values), default=0)


def _column_chars(frame: pd.DataFrame, column) -> int:
    """A column's longest cell (floats as the report prints them, two decimals) or its bottom header."""
    values = frame[column].round(2) if pd.api.types.is_float_dtype(frame[column]) else frame[column]
    return max(_chars(values), len(str(column[-1] if isinstance(column, tuple) else column)))


def natural_chars(frame: pd.DataFrame) -> int:
    """A table's width in characters, roughly as LaTeX sets it: per column (the index too) its longest cell
    or bottom header, plus two for the gap between columns."""
    columns = [_chars([*frame.index, frame.index.name or ""])] + [_column_chars(frame, c) for c in frame.columns]
    return sum(columns) + 2 * len(columns)


def two_line_chars(labels) -> int:
    """The characters of the widest label broken at a space into two lines as evenly as it goes."""
    widest = 0
    for label in map(str, labels):
        words = label.split(" ")
        halves = [max(len(" ".join(words[:i])), len(" ".join(words[i:]))) for i in range(1, len(words))]
        widest = max(widest, min(halves, default=len(label)))
    return widest


def latex_fitting_the_page(frame: pd.DataFrame) -> str:
    """The frame as DataFrame.to_latex writes it (the styler.* options apply), its index name in the
    header, in an adjustbox no wider than the text (nbconvert's LaTeX template loads adjustbox and array).
    A table wider than the text in characters first gets its row labels wrapped onto two lines (a ragged
    paragraph column as wide as the widest label's longer half), narrower column gaps and rows set a little
    apart; only what is still too wide is scaled down."""
    wide = frame.index.nlevels == 1 and not pd.api.types.is_numeric_dtype(frame.index) and \
        natural_chars(frame) > TEXT_WIDTH_CHARS
    frame = index_name_in_header(frame)
    if not wide:
        return "\\begin{adjustbox}{max width=\\linewidth}\n" + frame.to_latex() + "\\end{adjustbox}\n"
    label = f">{{\\raggedright\\arraybackslash}}p{{{0.5 * two_line_chars(frame.index):.1f}em}}"
    cells = "".join("r" if pd.api.types.is_numeric_dtype(frame[c]) else "l" for c in frame.columns)
    return (f"{{\\setlength{{\\tabcolsep}}{{{WRAPPED_COLUMN_SEP}}}\\renewcommand{{\\arraystretch}}{{{WRAPPED_ROW_STRETCH}}}"
            "\\begin{adjustbox}{max width=\\linewidth}\n"
            + frame.to_latex(column_format=label + cells) + "\\end{adjustbox}}\n")


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


def save_figure(fig, folder, name: str, dpi: int = 150) -> None:
    """A figure saved as folder/name (the folder made first), cropped to what is drawn; nothing without a
    folder (a notebook opened by hand only shows its figures)."""
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(folder) / name, dpi=dpi, bbox_inches="tight")


class Paper:
    """What the report notebook shows, in order: markdown text, and numbered figures and tables, each with
    its caption (in the PDF one float, so that LaTeX places them together where they fit); a figure is also
    saved under its name to figures_dir when one is given, and closed once shown."""

    def __init__(self, figures_dir=None):
        self.captions = Captions()
        self.figures_dir = Path(figures_dir) if figures_dir else None

    @staticmethod
    def text(markdown: str) -> None:
        from IPython.display import Markdown, display

        display(Markdown(markdown))

    def figure(self, fig, name: str, caption: str) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        save_figure(fig, self.figures_dir, name)
        display(LatexOnly(FIGURE_BEGIN))
        display(fig)
        plt.close(fig)
        self.text(self.captions.figure(caption, name))
        display(LatexOnly(FIGURE_END))

    def table(self, frame: pd.DataFrame, caption: str) -> None:
        from IPython.display import display

        display(CaptionedTable(self.captions.table(caption), frame))


FIGURE_BEGIN, FIGURE_END = "\\begin{figure}[htbp]\\centering", "\\end{figure}"
TABLE_BEGIN, TABLE_END = "\\begin{table}[htbp]", "\\end{table}"  # flush left, as the text's paragraphs
# LaTeX's defaults give a float taking half a page or more a page of its own (floatpagefraction 0.5) and
# keep text pages at least 20% text: half-page figures then stood alone on otherwise blank pages. A float
# page must now be 80% full; a figure may take up to 85% of a text page.
FLOAT_PLACEMENT = ("\\renewcommand{\\topfraction}{0.85}\\renewcommand{\\bottomfraction}{0.7}"
                   "\\renewcommand{\\textfraction}{0.1}\\renewcommand{\\floatpagefraction}{0.8}")
# The appendix begins on a page of its own, as a paper's does: its heading stood alone at the foot of the
# references' last page while its table, too tall for the rest of that page, floated to the next.
NEW_PAGE = "\\clearpage"


def when_floats_wait(command: str) -> str:
    """LaTeX that runs `command` only when a float is still waiting for its place (LaTeX's \\@deferlist)."""
    return f"\\makeatletter\\ifx\\@deferlist\\@empty\\else{command}\\fi\\makeatother"


# A figure still waiting for its place when the references begin (Figure 7 printed between two pages of
# references) is put out first: a new page only when one is waiting (as placeins' \FloatBarrier does,
# without a package nbconvert's template lacks).
FLOAT_BARRIER = when_floats_wait(NEW_PAGE)
# Before the conclusion, a softer barrier: a new page when a float waits, on whose top LaTeX puts the waiting
# floats (a float page only when they fill 80% of it) and the text runs on below them; \clearpage there had
# put Table 14 alone on a page, two thirds of it blank.
FLOATS_FIRST = when_floats_wait("\\newpage")
# The references in a smaller type, as a paper sets them: at the report's body size their last two entries
# spilled onto a page of their own before the appendix's new page.
SMALL_BEGIN, SMALL_END = "\\begingroup\\small", "\\par\\endgroup"
