"""The README's generated parts (scenario reference, benchmark table) match their generators."""

import importlib.util
import re
from pathlib import Path

from mpc_bio.scenarios.kinds import SCENARIO_SCHEMAS, get_schema
from mpc_bio.scenarios.nomad_config import nomad_config_schema
from mpc_bio.scenarios.schema import format_reference

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REF_BEGIN = "<!-- scenario-reference:begin (mpc-bio validate --reference) -->"
REF_END = "<!-- scenario-reference:end -->"


def _between(text: str, begin: str, end: str) -> str:
    m = re.search(re.escape(begin) + r"\n(.*?)\n?" + re.escape(end), text, re.S)
    assert m, f"README.md lacks the markers {begin!r} ... {end!r}"
    return m.group(1).strip()


def scenario_reference() -> str:
    """What ``mpc-bio validate --reference`` prints."""
    schemas = [get_schema(k) for k in SCENARIO_SCHEMAS] + [nomad_config_schema()]
    return format_reference(schemas, markdown=True).strip()


def write_scenario_reference() -> None:
    """Rewrite the README's scenario reference (``python tests/test_readme.py``)."""
    text = README.read_text()
    new = re.sub(re.escape(REF_BEGIN) + r".*?" + re.escape(REF_END),
                 lambda _: f"{REF_BEGIN}\n{scenario_reference()}\n{REF_END}", text, flags=re.S)
    README.write_text(new)


def _report_module():
    spec = importlib.util.spec_from_file_location("benchmark_report", ROOT / "benchmarks" / "report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_scenario_reference_is_current():
    assert _between(README.read_text(), REF_BEGIN, REF_END) == scenario_reference(), (
        "README.md's scenario reference is stale: run `python tests/test_readme.py`")


def test_benchmark_table_is_current():
    report = _report_module()
    assert _between(README.read_text(), report.BEGIN, report.END) == report.table().strip(), (
        "README.md's benchmark table is stale: run `python benchmarks/report.py --readme`")


def test_no_placeholders_left():
    text = README.read_text()
    assert not re.search(r"^[A-Z_]+_SECTION$|^SCENARIO_REFERENCE$", text, re.M)


if __name__ == "__main__":
    write_scenario_reference()
    _report_module().update_readme()
