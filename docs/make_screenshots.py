"""Take the README's screenshots from the demo data: `.venv/bin/python docs/make_screenshots.py`.

Builds a throwaway instance (SQLite, migrations, `seed`), serves it on a loopback port in a
thread, and drives Debian's Chromium through the pages a customer and a staff admin see.
The pictures land in `docs/screenshots/`; a page that fails to load stops the script.
"""

import os
import sys
import tempfile
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from portal import create_app  # noqa: E402
from portal.db import migrate  # noqa: E402
from portal.services.seed import load_demo  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "doorstep-demo"


def build_app(instance: str):
    app = create_app(
        {
            "INSTANCE_PATH": instance,
            "PAYMENT_PROVIDERS": "offline,test-checkout",
            "MAIL_SEND_ON_COMMIT": False,
            # As `make run`: the demo staff logins sign in with the password alone.
            "STAFF_MFA": "optional",
        }
    )
    with app.app_context():
        migrate()
        load_demo()
    return app


def sign_in(page, base: str, path: str, email: str) -> None:
    page.goto(base + path)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    terms = page.get_by_label("I accept", exact=False)
    if terms.count():
        terms.check()
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("networkidle")


def shoot(page, base: str, path: str, name: str, full_page: bool = False) -> None:
    response = page.goto(base + path)
    if response is None or response.status >= 400:
        raise SystemExit(f"{path} answered {response and response.status}")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=full_page)
    print("saved", name)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as instance:
        app = build_app(instance)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        base = f"http://127.0.0.1:{server.server_port}"
        app.config["BASE_URL"] = base
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            viewport = {"width": 1280, "height": 820}

            guest = browser.new_page(viewport=viewport)
            shoot(guest, base, "/login", "sign-in")
            guest.goto(base + "/pay/")
            guest.get_by_label("Invoice number").fill("INV-10042")
            guest.get_by_label("Quick-pay code", exact=False).fill("DEMO-PAY-2026")
            guest.get_by_role("button", name="Find my invoice").click()
            guest.wait_for_load_state("networkidle")
            guest.screenshot(path=str(OUT / "quick-pay.png"))
            print("saved quick-pay")

            customer = browser.new_page(viewport=viewport)
            sign_in(customer, base, "/login", "ap@acme.example")
            shoot(customer, base, "/", "dashboard")
            shoot(customer, base, "/invoices/", "invoices")
            shoot(customer, base, "/statements/", "statement")

            # A phone (390 px): the invoice list as stacked rows and the folded main menu.
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            sign_in(phone, base, "/login", "ap@acme.example")
            shoot(phone, base, "/invoices/", "phone-invoices")
            phone.get_by_role("navigation", name="Main").get_by_role("button", name="Menu").click()
            phone.screenshot(path=str(OUT / "phone-menu.png"))
            print("saved phone-menu")

            staff = browser.new_page(viewport=viewport)
            sign_in(staff, base, "/staff/login", "admin@example.com")
            shoot(staff, base, "/staff/settings/", "staff-settings")
            shoot(staff, base, "/staff/customers/", "staff-customers")
            browser.close()
        server.shutdown()


if __name__ == "__main__":
    main()
