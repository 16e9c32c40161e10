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
def report(period: Annotated[str, typer.Option("--period", help="e.g. 2026-Q4")] = "2026-Q4",
           out_dir: Annotated[Path, typer.Option("--out-dir", help="where CSV, JSON and PNG go")] = Path("."),
           db: Db = DEFAULT_DB, key: Key = DEFAULT_KEY) -> None:
    """Release what the privacy rules allow for a period: table, CSV, JSON, PNG."""
    from edge_agent.population.commands import aggregator_report

    aggregator_report(period=period, out_dir=out_dir, db=db, key=key)
