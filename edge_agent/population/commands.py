"""Plain CLI functions (wired by edge_agent/cli.py as ``edge-agent aggregator serve|report|...``).

* ``aggregator_keygen``   - the aggregator's X25519 sealing key pair (private 0600, public for devices)
* ``period_key_init``     - IT: the site's period key file (copied to every room device, never to the aggregator)
* ``aggregator_serve``    - run the gRPC aggregator over mutual TLS until SIGTERM/SIGINT
* ``aggregator_report``   - release a period's cells: readable table, CSV, JSON, and a PNG of trends
* ``roster_for_period``   - IT: the current period's pseudonyms of the site's real clinicians (CA + period key)
* ``aggregator_roster_load`` - the aggregator counts only rostered pseudonyms (k cannot be met by invented ones)

The PNG needs matplotlib (optional dependency, rendered headless with Agg);
without it the report still writes the table, CSV and JSON and says so.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import signal
import time
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edge_agent.crypto import seal
from edge_agent.crypto.files import write_private, write_public
from edge_agent.errors import EdgeAgentError, ServiceCrash
from edge_agent.population.aggregator import RELEASED, Aggregator, CellResult, Policy
from edge_agent.population.metrics import ALL_METRIC_NAMES, METRICS
from edge_agent.population.periods import DEFAULT_GRANULARITY, parse_period
from edge_agent.population.pseudonym import PeriodKeyRing
from edge_agent.population.service import AggregatorServer, AggregatorServerConfig

DEFAULT_DB = Path("/var/lib/edge-agent-aggregator/aggregator.db")
DEFAULT_KEY = Path("/etc/edge-agent-aggregator/aggregator.key")


def aggregator_keygen(private_out: Path, public_out: Path) -> str:
    """Make the aggregator's sealing key pair; returns the public key id (hex)."""
    if Path(private_out).exists():
        raise EdgeAgentError(f"{private_out} already exists; the aggregator key is made once (rotate deliberately)")
    priv, pub = seal.generate_keypair()
    write_private(Path(private_out), seal.private_key_bytes(priv))
    write_public(Path(public_out), pub)
    return seal.key_id(pub).hex()


def load_private_key(path: Path) -> seal.X25519PrivateKey:
    try:
        return seal.private_key_from_bytes(Path(path).read_bytes())
    except FileNotFoundError:
        raise EdgeAgentError(f"no aggregator key at {path}; make one with aggregator_keygen") from None
    except OSError as exc:  # a directory, no permission
        raise EdgeAgentError(f"cannot read aggregator key {path}: {exc.strerror}; give the key file (--key)") from None


def period_key_init(path: Path, granularity: str = DEFAULT_GRANULARITY, today: dt.date | None = None) -> str:
    """IT: create the site's period key file; returns the current period label."""
    return PeriodKeyRing.create(Path(path), granularity, today).period.label


def roster_for_period(ca_dir: Path, period_key: Path, out: Path, today: dt.date | None = None) -> dict[str, object]:
    """IT, on the CA host, at the start of each period (and after enrolling clinicians): the roster file.

    One pseudonym per clinician (stable subject id, so re-issued phones count
    once) with a certificate valid in the period and not revoked. Holds no id
    and no mapping: only the period's pseudonyms. Copy it to the aggregator.
    """
    from edge_agent.crypto import ca

    authority = ca.load_ca(Path(ca_dir), ca.passphrase_from_env())
    ring = PeriodKeyRing.load(Path(period_key))
    ring.advance(today or dt.date.today())
    period = ring.period
    try:
        revoked = ca.read_crl(authority.directory / ca.CRL, authority.cert).revoked
    except EdgeAgentError:
        revoked = frozenset()
    people: set[str] = set()
    for entry in ca.issued(authority):
        if entry.get("role") != ca.ROLE_CLINICIAN or int(entry["serial"]) in revoked:
            continue
        if dt.datetime.fromisoformat(entry["not_after"]).date() < period.start:
            continue
        people.add(entry.get("subject") or entry["id"])
    pseudonyms = sorted({ring.pseudonym(person, period.start)[1] for person in people})
    write_private(Path(out), json.dumps({"kind": "edge-agent population roster", "v": 1, "period": period.label,
                                         "pseudonyms": pseudonyms}, sort_keys=True).encode() + b"\n")
    return {"period": period.label, "clinicians": len(pseudonyms), "roster": str(out)}


