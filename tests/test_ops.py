"""What operators and packagers rely on: htmx pinned and verified, optional drivers, the
Procfile's release step, the pinned linter, and the docs kept inside the repository."""

import io
import os
import subprocess
import sys
import tarfile
import time
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from portal import assets

ROOT = Path(__file__).resolve().parents[1]


def _tarball(path: Path, script: bytes) -> Path:
    """A tarball shaped like the npm package, holding `script` as dist/htmx.min.js."""
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(assets.HTMX_MEMBER)
        info.size = len(script)
        archive.addfile(info, io.BytesIO(script))
    return path


def test_htmx_installs_only_from_the_tarball_the_registry_published(tmp_path, monkeypatch):
    script = f'/* htmx */ var htmx={{version:"{assets.HTMX_VERSION}"}};'.encode()
    good = _tarball(tmp_path / "good.tgz", script)
    monkeypatch.setattr(assets, "HTMX_INTEGRITY", assets.integrity_of(good.read_bytes()))
    target = tmp_path / "vendor" / "htmx.min.js"
    assert assets.install_htmx(good, target) == target
    assert target.read_bytes() == script

    # One changed byte upstream (or on the way) and nothing is installed.
    tampered = _tarball(tmp_path / "tampered.tgz", script.replace(b"htmx */", b"htmy */"))
    other = tmp_path / "vendor2" / "htmx.min.js"
    with pytest.raises(assets.IntegrityError):
        assets.install_htmx(tampered, other)
    assert not other.exists()
    assert assets.main(["--tarball", str(tampered)]) == 1


def test_htmx_pin_is_an_exact_version_with_a_sha512_integrity():
    major, minor, patch = assets.HTMX_VERSION.split(".")
    assert (major, minor) == ("2", "0") and patch.isdigit()
    assert assets.HTMX_INTEGRITY.startswith("sha512-") and len(assets.HTMX_INTEGRITY) == 95


def test_installed_htmx_is_the_pinned_version():
    """What `make install` put in portal/static/vendor/ is the pinned release."""
    assert assets.HTMX_FILE.exists(), "run `make install`"
    head = assets.HTMX_FILE.read_bytes()
    assert f'version:"{assets.HTMX_VERSION}"'.encode() in head


def test_htmx_is_served_with_its_version_in_the_url_and_a_long_cache(client):
    url = f"/static/vendor/htmx-{assets.HTMX_VERSION}.min.js"
    response = client.get(url)
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert f'version:"{assets.HTMX_VERSION}"'.encode() in response.get_data()
    assert "max-age=31536000" in response.headers["Cache-Control"]
    # The strict policy holds on every page: scripts from this site only, nothing inline.
    page = client.get("/login")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert f'<script src="{url}" defer></script>' in page.get_data(as_text=True)


