"""`--report DIR`: one self-contained HTML page, its structure checked by parsing it
(the headless-browser check of the issue is not in this suite yet)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from click.testing import CliRunner

from hil.cli import main


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str, cls: str | None = None) -> list[dict[str, str | None]]:
        return [
            a for t, a in self.tags
            if t == tag and (cls is None or cls in (a.get("class") or "").split())
        ]  # fmt: skip


def test_report_has_a_section_per_run_with_timeline_checks_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = CliRunner().invoke(
        main,
        ["scenario", "run", "--builtin", "--hazard", "H5", "--report", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert f"report: {out / 'index.html'}" in result.output
    page = Page()
    page.feed((out / "index.html").read_text(encoding="utf-8"))
    runs = page.all("section", "run")
    assert len(runs) == 2  # h05 and h12 name H5
    assert len(page.all("table", "timeline")) == 2
    assert len(page.all("tr", "check")) >= 20
    assert len(page.all("svg", "plot")) == 3 * 2
    series = {a["data-series"] for a in page.all("polyline", "series")}
    assert series == {"belief", "truth", "programmed"}
    assert page.all("line", "fault")  # the stall on the time axis
    assert page.all("line", "alarm")  # MOTOR_STALL raised
    text = "".join(page.text)
    assert "h05-permanent-stall" in text
    assert "2 pass" in text


def test_report_is_self_contained_and_shows_failures(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'id = "bad"\ntitle = "<b>not markup</b>"\n[[steps]]\nat = "1d"\ndo = "stop"\n'
        'expect = { outcome = "applied" }\n',
        encoding="utf-8",
    )
    out = tmp_path / "r"
    result = CliRunner().invoke(main, ["scenario", "run", str(bad), "--report", str(out)])
    assert result.exit_code == 1
    html = (out / "index.html").read_text(encoding="utf-8")
    page = Page()
    page.feed(html)
    assert page.all("td", "failed")
    assert "&lt;b&gt;not markup&lt;/b&gt;" in html  # escaped, never markup
    for tag, attrs in page.tags:  # nothing to fetch: no scripts, no external resources
        assert tag not in ("script", "img", "link", "iframe")
        assert not any(str(v).startswith(("http:", "https:", "//")) for v in attrs.values())
