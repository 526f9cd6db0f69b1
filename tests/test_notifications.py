"""Issue 18: keeping people informed (the back-office overview's counts so far)."""

import re

from . import factories
from .conftest import staff_login


def test_the_overview_counts_rfqs_waiting_to_be_quoted(client):
    """The staff home shows how many requests for quote wait for a quote, linked to that
    list; quoted and withdrawn ones are not counted."""
    customer = factories.customer()
    factories.rfq(customer)
    factories.rfq(customer)
    factories.rfq(customer, status="quoted")
    factories.rfq(customer, status="withdrawn")
    staff = factories.staff()
    staff_login(client, staff.email)

    page = client.get("/staff/").get_data(as_text=True)

    tile = re.search(
        r'href="([^"]*)"[^>]*>\s*<span class="tile-value">(\d+)</span>'
        r'<span class="tile-label">requests for quote waiting to be quoted',
        page,
    )
    assert tile, page
    assert tile.group(2) == "2"
    assert tile.group(1).startswith("/staff/quotes/") and "status=submitted" in tile.group(1)
