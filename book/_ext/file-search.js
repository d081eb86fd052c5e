/* Search from a book opened from disk (file://).
 *
 * Sphinx's search page fetches each hit's page to show a summary; from file://
 * Chromium blocks that fetch (CORS) and logs an error per hit. Opened from disk,
 * show the hits without summaries; served over http(s), nothing changes.
 */
/* global DOCUMENTATION_OPTIONS -- a top-level const of documentation_options.js */
if (window.location.protocol === "file:" && typeof DOCUMENTATION_OPTIONS !== "undefined") {
  DOCUMENTATION_OPTIONS.SHOW_SEARCH_SUMMARY = false;
}
