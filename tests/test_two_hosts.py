"""Several hosts (issue 15): two gunicorn app servers on different ports and two `flask worker`
processes share one PostgreSQL database and Redis, as the README's deployment describes.

Real processes, real HTTP with CSRF tokens from the pages, real SMTP (the suite's aiosmtpd),
the suite's Stripe for autopay's scheduled charges. Guests pay invoices on both hosts at once,
a customer signs in on one host and is signed in on the other, someone registers, two workers
run the scheduled jobs (autopay, reconciliation) side by side; then every email arrived once,
every payment was applied once, each scheduled charge happened once, and a burst limit counted
on one host holds on the other (Redis).
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from portal.models import (
    Autopay,
    AutopayCharge,
    Invoice,
    OutboxMessage,
    Payment,
    PaymentApplication,
    PortalUser,
    SavedMethod,
)
from portal.services import saved_methods

from . import factories, stripe_fixtures

pytestmark = pytest.mark.postgresql  # one database shared by processes: the PostgreSQL run

stripe_fake = stripe_fixtures.stripe_fake
stripe_env = stripe_fixtures.stripe_env
BIN = Path(sys.executable).parent
REDIS = "redis://127.0.0.1:6379/7"
TODAY = date.today()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(app, stripe_env, base_url: str) -> dict:
    config = app.config
    return {
        **os.environ,
        "PORTAL_DATABASE_URL": config["DATABASE_URL"],
        "PORTAL_SECRET_KEY": config["SECRET_KEY"] + "-" * 32,
        "PORTAL_INSTANCE_PATH": app.instance_path,
        "PORTAL_PAYMENT_PROVIDERS": "offline,test-checkout,stripe",
        "PORTAL_RATELIMIT_STORAGE_URI": REDIS,
        "PORTAL_BASE_URL": base_url,
        "PORTAL_MAIL_URL": config["MAIL_URL"],
        "PORTAL_STAFF_MFA": "optional",
        **{f"PORTAL_{k}": v for k, v in stripe_env.config.items()},
    }


def two_app_hosts(app, stripe_env, workers: int, threads: int):
    """Two gunicorn app servers of this portal on free ports: their URLs and commands."""
    hosts = [f"http://127.0.0.1:{_free_port()}" for _ in range(2)]
    commands = [
        (
            [
                str(BIN / "gunicorn"),
                "portal:create_app()",
                "--bind",
                host.removeprefix("http://"),
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                "--timeout",
                "60",
            ],
            _env(app, stripe_env, host),
        )
        for host in hosts
    ]
    return hosts, commands


@contextmanager
def processes(commands):
    """Start (argv, env) pairs, each in its own process group; kill them all at the end."""
    started = []
    try:
        for argv, env in commands:
            started.append(
                subprocess.Popen(
                    argv,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _wait_up(url: str) -> None:
    for _ in range(200):
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not become ready")


class _Forms(HTMLParser):
    """Every form of a page: its action and its inputs' values (hidden ones included)."""

    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action") or "", "fields": {}})
        elif tag == "input" and self.forms and attrs.get("name"):
            if attrs.get("type") in ("checkbox", "radio") and "checked" not in attrs:
                return
            self.forms[-1]["fields"][attrs["name"]] = attrs.get("value") or ""


def submit(http, page_url: str, action: str, **fields) -> requests.Response:
    """Open a page, fill the form posting to `action` (keeping its hidden fields, the CSRF
    token among them) and send it, as a browser would; redirects are not followed."""
    page = http.get(page_url, timeout=30)
    assert page.status_code == 200, (page_url, page.status_code)
    parser = _Forms()
    parser.feed(page.text)
    form = next(
        f for f in parser.forms if f["action"].split("?")[0].rstrip("/") == action.rstrip("/")
    )
    data = {**form["fields"], **fields}
    return http.post(
        urljoin(page_url, form["action"]), data=data, allow_redirects=False, timeout=30
    )


def guest_pays(base: str, invoice, code: str, email: str) -> None:
    """A guest pays an invoice in full on one host through quick pay and the test checkout."""
    http = requests.Session()
    found = submit(http, base + "/pay/", "/pay/", number=invoice.number, secret=code)
    assert found.status_code == 303, found.text[:300]
    started = submit(
        http,
        base + "/pay/invoice",
        "/pay/invoice",
        amount=f"{invoice.total_cents / 100:.2f}",
        payer_name="Guest Payer",
        payer_email=email,
        provider="test-checkout",
    )
    assert started.status_code == 303, started.text[:500]
    checkout = urljoin(base, started.headers["Location"])
    paid = submit(http, checkout, urlsplit(checkout).path, outcome="pay")
    assert paid.status_code == 303, paid.text[:300]
    back = http.get(urljoin(base, paid.headers["Location"]), allow_redirects=True, timeout=30)
    assert back.status_code == 200


def _mail_counts(mailbox) -> Counter:
    return Counter(m["Message-ID"] for m in mailbox.messages)


