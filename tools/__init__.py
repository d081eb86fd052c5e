"""Build and maintenance tools of the book (not tests): the browser helpers
(``pages.mjs``) and the PDF printer (``print_pdf.mjs``)."""
