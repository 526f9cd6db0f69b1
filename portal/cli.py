"""Command line: `flask --app app init-db | seed | create-staff | reset-staff-two-step |
backup | import | worker | inbound`."""

import fcntl
import os
from contextlib import contextmanager

import click
from flask import current_app

from . import db
from .services import auth as auth_service
from .services.importer import KINDS as IMPORT_KINDS

# pg_advisory_lock key of schema migrations: any fixed number, the same on every host.
MIGRATION_LOCK = 0x646F6F72  # "door"


@contextmanager
def migration_lock(url: str):
    """Hold a lock while migrating, so hosts starting together take turns instead of applying
    one migration twice: a PostgreSQL advisory lock on a connection of its own (the pool
    would keep it after the migration), or an exclusive lock on a file beside SQLite's."""
    if url.startswith(("postgres://", "postgresql://")):
        from playhouse.db_url import connect as connect_url

        holder = connect_url(url)
        holder.connect()
        try:
            holder.execute_sql("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
            yield
        finally:
            holder.close()  # ending the session releases the lock
    elif url.startswith("sqlite:///") and ":memory:" not in url:
        path = url.removeprefix("sqlite:///").split("?", 1)[0] + ".migrate-lock"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes
            yield
    else:
        yield


def migrate() -> list[str]:
    """Apply pending migrations under the migration lock; returns the names applied."""
    with migration_lock(current_app.config["DATABASE_URL"]):
        return db.migrate()


@click.command("init-db")
def init_db_command():
    """Create or upgrade the schema; an existing database keeps its data. Safe to run on
    several hosts at once: they take turns and each migration is applied once."""
    applied = migrate()
    if applied:
        click.echo("Applied migrations: " + ", ".join(applied))
    else:
        click.echo("The database is up to date.")


@click.command("seed")
def seed_command():
    """Load the demo data shipped in portal/seeds/ (idempotent)."""
    from .services import seed

    migrate()
    with db.db.connection_context():
        counts = seed.load_demo()
    for kind, (created, updated) in counts.items():
        click.echo(f"{kind}: {created} created, {updated} updated")


@click.command("create-staff")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--name", default="")
@click.option("--admin", is_flag=True, help="May change settings and manage staff.")
def create_staff_command(email, password, name, admin):
    """Create a back-office login."""
    if len(password) < 10:
        raise click.BadParameter("use at least 10 characters", param_hint="--password")
    with db.db.connection_context():
        if auth_service.find_staff_user(email):
            raise click.ClickException(f"{email} already has a back-office login.")
        user = auth_service.create_staff(email, password, name=name, admin=admin)
    click.echo(f"Created {user.role} {user.email}.")


@click.command("reset-staff-two-step")
@click.argument("email")
def reset_two_step_command(email):
    """Forget a staff login's authenticator app (a lost phone); it sets up a new one at its
    next sign-in."""
    from .services import two_step

    with db.db.connection_context():
        user = auth_service.find_staff_user(email)
        if user is None:
            raise click.ClickException(f"{email} has no back-office login.")
        two_step.reset(user, None)
    click.echo(f"{user.email} will set up two-step sign-in again at the next sign-in.")


@click.command("backup")
@click.argument("destination", type=click.Path(dir_okay=False))
def backup_command(destination):
    """Write a consistent snapshot of the SQLite database to DESTINATION (a new file).

    `VACUUM INTO` copies what committed transactions hold, even while the portal and the
    worker write: never `cp` a live WAL database (checklist J5). PostgreSQL has pg_dump.
    """
    from pathlib import Path

    if not db.is_sqlite_url(current_app.config["DATABASE_URL"]):
        raise click.ClickException("Back up PostgreSQL with pg_dump (see the README).")
    target = Path(destination).resolve()
    if target.exists():
        raise click.ClickException(f"{target} exists; choose a new file.")
    with db.db.connection_context():
        db.db.execute_sql("VACUUM INTO ?", (str(target),))
        tables = len(db.db.get_tables())
    click.echo(f"Backed up {tables} tables to {target}.")


@click.command("import")
@click.argument("kind", type=click.Choice(IMPORT_KINDS))
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def import_command(kind, path):
    """Upsert KIND from a CSV file: all rows or none, every bad row reported."""
    from .services import importer

    with open(path, "rb") as fh:  # decoded line by line, so a bad byte names its line
        with db.db.connection_context():
            result = importer.import_csv(kind, fh)
    if result.errors:
        for error in result.errors:
            click.echo(error, err=True)
        raise click.ClickException(f"{len(result.errors)} bad row(s); nothing was imported.")
    for skipped in result.skipped:
        click.echo(f"{skipped} (not applied)", err=True)
    summary = f"{kind}: {result.created} created, {result.updated} updated"
    if result.skipped:
        summary += f", {len(result.skipped)} not applied (a payment was taken meanwhile)"
    click.echo(summary)
    if result.applying:
        click.echo("Some changes are still being applied; the worker finishes them.")


@click.command("worker")
@click.option("--interval", default=5.0, help="Seconds between polls when idle.")
@click.option("--once", is_flag=True, help="One pass of each loop, then exit.")
def worker_command(interval, once):
    """Deliver the email outbox and reconcile payments until stopped: two loops in threads
    of their own (mail, money), so a hung SMTP relay never holds up a payment."""
    from .services import jobs

    current_app.logger.info("worker started")
    jobs.run(interval=interval, once=once)


@click.command("inbound")
def inbound_command():
    """Take replies to case emails by SMTP (PORTAL_INBOUND_HOST:PORTAL_INBOUND_PORT, by
    default 127.0.0.1:2525) for the business's mail server to hand them to, until stopped."""
    from .services import inbound

    inbound.serve()


def init_app(app) -> None:
    for command in (
        init_db_command,
        seed_command,
        create_staff_command,
        reset_two_step_command,
        backup_command,
        import_command,
        worker_command,
        inbound_command,
    ):
        app.cli.add_command(command)
