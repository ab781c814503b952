"""The public HTML page that tells whether a certificate number is valid."""

from dataclasses import dataclass
from datetime import datetime
from html import escape
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class Verification:
    number: str
    found: bool
    student_name: str = ""
    course_title: str = ""
    issued_at: datetime | None = None
    revoked_at: datetime | None = None
    #: The certificate is also an Open Badges credential: the page links its public form
    #: (/verify/<number>/badge, which says no more than the page; the holder's own address
    #: shares a token with the PDF and is never shown here).
    has_badge: bool = False


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Certificate {number}: {verdict}</title>
{links}
<style>
 body {{ font-family: Georgia, serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; }}
 body {{ color: #212529; }}
 .verdict {{ font-size: 1.6rem; font-weight: bold; color: {color}; }}
 dt {{ font-weight: bold; margin-top: .6rem; }}
</style>
</head>
<body>
<h1>Certificate verification</h1>
<p class="verdict">{verdict}</p>
{details}
</body>
</html>
"""


def _day(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment:%B} {moment.day}, {moment.year}"


def render_verification(result: Verification) -> str:
    """The page's HTML; every value from the database is escaped."""
    number = escape(result.number)
    if not result.found:
        return _PAGE.format(
            number=number,
            verdict="Unknown certificate",
            color="#6c757d",
            details=f"<p>No certificate with the number <code>{number}</code> was issued here.</p>",
            links="",
        )
    rows = [
        ("Number", number),
        ("Student", escape(result.student_name)),
        ("Course", escape(result.course_title)),
        ("Issued", _day(result.issued_at)),
    ]
    if result.revoked_at is not None:
        rows.append(("Revoked", _day(result.revoked_at)))
        verdict, color = "Revoked: this certificate is no longer valid", "#b00020"
    else:
        verdict, color = "Valid certificate", "#1b7a3a"
    links = ""
    if result.has_badge:
        badge = f"/verify/{quote(result.number)}/badge"
        links = f'<link rel="alternate" type="application/vc+jwt" href="{escape(badge)}">'
        rows.append(
            (
                "Open Badge",
                f'<a href="{escape(badge)}">the Open Badges 3.0 credential</a>'
                " (a VC-JWT for wallets and HR systems); it verifies against"
                ' <a href="/.well-known/jwks.json">this school\'s keys</a>',
            )
        )
    details = "<dl>" + "".join(f"<dt>{key}</dt><dd>{value}</dd>" for key, value in rows) + "</dl>"
    return _PAGE.format(number=number, verdict=verdict, color=color, details=details, links=links)
