"""Documents the service renders for people: certificate PDFs and the verification page."""