def aggregator_roster_load(roster: Path, db: Path = DEFAULT_DB, key: Path = DEFAULT_KEY, policy: Policy | None = None) -> dict[str, object]:
    """On the aggregator host: add a roster file (from :func:`roster_for_period`) to the database."""
    try:
        doc = json.loads(Path(roster).read_text())
        if doc.get("kind") != "edge-agent population roster" or doc.get("v") != 1:
            raise ValueError("kind")
        period, pseudonyms = str(doc["period"]), list(doc["pseudonyms"])
    except FileNotFoundError:
        raise EdgeAgentError(f"roster {roster} not found; make it on the CA host with 'edge-agent aggregator roster'") from None
    except OSError as exc:  # a directory, no permission
        raise EdgeAgentError(f"cannot read roster {roster}: {exc.strerror}; give the file from 'edge-agent aggregator roster'") from None
    except (ValueError, KeyError, TypeError):
        raise EdgeAgentError(f"{roster} is not a roster file; make it with 'edge-agent aggregator roster'") from None
    agg = Aggregator(Path(db), load_private_key(key), policy)
    try:
        added = agg.load_roster(period, pseudonyms)
    finally:
        agg.close()
    return {"period": period, "added": added, "in_file": len(pseudonyms)}


def aggregator_serve(db: Path = DEFAULT_DB, key: Path = DEFAULT_KEY, bundle: Path = Path("/etc/edge-agent-aggregator/server.pem"),
                     crl: Path | None = None, host: str = "0.0.0.0", port: int = 50453, policy: Policy | None = None) -> None:
    """Run the aggregator until SIGTERM/SIGINT (the site CRL is required)."""
    if crl is None or not Path(crl).exists():
        raise EdgeAgentError("the aggregator needs the site CRL (--crl crl.pem from the CA host); it refuses to run without one")

    async def run() -> None:
        agg = Aggregator(Path(db), load_private_key(key), policy)
        server = AggregatorServer(AggregatorServerConfig(Path(bundle), host, port, Path(crl), state_dir=Path(db).parent), agg)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.stop()
            agg.close()

    try:
        asyncio.run(run())
    except EdgeAgentError:
        raise
    except Exception as exc:
        # the last line goes to the journal: a foreign exception's message may quote data, so it names the type only
        raise ServiceCrash(f"internal error ({type(exc).__name__}); the aggregator stopped; report it with the journal "
                           "lines above (journalctl -u edge-agent-aggregator)") from None


# ---- report -----------------------------------------------------------------------------


def _fmt_value(c: CellResult) -> str:
    if c.value is None:
        return "-"
    if c.unit in ("share", "share of visits"):
        return f"{100 * c.value:.0f} % ± {100 * (c.ci95 or 0):.0f}"
    return f"{c.value:.1f} ± {c.ci95 or 0:.1f} {c.unit}".rstrip()


def render_table(cells: list[CellResult], policy: Policy, console: Console | None = None) -> None:
    console = console or Console()
    period = cells[0].period if cells else ""
    table = Table(title=f"Population signal {period} (k={policy.k}, n={policy.n}, ε budget {policy.epsilon_budget:g}/period)")
    for col in ("service line", "metric", "status", "value (± 95 % noise)", "ε charged", "noise scale", "note"):
        table.add_column(col)
    for c in cells:
        scale = f"{c.sum_scale:.3g}/{c.count_scale:.3g}" if c.sum_scale is not None else "-"
        note = c.reason or ("repeat of an earlier answer (no ε spent)" if c.repeated else "")
        table.add_row(c.service_line, c.metric, c.status, _fmt_value(c), f"{c.epsilon:.3f}", scale, note)
    console.print(table)
    console.print("Values are noisy means over clinicians (each clinician weighs the same); a wide ± means "
                  "the service line is too small for this budget to say much.")


