"""aggregator_report: readable table, CSV + JSON, PNG (when matplotlib is installed); nothing un-noised."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from pathlib import Path

from rich.console import Console

from edge_agent.crypto import seal
from edge_agent.population.aggregator import Aggregator
from edge_agent.population.commands import aggregator_keygen, aggregator_report, load_private_key
from tests.population_fixtures import AFTER_CLOSE, Site


def test_report_outputs(tmp_path: Path) -> None:
    kid = aggregator_keygen(tmp_path / "agg.key", tmp_path / "agg.pub")
    assert kid == seal.key_id((tmp_path / "agg.pub").read_bytes()).hex()
    site = Site.make(tmp_path / "site")
    site.agg.close()
    site.agg = Aggregator(tmp_path / "agg.db", load_private_key(tmp_path / "agg.key"))
    site.public_key = (tmp_path / "agg.pub").read_bytes()
    site.department("cardiology", clinicians=6, visits_each=4)
    site.department("oncology", clinicians=3, visits_each=10)
    site.agg.close()
    buf = io.StringIO()
    cells = aggregator_report("2026-Q4", tmp_path / "out", db=tmp_path / "agg.db", key=tmp_path / "agg.key",
                              metrics=("talk_share", "empathy"), console=Console(file=buf, width=160),
                              now=AFTER_CLOSE)
    text = buf.getvalue()
    assert "cardiology" in text and "oncology" in text and "suppressed" in text and "released" in text
    by = {(c.service_line, c.metric): c for c in cells}
    assert by[("oncology", "talk_share")].value is None and by[("cardiology", "talk_share")].value is not None
    rows = list(csv.DictReader((tmp_path / "out" / "population-2026-Q4.csv").open()))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"released", "suppressed"}
    doc = json.loads((tmp_path / "out" / "population-2026-Q4.json").read_text())
    assert all(d["value"] is None for d in doc if d["status"] == "suppressed")
    assert all(d["sum_scale"] > 0 and "opendp" in d["mechanism"] for d in doc if d["status"] == "released")
    png = tmp_path / "out" / "population-trends-2026-Q4.png"
    if importlib.util.find_spec("matplotlib"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second report returns the recorded answers and spends nothing more
    again = aggregator_report("2026-Q4", tmp_path / "out", db=tmp_path / "agg.db", key=tmp_path / "agg.key",
                              metrics=("talk_share", "empathy"), console=Console(file=io.StringIO()), now=AFTER_CLOSE)
    assert [c.value for c in again] == [c.value for c in cells] and all(c.epsilon == 0 for c in again)


def test_aggregator_cli_bad_paths_are_one_line(tmp_path: Path) -> None:
    """A folder where a file belongs, or a file where the output folder belongs: one line, exit 2."""
    from tests.cli_runner import run_cli

    aggregator_keygen(tmp_path / "agg.key", tmp_path / "agg.pub")
    folder = tmp_path / "folder"
    folder.mkdir()
    taken = tmp_path / "taken"
    taken.write_text("not a folder\n")
    db, key = str(tmp_path / "agg.db"), str(tmp_path / "agg.key")
    for args, fragment in (
        (("roster-load", str(folder), "--db", db, "--key", key), str(folder)),
        (("report", "--db", db, "--key", str(folder)), str(folder)),
        (("report", "--db", db, "--key", key, "--out-dir", str(taken)), str(taken)),
    ):
        out = run_cli("aggregator", *args)
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert out.returncode == 2 and "internal error" not in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
        assert len(lines) == 1 and fragment in lines[0], (args, out.stderr)


def test_report_defaults_to_the_last_period_closed_to_late_deliveries(tmp_path: Path) -> None:
    """--period defaulted to the fixed string '2026-Q4': from 2027 on, a report without it asked for a stale quarter.
    The default now follows the rule records are filed by (period_of(visit day)) and the grace for late deliveries."""
    import datetime as dt

    from edge_agent.population.aggregator import Policy

    policy = Policy()  # quarters, 14 days' grace
    assert policy.last_closed_period(dt.date(2027, 2, 1)) == "2026-Q4"  # Q4 ended 1 Jan, grace over 15 Jan
    assert policy.last_closed_period(dt.date(2027, 1, 14)) == "2026-Q3"  # Q4's late deliveries may still come
    assert policy.last_closed_period(dt.date(2027, 1, 15)) == "2026-Q4"
    assert policy.last_closed_period(dt.date(2031, 7, 20)) == "2031-Q2"
    assert Policy(granularity="month").last_closed_period(dt.date(2026, 12, 1)) == "2026-10"
    assert Policy(granularity="week", grace_days=0).last_closed_period(dt.date(2026, 12, 1)) == "2026-W48"

    aggregator_keygen(tmp_path / "agg.key", tmp_path / "agg.pub")
    site = Site.make(tmp_path / "site")
    site.agg.close()
    site.agg = Aggregator(tmp_path / "agg.db", load_private_key(tmp_path / "agg.key"))
    site.public_key = (tmp_path / "agg.pub").read_bytes()
    site.department("cardiology", clinicians=6, visits_each=4)  # visits on 2026-11-03
    site.agg.close()
    buf = io.StringIO()
    cells = aggregator_report(None, tmp_path / "out", db=tmp_path / "agg.db", key=tmp_path / "agg.key",
                              metrics=("talk_share",), console=Console(file=buf, width=160), now=AFTER_CLOSE)
    assert "2026-Q4" in buf.getvalue() and cells and cells[0].value is not None, buf.getvalue()
    assert (tmp_path / "out" / "population-2026-Q4.csv").exists()

    # the CLI without --period: today's rule, said on screen
    from tests.cli_runner import run_cli

    expected = Policy().last_closed_period(dt.date.today())
    out = run_cli("aggregator", "report", "--db", str(tmp_path / "agg.db"), "--key", str(tmp_path / "agg.key"),
                  "--out-dir", str(tmp_path / "cli-out"))
    assert out.returncode == 0, out.stderr
    assert f"period {expected}" in out.stdout and (tmp_path / "cli-out" / f"population-{expected}.csv").exists(), out.stdout
