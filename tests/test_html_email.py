"""Every email has an HTML part beside its plain text (issue 18): the same composed words in
one layout under the business's name, escaped, with absolute links; accessible."""

import re
from html.parser import HTMLParser

from portal.models import OutboxMessage
from portal.services import cases, email_templates, outbox, settings

from . import factories

ATTACK = '<img src=x onerror=alert(1)> hx-get="/x" <script>alert(2)</script>'


class Anchors(HTMLParser):
    """The hrefs and the tags of an HTML document."""

    def __init__(self):
        super().__init__()
        self.hrefs, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "a":
            self.hrefs.append(dict(attrs)["href"])


def parts(message):
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


def test_b9_g1_staff_and_customer_text_is_escaped_in_the_html_part(app, mailbox):
    """G1/B9: a case subject and a staff answer full of markup arrive as text; the HTML part
    has the business's name, the plain words, and only the layout's own tags."""
    settings.update({"company_name": "Northwind & Sons"})
    user = factories.portal_user(email="pat@acme.example")
    case = cases.create_case(user, f"Broken {ATTACK}", "Two boxes arrived crushed.")
    cases.staff_reply(
        case, factories.staff(), f"Track it at https://track.example/x?a=1&b=2.\n{ATTACK}", "open"
    )
    outbox.deliver_due()
    message = [m for m in mailbox.wait_for(2) if m["Subject"].startswith(f"[{case.number}]")][0]
    text, html = parts(message)
    assert "Track it at https://track.example/x?a=1&b=2." in text
    page = Anchors()
    page.feed(html)
    assert set(page.tags) <= {"html", "head", "meta", "title", "style", "body", "div", "p",
                              "h1", "br", "a"}  # fmt: skip
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert '<p class="brand">Northwind &amp; Sons</p>' in html
    assert '<a href="https://track.example/x?a=1&amp;b=2">' in html  # the full stop is text
    assert f'href="http://localhost/cases/{case.public_id}"' in html
    assert all(re.match(r"https?://", href) for href in page.hrefs), page.hrefs


def test_the_html_part_is_accessible_and_readable_in_dark_mode(app, mailbox):
    """lang, a title (the subject), a colour-scheme that lets dark-mode clients recolour,
    and paragraphs kept as paragraphs."""
    email_templates.queue(
        "case_update",
        "pat@acme.example",
        name="Pat",
        case_number="CS-1",
        subject="Damaged pallet",
        message="First paragraph.\nSame paragraph.\n\nSecond paragraph.",
        link="http://localhost/cases/x",
    )
    row = OutboxMessage.get()
    html = row.body_html
    assert '<html lang="en"' in html
    assert f"<title>{row.subject}</title>" in html
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert "<p>First paragraph.<br>Same paragraph.</p>" in html
    assert "<p>Second paragraph.</p>" in html
    outbox.deliver_due()
    message = mailbox.wait_for(1)[-1]
    assert message.get_content_type() == "multipart/alternative"
    text, arrived_html = parts(message)
    assert "Second paragraph." in text and "<p>Second paragraph.</p>" in arrived_html


def test_staffs_override_is_the_html_parts_text_too(app, mailbox):
    """The HTML part is made from the composed text: staff's override when there is one."""
    boss = factories.staff(admin=True)
    email_templates.save("case_update", "Update {{ case_number }}", "Dear {{ name }}: ok", boss)
    email_templates.queue(
        "case_update",
        "pat@acme.example",
        name="Pat <b>",
        case_number="CS-2",
        subject="s",
        message="m",
        link="http://localhost/cases/y",
    )
    html = OutboxMessage.get().body_html
    assert "<p>Dear Pat &lt;b&gt;: ok</p>" in html and "Update CS-2" in html


def test_a_test_send_has_the_html_part(app, mailbox):
    """Staff's "send me a test" gets the same two parts as a real send."""
    boss = factories.staff(email="boss@example.com", admin=True)
    email_templates.send_test("case_update", "Hi {{ name }}", "Hello {{ name }}\n{{ link }}", boss)
    row = OutboxMessage.get(OutboxMessage.kind == "test:case_update")
    assert "<title>[Test] Hi Pat Buyer</title>" in row.body_html
    assert re.search(r'<a href="http://localhost/cases/17">', row.body_html)
