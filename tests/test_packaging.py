"""The built wheel, installed into a fresh environment and run from a directory outside the
checkout: migrations, the demo seed (shipped inside the package), one worker pass, and
gunicorn serving the sign-in page with htmx. Offline: the wheel is built without build
isolation and the new environment borrows this one's dependencies through a `.pth` file
(never the checkout, and never this environment's editable install of the portal)."""

import json
import os
import site
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from portal import assets

from .conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if not assets.HTMX_FILE.exists():
        pytest.fail("htmx is missing from portal/static/vendor: run `make install`")
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--wheel-dir", str(dist), str(ROOT)],
        check=True,
        cwd=dist,
    )
    (built,) = dist.glob("doorstep-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh venv holding only the wheel; returns (python, environment, work dir)."""
    base = tmp_path_factory.mktemp("installed")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
        + ["--no-deps", "--no-index", str(wheel)],
        check=True,
    )
    target = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies (Flask, Peewee, gunicorn...) come from this environment; a path line
    # in a .pth file does not run that directory's own .pth files, so this environment's
    # editable install of the checkout stays out.
    (Path(target) / "doorstep_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    work = base / "anywhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "FLASK_"))}
    env.pop("PYTHONPATH", None)
    env["PORTAL_INSTANCE_PATH"] = str(work / "instance")
    env["PORTAL_STAFF_MFA"] = "optional"
    return python, env, work


def run(installed, *args, timeout=120):
    python, env, work = installed
    result = subprocess.run(
        [str(python), *args], cwd=work, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_wheel_holds_templates_static_htmx_migrations_and_demo_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "portal/templates/base.html" in names
    assert "portal/static/vendor/htmx.min.js" in names
    assert "portal/migrations/0001_initial.py" in names
    assert "portal/seeds/invoices.csv" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "seeds/"))]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [
        line
        for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:")
    ]
    # The default (SQLite, in-process limits) needs neither driver: both are extras.
    plain = [line for line in requires if "extra ==" not in line]
    assert not [line for line in plain if "psycopg" in line or "redis" in line]
    assert any("psycopg2-binary" in line and 'extra == "postgres"' in line for line in requires)
    assert any(line.startswith("Requires-Dist: redis") for line in requires)


def test_installed_wheel_runs_anywhere(installed):
    """Migrations, the demo seed, a worker pass and gunicorn, from outside the checkout."""
    python, env, work = installed
    where = run(installed, "-c", "import portal; print(portal.__file__)")
    assert str(ROOT) not in where and "site-packages" in where

    flask = ["-m", "flask", "--app", "portal:create_app"]
    assert "Applied migrations" in run(installed, *flask, "init-db")
    assert "up to date" in run(installed, *flask, "init-db")
    seeded = run(installed, *flask, "seed")
    assert "invoices: " in seeded and "portal users: 3 created" in seeded
    run(installed, *flask, "worker", "--once")
    assert (work / "instance" / "portal.db").exists()

    port = free_port()
    log = open(work / "gunicorn.log", "wb")  # closed with the server, below
    server = subprocess.Popen(
        [str(python), "-m", "gunicorn", "portal:create_app()", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "1"],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server.log_path = work / "gunicorn.log"
    try:
        page = _get(f"http://127.0.0.1:{port}/login", server)
        assert "Sign in" in page
        script = f"/static/vendor/htmx-{assets.HTMX_VERSION}.min.js"
        assert f'src="{script}"' in page
        assert f'version:"{assets.HTMX_VERSION}"' in _get(
            f"http://127.0.0.1:{port}{script}", server
        )
        assert json.loads(_get(f"http://127.0.0.1:{port}/readyz", server))["status"] == "ready"
    finally:
        server.terminate()
        server.wait(10)
        log.close()


def _get(url: str, server, timeout: float = 20.0) -> str:
    """GET `url` once the server answers; the page's text."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            if server.poll() is not None:
                raise AssertionError(server.log_path.read_text()) from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
