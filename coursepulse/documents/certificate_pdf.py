"""The certificate of completion as a one-page PDF (fpdf2, with an embedded Unicode font)."""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fpdf import FPDF

FONTS = Path(__file__).resolve().parent / "fonts"
INK = (33, 37, 41)
ACCENT = (27, 94, 166)
REVOKED = (176, 0, 32)


@dataclass(frozen=True, slots=True)
class CertificateDocument:
    """What the PDF shows."""

    number: str
    student_name: str
    course_title: str
    issued_at: datetime
    verification_url: str
    revoked_at: datetime | None = None


def _date(moment: datetime) -> str:
    return f"{moment:%B} {moment.day}, {moment.year}"


def render_certificate(document: CertificateDocument) -> bytes:
    """The PDF bytes of a landscape A4 certificate."""
    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_title(f"Certificate {document.number}")
    pdf.set_author("coursepulse")
    pdf.set_creation_date(document.issued_at)
    pdf.add_font("Serif", "", str(FONTS / "DejaVuSerif.ttf"))
    pdf.add_font("Serif", "B", str(FONTS / "DejaVuSerif-Bold.ttf"))
    pdf.set_auto_page_break(auto=False)
    pdf.add_page()
    width = pdf.w - 2 * pdf.l_margin

    pdf.set_draw_color(*ACCENT)
    pdf.set_line_width(1.2)
    pdf.rect(10, 10, pdf.w - 20, pdf.h - 20)
    pdf.set_line_width(0.3)
    pdf.rect(14, 14, pdf.w - 28, pdf.h - 28)

    pdf.set_text_color(*ACCENT)
    pdf.set_font("Serif", "B", 30)
    pdf.set_y(38)
    pdf.cell(width, 14, "Certificate of Completion", align="C", new_x="LMARGIN", new_y="NEXT")

    pdf.set_text_color(*INK)
    pdf.set_font("Serif", "", 14)
    pdf.ln(10)
    pdf.cell(width, 8, "This certifies that", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Serif", "B", 26)
    pdf.multi_cell(width, 13, document.student_name, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Serif", "", 14)
    pdf.cell(
        width,
        8,
        "has completed every lesson of the course",
        align="C",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(3)
    pdf.set_font("Serif", "B", 20)
    pdf.multi_cell(width, 11, document.course_title, align="C", new_x="LMARGIN", new_y="NEXT")

    pdf.set_y(pdf.h - 62)
    pdf.set_font("Serif", "", 12)
    pdf.cell(
        width, 7, f"Issued on {_date(document.issued_at)}", align="C", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.cell(
        width, 7, f"Certificate number {document.number}", align="C", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font("Serif", "", 10)
    pdf.cell(
        width, 7, f"Verify at {document.verification_url}", align="C", new_x="LMARGIN", new_y="NEXT"
    )

    if document.revoked_at is not None:
        pdf.set_text_color(*REVOKED)
        pdf.set_font("Serif", "B", 16)
        pdf.set_y(24)
        pdf.cell(
            width,
            10,
            f"REVOKED on {_date(document.revoked_at)}: this certificate is no longer valid",
            align="C",
        )
    return bytes(pdf.output())
