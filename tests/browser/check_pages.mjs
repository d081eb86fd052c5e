// Open every page of the built HTML book in headless Chromium, from disk (file://),
// and fail on what a reader would see broken:
//   - unrendered math: raw TeX left in the text, fewer rendered formulas than math
//     nodes, or a MathJax error node;
//   - images that are missing or did not decode;
//   - ipywidgets that did not render;
//   - any console error or uncaught exception, any failed local request;
//   - any request that would leave the machine (it is blocked and reported).
// Display equations wider than the text column are listed as notes (not failures).
// Every chapter page (notebooks/) must hold at least one explorer.
// On pages with an `.ntlib-explorer` (ntlib.book.figure_slider) it moves the slider
// through every position and asserts that the visible picture changes each time.
//
// Usage: node tests/browser/check_pages.mjs [_build/html] [page.html ...]
// Env:   CHROMIUM (default /usr/bin/chromium), PAGE_TIMEOUT_MS (default 30000),
//        SCREENSHOTS=<dir> saves a full-page PNG of each page.
// Prints one line per page and `N passed, M failed`; exits 1 on any failure.

import { createHash } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { LOCAL, htmlPages, inspectPage, launch, mathProblems, readingOrder, redirectTarget,
         settle } from "../../tools/pages.mjs";

const root = resolve(process.argv[2] ?? "_build/html");
const only = process.argv.slice(3);
const timeout = Number(process.env.PAGE_TIMEOUT_MS ?? 30000);
const shots = process.env.SCREENSHOTS;

if (!existsSync(join(root, "index.html"))) {
  console.error(`no built book at ${root} (run make book first)`);
  process.exit(2);
}

async function checkExplorers(page, problems) {
  const explorers = page.locator(".ntlib-explorer");
  const n = await explorers.count();
  for (let i = 0; i < n; i++) {
    const ex = explorers.nth(i);
    await ex.scrollIntoViewIfNeeded();
    const handle = ex.locator('.noUi-handle, [role="slider"], input[type="range"]').first();
    if (!(await handle.count())) { problems.push(`explorer ${i}: no slider`); continue; }
    const stack = ex.locator(":scope > .widget-box, :scope > *").last();
    const visible = async () => {
      const src = await ex.evaluate((el) => {
        const shown = [...el.querySelectorAll("img")].filter((img) => img.getClientRects().length);
        return shown.map((img) => img.src).join(" ");
      });
      const png = await stack.screenshot();
      return { src, hash: createHash("sha1").update(png).digest("hex") };
    };
    const max = Number(await handle.getAttribute("aria-valuemax") ?? 1);
    let before = await visible();
    if (!before.src) { problems.push(`explorer ${i}: no visible image`); continue; }
    await handle.focus();
    for (let k = 1; k <= max; k++) {
      await page.keyboard.press("ArrowRight");
      await page.waitForTimeout(150);
      const now = Number(await handle.getAttribute("aria-valuenow"));
      const after = await visible();
      if (now !== k) problems.push(`explorer ${i}: slider at ${now}, expected ${k}`);
      if (!after.src || after.src === before.src || after.hash === before.hash) {
        problems.push(`explorer ${i}: picture did not change at position ${k}`);
      }
      before = after;
    }
  }
  return n;
}

async function checkPage(context, file) {
  const problems = [];
  const target = redirectTarget(file);
  if (target) {
    if (!existsSync(resolve(dirname(file), target))) problems.push(`redirect to missing ${target}`);
    return { problems, math: {}, st: {}, explorers: 0, redirect: target };
  }
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`console error: ${msg.text().slice(0, 200)}`);
  });
  page.on("pageerror", (err) => problems.push(`uncaught: ${String(err).slice(0, 200)}`));
  page.on("requestfailed", (req) => {
    if (LOCAL.test(req.url())) problems.push(`failed request: ${req.url().slice(0, 120)}`);
  });
  await page.goto(pathToFileURL(file).href, { waitUntil: "load", timeout });
  await settle(page);

  const { math, problems: mp } = await mathProblems(page);
  problems.push(...mp);
  const st = await page.evaluate(inspectPage);
  if (st.broken.length) problems.push(`broken images: ${JSON.stringify(st.broken)}`);
  if (st.unrendered) problems.push(`widgets: ${st.unrendered} of ${st.views} did not render`);
  if (st.widgetErrors) problems.push(`widgets: ${st.widgetErrors} error message(s)`);
  // Chapter pages (executed notebooks) offer their .ipynb for download.
  if (st.ipynb.length === 0 && st.isNotebook) problems.push("no .ipynb download link");
  for (const href of st.ipynb) {
    if (!existsSync(resolve(dirname(file), href))) problems.push(`.ipynb download missing: ${href}`);
  }
  if (shots) {
    const png = join(shots, relative(root, file).split(sep).join("__").replace(/\.html$/, ".png"));
    await page.screenshot({ path: png, fullPage: true });
  }
  let explorers = 0;
  if (st.explorers) explorers = await checkExplorers(page, problems);
  // Convention: every chapter has at least one slider explorer.
  const chapter = relative(root, file).split(sep)[0] === "notebooks";
  if (chapter && !st.explorers) problems.push("chapter without an explorer (ntlib.book.figure_slider)");
  // The search page: a query for a word of the book finds pages, without errors.
  if (file.endsWith(`${sep}search.html`) && dirname(file) === root) {
    await page.goto(`${pathToFileURL(file).href}?q=entropic`, { waitUntil: "load", timeout });
    const found = await page.waitForFunction(() => {
      const t = document.querySelector("#search-results")?.innerText ?? "";
      return /found (\d+) page/.test(t) && Number(t.match(/found (\d+) page/)[1]);
    }, null, { timeout: 15000 }).then((h) => h.jsonValue()).catch(() => 0);
    if (!found) problems.push("search for 'entropic' found nothing");
  }
  await page.close();
  return { problems, math, st, explorers };
}

const { browser, context, external } = await launch();
if (shots) mkdirSync(shots, { recursive: true });

let pages = htmlPages(root);
if (only.length) pages = pages.filter((p) => only.some((o) => p.endsWith(o)));
// Every page in the table of contents must have been built.
const inToc = readingOrder(root);
let passed = 0, failed = 0;
for (const file of pages) {
  const name = relative(root, file);
  const before = external.length;
  let res;
  try {
    res = await checkPage(context, file);
  } catch (err) {
    res = { problems: [`check crashed: ${String(err).split("\n")[0]}`], math: {}, st: {}, explorers: 0 };
  }
  const leaks = external.slice(before);
  if (leaks.length) res.problems.push(`external requests (blocked): ${[...new Set(leaks)].slice(0, 5).join(", ")}`);
  const info = res.redirect ? `redirect to ${res.redirect}` : `math ${res.math.rendered ?? "?"}/${res.math.nodes ?? "?"}, ` +
    `images ${res.st.images ?? "?"}, widgets ${res.st.views ?? "?"}, explorers ${res.explorers}`;
  if (res.problems.length) {
    failed++;
    console.log(`FAIL ${name} (${info})`);
    for (const p of [...new Set(res.problems)]) console.log(`     - ${p}`);
  } else {
    passed++;
    console.log(`ok   ${name} (${info})`);
  }
  // Not a failure: display equations that overflow the column (readers must scroll).
  for (const w of res.math.wide ?? []) console.log(`     note: wide equation ${w}`);
}
await browser.close();
console.log(`${passed} passed, ${failed} failed (${inToc.length} pages in reading order)`);
process.exit(failed || !pages.length ? 1 : 0);
