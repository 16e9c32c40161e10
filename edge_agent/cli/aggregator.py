"""`edge-agent aggregator ...`: the population signal for Quality & Safety (docs/privacy.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edge_agent.population.commands import DEFAULT_DB, DEFAULT_KEY

app = typer.Typer(help="De-identified, k-anonymous, differentially private population aggregates.", no_args_is_help=True)
Db = Annotated[Path, typer.Option("--db", help="aggregator SQLite database")]
Key = Annotated[Path, typer.Option("--key", help="aggregator X25519 private key")]


@app.command("keygen")
def keygen(private_out: Annotated[Path, typer.Option("--private-out")], public_out: Annotated[Path, typer.Option("--public-out")]) -> None:
    """Make the aggregator's sealing key pair (once)."""
    from edge_agent.population.commands import aggregator_keygen

    print(f"aggregator public key id: {aggregator_keygen(private_out, public_out)}")


@app.command("period-key-init")
def period_key_init(path: Annotated[Path, typer.Argument(help="site period key file to create (copy to every room device)")],
                    granularity: Annotated[str, typer.Option(help="week | month | quarter")] = "quarter") -> None:
    """IT: create the site's rotating period key (the aggregator never holds it)."""
    from edge_agent.population.commands import period_key_init as init

    print(f"period key created; current period {init(path, granularity)}")


@app.command("roster")
def roster(ca_dir: Annotated[Path, typer.Option("--ca-dir", help="the site CA folder (issued.jsonl, crl.pem)")],
           period_key: Annotated[Path, typer.Option("--period-key", help="the site period key file (IT's copy)")],
           out: Annotated[Path, typer.Option("--out", help="roster file to copy to the aggregator")]) -> None:
    """IT: the current period's pseudonyms of the site's clinicians (run at each period start and after enrolling)."""
    from edge_agent.population.commands import roster_for_period

    result = roster_for_period(ca_dir, period_key, out)
    print(f"roster for {result['period']}: {result['clinicians']} clinicians -> {result['roster']}")


@app.command("roster-load")
def roster_load(roster_file: Annotated[Path, typer.Argument(help="file from `aggregator roster`")], db: Db = DEFAULT_DB, key: Key = DEFAULT_KEY) -> None:
    """On the aggregator: count only these pseudonyms (a device cannot meet k with invented clinicians)."""
    from edge_agent.population.commands import aggregator_roster_load

    result = aggregator_roster_load(roster_file, db, key)
    print(f"roster {result['period']}: {result['added']} new of {result['in_file']}")


@app.command("issue-contributor")
def issue_contributor(ca_dir: Annotated[Path, typer.Option("--ca-dir")],
                      service_line: Annotated[str, typer.Option("--service-line", help="the room's service line (population.service_line)")],
                      out: Annotated[Path, typer.Option("--out", help="client bundle for the device (population.client_bundle)")]) -> None:
    """A room device's client certificate for deliveries, bound to its service line."""
    from edge_agent.site.ca_admin import ca_issue_contributor

    result = ca_issue_contributor(ca_dir, service_line, out)
    print(f"contributor certificate for {service_line}: {result['bundle']}")


@app.command("serve")
def serve(db: Db = DEFAULT_DB, key: Key = DEFAULT_KEY,
          bundle: Annotated[Path, typer.Option("--bundle", help="aggregator server bundle from the site CA")] = Path("/etc/edge-agent-aggregator/server.pem"),
          crl: Annotated[Optional[Path], typer.Option("--crl")] = None,
          host: Annotated[str, typer.Option("--host")] = "0.0.0.0",
          port: Annotated[int, typer.Option("--port")] = 50453) -> None:
    """Receive sealed contributions over mutual TLS."""
    from edge_agent.population.commands import aggregator_serve

    aggregator_serve(db=db, key=key, bundle=bundle, crl=crl, host=host, port=port)


@app.command("report")
def report(period: Annotated[Optional[str], typer.Option(
               "--period", help="e.g. 2026-Q4 (default: the latest period closed to late deliveries, from today's date)")] = None,
           out_dir: Annotated[Path, typer.Option("--out-dir", help="where CSV, JSON and PNG go")] = Path("."),
           db: Db = DEFAULT_DB, key: Key = DEFAULT_KEY) -> None:
    """Release what the privacy rules allow for a period: table, CSV, JSON, PNG."""
    from edge_agent.population.commands import aggregator_report

    aggregator_report(period=period, out_dir=out_dir, db=db, key=key)
