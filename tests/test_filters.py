"""Every list, customer and staff, shows its status filter the same way (issue 19): one
`nav.filter-bar` of `a.filter-link`, exactly one of them aria-current="page", the one asked for."""

from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest

from . import factories
from .conftest import HX, login, staff_login

OLD_CLASSES = ('class="tabs"', 'class="tab"', 'class="tab ', "tab-count", "case-tab", 'class="chip')


class FilterBars(HTMLParser):
    """The page's filter bars: [(aria-label, [(attrs, text), ...]), ...]."""

    def __init__(self):
        super().__init__()
        self.bars = []
        self._bar = None
        self._link = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "nav" and "filter-bar" in (attrs.get("class") or "").split():
            self._bar = (attrs.get("aria-label"), [])
            self.bars.append(self._bar)
        elif tag == "a" and self._bar is not None:
            self._link = [attrs, ""]

    def handle_data(self, data):
        if self._link is not None:
            self._link[1] += data

    def handle_endtag(self, tag):
        if tag == "a" and self._link is not None:
            self._bar[1].append((self._link[0], " ".join(self._link[1].split())))
            self._link = None
        elif tag == "nav":
            self._bar = None


def filter_bars(html):
    parser = FilterBars()
    parser.feed(html)
    return parser.bars


@pytest.fixture
def customer_client(client):
    acme = factories.customer(name="Acme")
    factories.portal_user(acme, email="pat@acme.example")
    factories.invoice(acme)
    login(client, "pat@acme.example")
    return client


@pytest.fixture
def staff_client(client):
    factories.staff("agent@example.com", admin=True)
    staff_login(client, "agent@example.com")
    return client


# (url, the nav's label, the param that holds the status, the current link's text)
CUSTOMER_LISTS = [
    ("/invoices/", "Invoice status", "status", "Open 1"),
    ("/invoices/?status=overdue", "Invoice status", "status", "Overdue 0"),
    ("/invoices/?status=all", "Invoice status", "status", "All 1"),
    ("/cases/", "Case status", "status", "Open"),
    ("/cases/?status=closed", "Case status", "status", "Resolved and closed"),
    ("/orders/", "Order status", "status", "Open"),
    ("/orders/?status=shipped", "Order status", "status", "Shipped"),
    ("/quotes/", "Quote status", "status", "All"),
    ("/quotes/?status=declined", "Quote status", "status", "Declined"),
]
STAFF_LISTS = [
    ("/staff/cases/", "Case status", "status", "Open"),
    ("/staff/cases/?status=resolved", "Case status", "status", "Resolved"),
    ("/staff/orders/", "Order status", "status", "Open"),
    ("/staff/orders/?status=submitted", "Order status", "status", "To review"),
    ("/staff/quotes/", "Request status", "status", "To quote"),
    ("/staff/quotes/?status=closed", "Request status", "status", "Closed"),
    ("/staff/quotes/list", "Quote status", "status", "All"),
    ("/staff/quotes/list?status=draft", "Quote status", "status", "Drafts"),
    ("/staff/invoices/", "Invoice state", "state", "All"),
    ("/staff/invoices/?state=overdue", "Invoice state", "state", "Overdue"),
    ("/staff/payments/", "Payment status", "status", "All"),
    ("/staff/payments/?status=pending", "Payment status", "status", "Pending confirmation"),
    ("/staff/outbox/", "Email status", "status", "All"),
    ("/staff/outbox/?status=failed", "Email status", "status", "Failed 0"),
]


def assert_one_filter(html, label, param, current_text, asked):
    bars = filter_bars(html)
    assert [bar_label for bar_label, _ in bars] == [label]
    links = bars[0][1]
    assert len(links) >= 3
    assert all("filter-link" in attrs["class"].split() for attrs, _ in links)
    current = [(attrs, text) for attrs, text in links if attrs.get("aria-current") == "page"]
    assert [text for _, text in current] == [current_text]
    # The current link points at the status that was asked for (or the list's default).
    linked = parse_qs(urlsplit(current[0][0]["href"]).query).get(param, [""])[0]
    if asked is not None:
        assert linked == asked
    for old in OLD_CLASSES:
        assert old not in html


def _asked(url, param):
    return parse_qs(urlsplit(url).query).get(param, [None])[0]


@pytest.mark.parametrize(("url", "label", "param", "current"), CUSTOMER_LISTS)
def test_customer_lists_share_one_status_filter(customer_client, url, label, param, current):
    response = customer_client.get(url)
    assert response.status_code == 200
    assert_one_filter(response.get_data(as_text=True), label, param, current, _asked(url, param))


@pytest.mark.parametrize(("url", "label", "param", "current"), STAFF_LISTS)
def test_staff_lists_share_one_status_filter(staff_client, url, label, param, current):
    response = staff_client.get(url)
    assert response.status_code == 200
    assert_one_filter(response.get_data(as_text=True), label, param, current, _asked(url, param))


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("/invoices/?status=paid", "#invoice-results"),
        ("/cases/?status=all", "#case-results"),
        ("/quotes/?status=accepted", "#quote-results"),
    ],
)
def test_htmx_lists_swap_their_results_and_keep_the_filter(customer_client, url, target):
    """The lists whose filter swapped with htmx still do, and the fragment carries the bar."""
    page = customer_client.get(url).get_data(as_text=True)
    links = filter_bars(page)[0][1]
    assert all(attrs["hx-get"] == attrs["href"] for attrs, _ in links)
    assert {attrs["hx-target"] for attrs, _ in links} == {target}
    assert {attrs["hx-push-url"] for attrs, _ in links} == {"true"}
    fragment = customer_client.get(url, headers=HX)
    html = fragment.get_data(as_text=True)
    assert "<header" not in html
    assert len(filter_bars(html)) == 1


def test_a_status_link_keeps_the_search(staff_client):
    """Changing status keeps what was typed in the search box."""
    html = staff_client.get("/staff/orders/?status=all&q=PO-77").get_data(as_text=True)
    hrefs = [attrs["href"] for attrs, _ in filter_bars(html)[0][1]]
    assert all("q=PO-77" in href for href in hrefs)
    html = staff_client.get("/staff/payments/?q=acme&posted=no").get_data(as_text=True)
    hrefs = [attrs["href"] for attrs, _ in filter_bars(html)[0][1]]
    assert all("q=acme" in href and "posted=no" in href for href in hrefs)


def test_a_count_above_zero_that_needs_attention_is_marked(customer_client):
    """The overdue count is a warning when there is something overdue, and plain text."""
    from datetime import date, timedelta

    from portal.models import Customer

    acme = Customer.get(Customer.name == "Acme")
    factories.invoice(acme, due_date=date.today() - timedelta(days=40))
    html = customer_client.get("/invoices/").get_data(as_text=True)
    links = dict((text, attrs) for attrs, text in filter_bars(html)[0][1])
    assert "filter-alert" in links["Overdue 1"]["class"].split()
    assert "filter-alert" not in links["Open 2"]["class"].split()