def write_outputs(cells: list[CellResult], out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [c.to_dict() for c in cells]
    csv_path, json_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.json"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(CellResult.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(rows)
    json_path.write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
    return csv_path, json_path


def plot_trends(released: list[dict[str, object]], out_png: Path, metrics: tuple[str, ...]) -> Path | None:
    """PNG: per metric, each service line's released values across periods (± 95 % noise).

    Uses only answers already released (post-processing: no privacy cost).
    Returns None when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    series: dict[str, dict[str, dict[str, tuple[float, float]]]] = defaultdict(lambda: defaultdict(dict))
    for r in released:
        if r.get("status") == RELEASED and r.get("metric") in metrics and r.get("value") is not None:
            series[str(r["metric"])][str(r["service_line"])][str(r["period"])] = (float(r["value"]), float(r["ci95"] or 0))  # type: ignore[arg-type]
    shown = [m for m in metrics if m in series]
    if not shown:
        return None
    cols = min(3, len(shown))
    rows = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, shown):
        lo, hi = METRICS[metric].bounds
        for sl, points in sorted(series[metric].items()):
            periods = sorted(points, key=lambda p: parse_period(p).index)
            ys = [points[p][0] for p in periods]
            errs = [points[p][1] for p in periods]
            ax.errorbar(periods, ys, yerr=errs, marker="o", capsize=3, label=sl)
        ax.set_ylim(lo, 1.0 if METRICS[metric].unit == "share" else hi)
        ax.set_title(metric, fontsize=9)
        ax.set_ylabel(METRICS[metric].release_unit or "count", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    fig.suptitle("Behaviour trends per service line (differentially private releases)", fontsize=10)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def aggregator_report(period: str | None = None, out_dir: Path = Path("."), db: Path = DEFAULT_DB, key: Path = DEFAULT_KEY,
                      metrics: tuple[str, ...] = ALL_METRIC_NAMES, epsilon: float | None = None, policy: Policy | None = None,
                      console: Console | None = None, now: float | None = None) -> list[CellResult]:
    """Release (or re-read) every cell of ``period``; print a table; write CSV, JSON and a PNG.

    No ``period``: the latest one closed to late deliveries on today's date (:meth:`Policy.last_closed_period`)."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise EdgeAgentError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(ALL_METRIC_NAMES)}")
    out_dir = Path(out_dir)
    try:  # before anything is released: a release spends privacy budget, so its outputs must have somewhere to go
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeAgentError(f"cannot write the report to {out_dir}: {exc.strerror}; give a folder with --out-dir") from None
    agg = Aggregator(Path(db), load_private_key(key), policy)
    console = console or Console()
    if period is None:
        today = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.timezone.utc).date()
        period = agg.policy.last_closed_period(today)
        console.print(f"Reporting period {period}: the latest closed to late deliveries (--period chooses another).")
    try:
        cells = agg.report(period, tuple(metrics), epsilon, now=now)
        released = agg.store.released()
    finally:
        agg.close()
    if not cells:
        console.print(f"No service line has contributions for {period}.")
    else:
        render_table(cells, agg.policy, console)
    csv_path, json_path = write_outputs(cells, out_dir, f"population-{period}")
    png = plot_trends(released, out_dir / f"population-trends-{period}.png", tuple(metrics))
    console.print(f"wrote {csv_path} and {json_path}" + (f" and {png}" if png else
                  " (no PNG: install matplotlib, or nothing was released yet)"))
    return cells
