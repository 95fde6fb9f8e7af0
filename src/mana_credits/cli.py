"""`mana-credits serve | migrate | seed | token | audit` (and the domains' own commands)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from mana_credits.books import cli as books_cli
from mana_credits.config import Settings
from mana_credits.gifts import cli as gifts_cli
from mana_credits.kit.cli import answer, console, database, refuse
from mana_credits.payments import cli as payments_cli
from mana_credits.support import cli as support_cli
from mana_credits.sync_billing import cli as sync_cli

if TYPE_CHECKING:
    from mana_credits.ledger.accrual import AccrualOffender
    from mana_credits.ledger.audit import GiftOffender, Offender

app = typer.Typer(
    help="mana-credits: the credit and billing service of the Mana app ecosystem.", no_args_is_help=True
)
app.add_typer(payments_cli.app, name="packages", help="List, add and deactivate credit packages.")
app.add_typer(gifts_cli.app, name="gifts", help="Gift operator commands (expiry sweep).")
app.add_typer(sync_cli.app, name="billing", help="Cloud-sync billing (run renewals now).")
app.add_typer(support_cli.user_app, name="user", help="Look up one user (support).")
app.add_typer(
    books_cli.stripe_app, name="stripe", help="Reconcile with Stripe (payments, refunds, disputes)."
)
app.command()(support_cli.grant)
app.command()(support_cli.export)
app.command()(books_cli.statement)


def _migrate(url: str) -> None:
    from mana_credits.db.migrate import upgrade, writable

    if not asyncio.run(writable(url)):
        refuse("the database is read-only (a standby?): migrations must run on the primary")
    upgrade(url)


async def _seed(url: str) -> int:
    from mana_credits.db.pool import connect
    from mana_credits.payments.repository import seed_default_packages

    conn = await connect(url)
    try:
        return await seed_default_packages(conn)
    finally:
        await conn.close()


@app.command()
def migrate() -> None:
    """Apply the database migrations (also adopts a database of the old service in place)."""
    settings = Settings()
    with database(settings) as url:
        _migrate(url)
    answer.print("[green]migrations applied[/green]", soft_wrap=True)


@app.command()
def seed() -> None:
    """Insert the default credit packages that are missing (idempotent)."""
    settings = Settings()
    with database(settings) as url:
        added = asyncio.run(_seed(url))
    answer.print(f"[green]{added} package(s) added[/green]", soft_wrap=True)


@app.command()
def serve(
    workers: int = typer.Option(1, help="worker processes, about 95 MB each (deployed: 1 per replica)"),
    host: str = typer.Option("0.0.0.0", help="address to bind"),
) -> None:
    """Migrate, seed and serve the API (embedded PostgreSQL when DATABASE_URL is unset)."""
    settings = Settings()
    try:
        settings.check_safe_to_start()
    except RuntimeError as exc:
        refuse(str(exc))
    _refuse_a_taken_port(host, settings.PORT)
    command = [sys.executable, "-m", "mana_credits.server", host, str(settings.PORT), str(workers)]
    with database(settings) as url:
        _migrate(url)
        asyncio.run(_seed(url))
        # The workers inherit the environment: hand them the database and a shared metrics folder.
        os.environ["DATABASE_URL"] = url
        metrics_dir = settings.MANA_CREDITS_DATA_DIR.resolve() / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        if settings.is_development:
            from mana_credits.auth import devkey

            # Before the workers start: each would otherwise race to make its own.
            devkey.load_or_create(settings.dev_key_path)
        _print_welcome(settings)
        if settings.DATABASE_URL:
            # Become the server: the CLI's modules (and its memory) are gone, signals reach granian directly.
            sys.stderr.flush()
            os.execv(sys.executable, command)
        # The embedded database lives in this process: serve from a child and stop the database after it.
        _run_until_stopped(command)


def _refuse_a_taken_port(host: str, port: int) -> None:
    """granian listens with SO_REUSEPORT: a second server on a taken port would start silently and the
    kernel would split requests between the two (and their databases). A plain bind fails instead."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart's TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as exc:
            refuse(
                f"port {port} on {host} is already in use ({exc.strerror}); stop the other server or set PORT"
            )