def test_htmx_is_not_committed():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(
        ["git", "ls-files", "portal/static"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    assert "htmx" not in tracked


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_database_and_redis_drivers_are_extras():
    project = _pyproject()["project"]
    assert not [d for d in project["dependencies"] if "psycopg" in d or "redis" in d]
    extras = project["optional-dependencies"]
    assert extras["postgres"] == ["psycopg2-binary>=2.9.10"]
    assert extras["redis"] == ["redis>=5"]
    assert "doorstep[postgres,redis,stripe]" in extras["dev"]


def test_portal_runs_without_the_optional_drivers(tmp_path):
    """SQLite and in-process limits need neither psycopg2 nor redis: block both imports."""
    code = (
        "import sys; sys.modules['psycopg2'] = None; sys.modules['redis'] = None\n"
        "from portal import create_app\n"
        "app = create_app({'INSTANCE_PATH': sys.argv[1]})\n"
        "from portal.db import migrate\n"
        "with app.app_context(): migrate()\n"
        "client = app.test_client()\n"
        "assert client.get('/login').status_code == 200\n"
        "assert client.get('/readyz').status_code == 200\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "instance")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_ruff_is_pinned_to_the_version_in_use():
    pins = [d for d in _pyproject()["project"]["optional-dependencies"]["dev"] if "ruff" in d]
    assert pins == [f"ruff=={version('ruff')}"]


def test_procfile_migrates_in_a_release_step_separate_from_web():
    lines = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert lines["release"].strip() == "flask --app portal init-db"
    assert "init-db" not in lines["web"]
    assert "gunicorn 'portal:create_app()'" in lines["web"]
    assert lines["worker"].strip() == "flask --app portal worker"


def _imports(root: Path) -> dict[str, set[str]]:
    """Module -> the portal modules it imports anywhere in its body (lazy imports too)."""
    import ast

    paths = {
        ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(
            ".__init__"
        ): path
        for path in root.rglob("*.py")
        if "migrations" not in path.parts
    }
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    found.add(target if target in paths else base)
        graph[name] = found & set(paths)
    return graph


def _reaches(graph, start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def test_the_audit_log_does_not_import_the_web_layer_back():
    """The circle audit -> web -> settings -> audit is untied: the request id lives in
    `portal.request_ids`, below both."""
    graph = _imports(ROOT / "portal")
    assert not _reaches(graph, "portal.services.audit", "portal.services.audit")
    assert not _reaches(graph, "portal.web", "portal.web")


def _init_db_at_once(url: str, instance: Path, count: int = 3) -> list[subprocess.CompletedProcess]:
    """`flask init-db` started by `count` processes at the same moment (hosts booting
    together), sharing one fresh instance folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "FLASK_"))}
    env.update(PORTAL_DATABASE_URL=url, PORTAL_INSTANCE_PATH=str(instance))
    starter = (
        "import sys, time; start = float(sys.argv[1]); time.sleep(max(0, start - time.time()))\n"
        "from flask.cli import main; sys.argv = ['flask', '--app', 'portal', 'init-db']; main()"
    )
    start = str(time.time() + 1.5)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", starter, start],
            cwd=instance.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def _check_once(results, applied_names: list[str]) -> None:
    assert [r.returncode for r in results] == [0] * len(results), [r.stderr for r in results]
    assert sum("Applied migrations" in r.stdout for r in results) == 1
    migrations = sorted(p.stem for p in (ROOT / "portal" / "migrations").glob("0*.py"))
    assert sorted(applied_names) == migrations


def test_hosts_starting_together_migrate_once_sqlite(tmp_path):
    """Migrations run once when several hosts run init-db at the same moment; the secret key
    the first one generates is the one every process uses."""
    import sqlite3

    path = tmp_path / "instance" / "portal.db"
    results = _init_db_at_once(f"sqlite:///{path}", tmp_path / "instance")
    with sqlite3.connect(path) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM schema_migration")]
    _check_once(results, names)
    assert len((tmp_path / "instance" / "secret_key").read_text().strip()) >= 32
    assert not list((tmp_path / "instance").glob(".secret_key.*"))


@pytest.mark.postgresql
def test_hosts_starting_together_migrate_once_postgresql(tmp_path):
    psycopg2 = pytest.importorskip("psycopg2")
    from urllib.parse import urlsplit

    base = urlsplit(os.environ["PORTAL_TEST_DATABASE_URL"])
    name = f"doorstep_lock_{os.getpid()}"
    admin = psycopg2.connect(base._replace(path="/postgres").geturl())
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    url = base._replace(path=f"/{name}").geturl()
    try:
        results = _init_db_at_once(url, tmp_path / "instance")
        with psycopg2.connect(url) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT name FROM schema_migration")
            names = [row[0] for row in cursor.fetchall()]
        conn.close()
        _check_once(results, names)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_a_secret_key_another_process_wrote_first_is_the_key(tmp_path, monkeypatch):
    """Two processes starting on a fresh instance folder: the one that finds the key file
    created under it (between its look and its write) uses that key instead of failing."""
    from portal import config

    theirs = "k" * 64

    def another_process_wins(nbytes):
        (tmp_path / "secret_key").write_text(theirs)
        return "m" * 64

    monkeypatch.setattr(config.secrets, "token_urlsafe", another_process_wins)
    assert config.load_secret_key(str(tmp_path)) == theirs
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]
