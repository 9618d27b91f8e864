"""Generated documentation (docs/scenarios.md, the README's benchmark table) matches its generators."""

import importlib.util
import re
from pathlib import Path

from mpc_bio.scenarios.kinds import SCENARIO_SCHEMAS, get_schema
from mpc_bio.scenarios.nomad_config import nomad_config_schema
from mpc_bio.scenarios.schema import format_reference

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SCENARIOS_DOC = ROOT / "docs" / "scenarios.md"
REF_BEGIN = "<!-- scenario-reference:begin (mpc-bio validate --reference) -->"
REF_END = "<!-- scenario-reference:end -->"


def _between(text: str, begin: str, end: str) -> str:
    m = re.search(re.escape(begin) + r"\n(.*?)\n?" + re.escape(end), text, re.S)
    assert m, f"lacks the markers {begin!r} ... {end!r}"
    return m.group(1).strip()


def scenario_reference() -> str:
    """What ``mpc-bio validate --reference`` prints."""
    schemas = [get_schema(k) for k in SCENARIO_SCHEMAS] + [nomad_config_schema()]
    return format_reference(schemas, markdown=True).strip()


def write_scenario_reference() -> None:
    """Rewrite docs/scenarios.md's scenario reference (``python tests/test_readme.py``)."""
    text = SCENARIOS_DOC.read_text()
    new = re.sub(
        re.escape(REF_BEGIN) + r".*?" + re.escape(REF_END), lambda _: f"{REF_BEGIN}\n{scenario_reference()}\n{REF_END}", text, flags=re.S
    )
    SCENARIOS_DOC.write_text(new)


def _report_module():
    spec = importlib.util.spec_from_file_location("benchmark_report", ROOT / "benchmarks" / "report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_scenario_reference_is_current():
    assert _between(SCENARIOS_DOC.read_text(), REF_BEGIN, REF_END) == scenario_reference(), (
        "docs/scenarios.md is stale: run `python tests/test_readme.py`"
    )


def test_benchmark_table_is_current():
    report = _report_module()
    assert _between(README.read_text(), report.BEGIN, report.END) == report.table().strip(), (
        "README.md's benchmark table is stale: run `python benchmarks/report.py --readme`"
    )


def test_readme_is_short():
    """The README is the user's ten-minute read; guides live in docs/."""
    assert len(README.read_text().splitlines()) <= 300


def test_nothing_refers_outside_the_repository():
    """No file of the package, tests, scenarios, notebooks, docs or Makefile reads a folder beside
    the checkout (the shipped data make every run self-contained)."""
    outside = re.compile(r"\.\./shared|shared/data|DESIGN\.md")
    files = [
        ROOT / "Makefile",
        README,
        *(ROOT / "docs").glob("*.md"),
        *(ROOT / "scenarios").glob("*.toml"),
        *(ROOT / "notebooks").glob("*.ipynb"),
        *(ROOT / "mpc_bio").rglob("*.py"),
        *(ROOT / "benchmarks").glob("*.py"),
        *(p for p in (ROOT / "tests").rglob("*.py") if p.name != "test_readme.py"),
    ]
    hits = [str(f.relative_to(ROOT)) for f in files if outside.search(f.read_text(errors="replace"))]
    assert not hits, hits


def test_no_placeholders_left():
    text = README.read_text()
    assert not re.search(r"^[A-Z_]+_SECTION$|^SCENARIO_REFERENCE$", text, re.M)


if __name__ == "__main__":
    write_scenario_reference()
    _report_module().update_readme()
