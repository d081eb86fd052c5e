"""Build and maintenance tools of the book (not tests): the execution cache shared by the
chapter tests and the book build, the browser helpers (``pages.mjs``) and the PDF printer
(``print_pdf.mjs``)."""