def _run_until_stopped(command: list[str]) -> None:
    # The server has a process group of its own, so a signal reaches it once, from here: Ctrl-C reaches only
    # this process then, like `kill` or a process manager, and a second signal while granian handles the
    # first could hang it (its handler is not reentrant). A closed terminal (SIGHUP) stops it too.
    server = subprocess.Popen(command, process_group=0)
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            server.terminate()

    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, stop) for signum in stops}
    try:
        server.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _print_welcome(settings: Settings) -> None:
    base = f"http://localhost:{settings.PORT}"
    grant = '{"userId":"alice","amount":500,"reason":"welcome","referenceId":"welcome-alice"}'
    lines = [f"\nmana-credits on {base}  (pages: {base}/app, API docs: {base}/docs)"]
    if settings.is_development:
        lines += [
            f"Open {base}/app/sign-in and sign in as any user (development sign-in, no password).",
            "Development mode. Give alice some credits, get her a token and try a call:",
            f"  curl -s -X POST -H 'X-Service-Key: {settings.MANA_SERVICE_KEY}' "
            f"-H 'Content-Type: application/json' -d '{grant}' {base}/api/v1/internal/credits/grant",
            "  TOKEN=$(.venv/bin/mana-credits token --user alice --email alice@example.com)",
            f'  curl -s -H "Authorization: Bearer $TOKEN" {base}/api/v1/credits/balance',
        ]
    lines.append("Ctrl-C stops the server and the embedded database.\n")
    # Plain print: the commands must stay copyable, never wrapped to the terminal width.
    print("\n".join(lines), file=sys.stderr, flush=True)


@app.command()
def healthcheck(
    port: int | None = typer.Option(None, help="port of the local server (default: PORT)"),
    timeout: float = typer.Option(5.0, help="seconds to wait for the answer"),
) -> None:
    """Exit 0 when the local server answers /health, else 1 (the container's HEALTHCHECK)."""
    import urllib.request

    url = f"http://127.0.0.1:{port or Settings().PORT}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            healthy = response.status == 200
    except OSError as exc:
        console.print(f"unhealthy: {url}: {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from exc
    if not healthy:
        raise typer.Exit(1)


@app.command()
def token(
    user: str = typer.Option(..., "--user", help="user id (JWT sub)"),
    email: str | None = typer.Option(None, help="email claim"),
    name: str | None = typer.Option(None, help="display name claim"),
    admin: bool = typer.Option(False, "--admin", help="role admin"),
    ttl: int = typer.Option(3600, help="lifetime in seconds"),
) -> None:
    """Print a JWT signed by the development key (trusted only when MANA_CREDITS_ENV=development)."""
    from mana_credits.auth import devkey

    settings = Settings()
    key = devkey.load_or_create(settings.dev_key_path)
    print(
        devkey.mint(
            key,
            user_id=user,
            issuer=settings.jwt_issuers[0],
            audience=settings.JWT_AUDIENCE,
            email=email,
            name=name,
            role="admin" if admin else "user",
            ttl_seconds=ttl,
        )
    )


@app.command()
def audit(
    fix_report: bool = typer.Option(
        False, "--fix-report", help="also say, per finding, what an operator must decide"
    ),
) -> None:
    """Check the ledger invariant for every user; exit 1 and list the offenders on any mismatch."""
    from mana_credits.ledger.audit import Offender

    settings = Settings()
    with database(settings) as url:
        offenders, questions = asyncio.run(_audit(url, questions=fix_report))
    for offender in offenders:
        answer.print(f"[red]{offender.user_id}[/red]: {'; '.join(offender.problems)}", soft_wrap=True)
        if fix_report and isinstance(offender, Offender):
            for decision in support_cli.decisions(offender):
                answer.print(f"  decide: {decision}", soft_wrap=True, highlight=False)
    for subject, question in questions:
        answer.print(f"[yellow]{subject}[/yellow]: {question}", soft_wrap=True, highlight=False)
    if offenders:
        answer.print(f"[red]{len(offenders)} violate the ledger invariant[/red]", soft_wrap=True)
    else:
        answer.print("[green]ledger consistent[/green]", soft_wrap=True)
    if offenders or questions:
        raise typer.Exit(1)


async def _audit(
    url: str, *, questions: bool
) -> tuple[list[Offender | GiftOffender | AccrualOffender], list[tuple[str, str]]]:
    from mana_credits.db.pool import connect
    from mana_credits.ledger.accrual import audit_accruals
    from mana_credits.ledger.audit import audit_batches, audit_gifts, count_users

    conn = await connect(url)
    found: list[Offender | GiftOffender | AccrualOffender] = []
    try:
        from rich.progress import Progress

        with Progress(console=console, transient=not sys.stderr.isatty()) as progress:
            task = progress.add_task("auditing balances", total=await count_users(conn))
            async for checked, offenders in audit_batches(conn):
                found.extend(offenders)
                progress.advance(task, checked)
        found.extend(await audit_gifts(conn))
        found.extend(await audit_accruals(conn))
        if not questions:
            return found, []
        from mana_credits.support.repository import open_questions

        return found, await open_questions(conn, datetime.now(UTC))
    finally:
        await conn.close()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
