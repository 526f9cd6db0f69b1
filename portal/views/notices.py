"""One-click unsubscribe from a topic of customer mail (issue 18), with no sign-in.

Every message with a topic carries `List-Unsubscribe: <this page>` and
`List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058). A mail client's one-click
POST turns the topic off at once; a person who follows the link sees a page that names the
email and the topic and asks before changing anything, because link scanners open links
(GET never changes anything). The signed token is the only key, and it turns off one topic
for one contact; the POST is exempt from CSRF because a mail provider cannot hold a form
token, and forging it can do no more than the link itself.
"""

from flask import Blueprint, render_template, request

from .. import csrf
from ..db import write_txn
from ..services import notices

bp = Blueprint("notices", __name__)


def _page(token: str, done: bool = False, status: int = 200):
    found = notices.read_unsubscribe(token)
    if found is None:
        return render_template("notices/unsubscribe.html", invalid=True), 404
    contact, topic = found
    return (
        render_template(
            "notices/unsubscribe.html",
            contact=contact,
            topic=notices.TOPICS[topic],
            token=token,
            done=done,
        ),
        status,
    )


@bp.get("/unsubscribe/<token>")
def unsubscribe(token):
    return _page(token)


@bp.post("/unsubscribe/<token>")
@csrf.exempt
def unsubscribe_post(token):
    found = notices.read_unsubscribe(token)
    if found is None:
        return _page(token)
    contact, topic = found
    with write_txn():
        notices.set_choice(contact, topic, False, by="unsubscribe")
    if request.form.get("List-Unsubscribe") == "One-Click":
        return "", 204  # the mail client's one-click POST: nobody reads an answer
    return _page(token, done=True)