def test_two_app_hosts_and_two_workers_share_one_database(build_app, stripe_env, mailbox):
    import redis

    redis.Redis.from_url(REDIS).flushdb()
    app = build_app(PAYMENT_PROVIDERS="offline,test-checkout,stripe", **stripe_env.config)
    # Guests: 10 invoices of 10 customers, paid half on each host at the same time.
    unpaid = [factories.invoice(total_cents=10_000 + i * 100) for i in range(10)]
    # A customer who signs in on one host and carries on on the other.
    shopper = factories.portal_user(email="pat@acme.example")
    # A customer with autopay: the two workers' scheduled pass charges its due invoice once.
    auto_customer = factories.customer(name="Autopay Co")
    auto_admin = factories.portal_user(auto_customer, email="lee@autopay.example")
    due, _ = factories.invoice(auto_customer, total_cents=7_700, issue_date=TODAY)
    client = stripe_env.client()
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"},
        }
    )
    client.v1.payment_methods.attach(
        method.id, params={"customer": saved_methods.stripe_customer(auto_customer)}
    )
    card = SavedMethod.create(customer=auto_customer, method_id=method.id, last4="4242")
    Autopay.create(
        customer=auto_customer,
        method=card,
        max_cents=100_000,
        timing="issue",
        starts_on=TODAY,
        enrolled_by=auto_admin,
    )
    # Someone registers with an invoice of a company without a portal admin.
    newcomer = factories.customer(allow_self_registration=True)
    newcomer_invoice, newcomer_code = factories.invoice(newcomer, total_cents=5_000)
    stripe_env.deliver_to = None  # Stripe's events are delivered below, to one host

    hosts, gunicorn = two_app_hosts(app, stripe_env, workers=2, threads=4)
    workers = [
        (
            [str(BIN / "flask"), "--app", "portal", "worker", "--interval", "0.3"],
            _env(app, stripe_env, hosts[0]),
        )
        for _ in range(2)
    ]
    with ExitStack() as stack:
        stack.enter_context(processes(gunicorn))
        for host in hosts:
            _wait_up(host)
        # Sessions valid on both hosts: signed in on A, the invoices page on B.
        http = requests.Session()
        signed_in = submit(
            http, hosts[0] + "/login", "/login", email=shopper.email, password=factories.PASSWORD
        )
        assert signed_in.status_code == 303
        on_b = http.get(hosts[1] + "/invoices/", allow_redirects=False, timeout=30)
        assert on_b.status_code == 200  # signed out, it would be a redirect to /login

        # Payments on both hosts at once.
        errors = []

        def pay(index, invoice, code):
            try:
                guest_pays(hosts[index % 2], invoice, code, f"payer{index}@example.com")
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(repr(exc))

        threads = [
            threading.Thread(target=pay, args=(i, inv, code))
            for i, (inv, code) in enumerate(unpaid)
        ]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert errors == []

        # A registration on host B.
        registered = submit(
            requests.Session(),
            hosts[1] + "/register/",
            "/register/",
            invoice_number=newcomer_invoice.number,
            code=newcomer_code,
            name="Robin Clerk",
            email="robin@newcomer.example",
        )
        assert registered.status_code == 303, registered.text[:500]

        # Now two workers: mail delivered, autopay's scheduled charge made, side by side.
        stack.enter_context(processes(workers))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            queued = OutboxMessage.select().where(OutboxMessage.status != "sent").count()
            charged = AutopayCharge.select().where(AutopayCharge.state == "paid").count()
            if not queued and charged:
                break
            time.sleep(0.3)
        time.sleep(2)  # both workers pass again: nothing more may happen
        stripe_env.deliver_to = hosts[1] + "/payments/stripe/webhook"
        stripe_env.deliver_outbox()  # Stripe's own event for the charge, on the other host
        stripe_env.wait_idle()

    # Every payment applied once.
    for invoice, _ in unpaid:
        assert Invoice.get_by_id(invoice.id).balance_cents == 0
        applied = PaymentApplication.select().where(PaymentApplication.invoice == invoice.id)
        assert sum(a.amount_cents for a in applied) == invoice.total_cents
    assert Payment.select().where(Payment.provider == "test-checkout").count() == 10
    # The scheduled charge: once, on Stripe and here.
    assert AutopayCharge.select().count() == 1 and AutopayCharge.get().state == "paid"
    assert Invoice.get_by_id(due.id).balance_cents == 0
    intents = stripe_env.client().v1.payment_intents.list().data
    assert [i.amount for i in intents if i.status == "succeeded"] == [7_700]
    assert Payment.select().where(Payment.provider == "stripe").count() == 1
    # Every email once: the outbox sent each, and the relay saw each Message-ID once.
    sent = list(OutboxMessage.select())
    assert sent and all(m.status == "sent" for m in sent)
    counts = _mail_counts(mailbox)
    assert {m.message_id: counts[m.message_id] for m in sent} == {m.message_id: 1 for m in sent}
    receipts = [m for m in sent if m.kind == "receipt"]
    assert len(receipts) == 11  # ten guests and the autopay admin
    assert sorted(m.to_addr for m in sent if m.kind == "registration") == ["robin@newcomer.example"]
    assert PortalUser.select().where(PortalUser.status == "invited").count() == 1


def test_a_burst_limit_counted_on_one_host_holds_on_the_other(build_app, stripe_env):
    """Rate limits live in Redis: requests to host A count against host B too."""
    import redis

    from portal.services import ratelimit

    redis.Redis.from_url(REDIS).flushdb()
    app = build_app()
    inv, code = factories.invoice()
    per_minute = int(re.match(r"(\d+) per minute", ratelimit.GUEST_FORM).group(1))
    hosts, gunicorn = two_app_hosts(app, stripe_env, workers=1, threads=1)
    with processes(gunicorn):
        for host in hosts:
            _wait_up(host)
        statuses = []
        for i in range(per_minute + 1):
            http = requests.Session()
            # Right answers: only the burst limit can refuse them (no failure is counted).
            response = submit(http, hosts[i % 2] + "/pay/", "/pay/", number=inv.number, secret=code)
            statuses.append(response.status_code)
        assert set(statuses[:per_minute]) == {303}, statuses
        assert statuses[per_minute] == 429
        answer = submit(requests.Session(), hosts[0] + "/pay/", "/pay/", number="X", secret="y")
        assert answer.status_code == 429
