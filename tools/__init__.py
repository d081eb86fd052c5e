"""Build and maintenance tools of the book (not tests): the seed sweep (``seeds``, with its
chapter runner ``chapters``), the execution cache shared by the chapter tests and the book
build (``chapter_cache``), the browser helpers (``pages.mjs``) and the PDF printer
(``print_pdf.mjs``)."""
