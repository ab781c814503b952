"""Certificates over HTTP: getting one's certificate (both front doors), the PDF behind an
unguessable URL, and the public verification page."""

import asyncio
from collections import OrderedDict

from aiohttp import web

from coursepulse.documents.certificate_pdf import CertificateDocument, render_certificate
from coursepulse.documents.verify_page import Verification, render_verification
from coursepulse.models.rows import CertificateRow
from coursepulse.resolvers import certificates
from coursepulse.web.keys import DATABASE, SETTINGS

PDF_CACHE_ENTRIES = 256


class PdfCache:
    """Rendered PDFs by (token, revoked_at): rendering is slow next to serving bytes."""

    def __init__(self, max_entries: int = PDF_CACHE_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], bytes] = OrderedDict()

    async def get(self, certificate: CertificateRow, base_url: str) -> bytes:
        """The certificate's PDF, rendered (in a thread) unless cached."""
        key = (certificate.token, str(certificate.revoked_at))
        cached = self._entries.get(key)
        if cached is not None:
            self._entries.move_to_end(key)
            return cached
        document = CertificateDocument(
            number=certificate.number,
            student_name=certificate.student_name,
            course_title=certificate.course_title,
            issued_at=certificate.issued_at,
            verification_url=certificates.verification_url(base_url, certificate.number),
            revoked_at=certificate.revoked_at,
        )
        pdf = await asyncio.to_thread(render_certificate, document)
        self._entries[key] = pdf
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return pdf


#: The application's rendered PDFs (kept here, beside the routes that use them).
PDF_CACHE = web.AppKey("pdf_cache", PdfCache)


async def certificate_pdf(request: web.Request) -> web.StreamResponse:
    """GET /certificates/{token}.pdf"""
    async with request.app[DATABASE].read() as tx:
        certificate = await certificates.find_by_token(tx, request.match_info["token"])
    if certificate is None:
        # Answered as every 404 is, by the request middleware (web/middlewares.py).
        raise web.HTTPNotFound(reason="Certificate not found")
    pdf = await request.app[PDF_CACHE].get(certificate, request.app[SETTINGS].base_url)
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="{certificate.number}.pdf"',
            "Cache-Control": "private, max-age=60",
        },
    )


async def verify_page(request: web.Request) -> web.Response:
    """GET /verify/{number}: valid, revoked or unknown, for anyone."""
    number = request.match_info["number"]
    async with request.app[DATABASE].read() as tx:
        certificate = await certificates.find_by_number(tx, number)
    if certificate is None:
        result = Verification(number=number[:64], found=False)
    else:
        result = Verification(
            number=certificate.number,
            found=True,
            student_name=certificate.student_name,
            course_title=certificate.course_title,
            issued_at=certificate.issued_at,
            revoked_at=certificate.revoked_at,
            has_badge=True,
        )
    return web.Response(
        text=render_verification(result),
        content_type="text/html",
        status=200 if certificate is not None else 404,
    )


def add_routes(app: web.Application) -> None:
    app[PDF_CACHE] = PdfCache()
    app.router.add_get(r"/certificates/{token:[A-Za-z0-9_-]+}.pdf", certificate_pdf)
    app.router.add_get("/verify/{number}", verify_page)
