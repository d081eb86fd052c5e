"""Build and maintenance tools of the book (not tests): the seed sweep, paper-scale
timings, the execution cache shared by the tests and the book build, and the browser
helpers (``pages.mjs``, ``print_pdf.mjs``)."""
