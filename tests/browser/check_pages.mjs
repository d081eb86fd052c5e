// Open every page of the built HTML book in headless Chromium, from disk (file://),
// and fail on what a reader would see broken:
//   - unrendered math: raw TeX left in the text, fewer rendered formulas than math
//     nodes, or a MathJax error node;
//   - images that are missing or did not decode;
//   - ipywidgets that did not render;
//   - any console error or uncaught exception, any failed local request;
//   - any request that would leave the machine (it is blocked and reported).
// On pages with an `.ntlib-explorer` (ntlib.explore.figure_slider) it moves the slider
// through every position and asserts that the visible picture changes each time.
//
// Usage: node tests/browser/check_pages.mjs [_build/html] [page.html ...]
// Env:   CHROMIUM (default /usr/bin/chromium), PAGE_TIMEOUT_MS (default 30000),
//        SCREENSHOTS=<dir> saves a full-page PNG of each page.
// Prints one line per page and `N passed, M failed`; exits 1 on any failure.

import { chromium } from "playwright-core";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";

const root = resolve(process.argv[2] ?? "_build/html");
const only = process.argv.slice(3);
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const timeout = Number(process.env.PAGE_TIMEOUT_MS ?? 30000);
const shots = process.env.SCREENSHOTS;

if (!existsSync(join(root, "index.html"))) {
  console.error(`no built book at ${root} (run make book first)`);
  process.exit(2);
}

function htmlPages(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (name.startsWith("_") || name.startsWith(".")) continue; // _static, _sources, _images
      out.push(...htmlPages(path));
    } else if (name.endsWith(".html")) {
      out.push(path);
    }
  }
  return out;
}

const LOCAL = /^(file|data|blob|about):/;

// Runs in the page: count math nodes and rendered formulas, find raw TeX in visible text.
function inspectMath() {
  const nodes = [...document.querySelectorAll(".math")];
  const rendered = nodes.filter((n) => n.querySelector("mjx-container")).length;
  // MathJax errors, and undefined macros (rendered as red "\\name" text by noundefined).
  const errors = document.querySelectorAll("mjx-merror, .MathJax_Error").length +
    [...document.querySelectorAll("mjx-container")].filter((c) => c.textContent.includes("\\")).length;
  const raw = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const TEX = /\\\(|\\\)|\\\[|\\\]|\$\$|\\(frac|mathbb|mathrm|operatorname|sum|nabla|lVert|eta|begin)\b/;
  for (let t = walker.nextNode(); t; t = walker.nextNode()) {
    const el = t.parentElement;
    if (!el || el.closest("pre, code, script, style, mjx-container, .highlight, textarea")) continue;
    if (!el.getClientRects().length) continue; // not displayed
    const m = t.textContent.match(TEX);
    if (m) raw.push(t.textContent.trim().slice(0, 60));
  }
  return { nodes: nodes.length, rendered, errors, raw: raw.slice(0, 3) };
}

// Runs in the page: image and widget state.
function inspectPage() {
  const imgs = [...document.querySelectorAll("img")];
  const broken = imgs
    .filter((img) => !(img.complete && img.naturalWidth > 0))
    .map((img) => (img.getAttribute("src") || "").slice(0, 80));
  const views = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')];
  const unrendered = views.filter((s) => {
    const prev = s.previousElementSibling;
    return !(prev && prev.classList.contains("widget-subarea") && prev.querySelector(".jupyter-widgets"));
  }).length;
  const widgetErrors = [...document.querySelectorAll(".jupyter-widgets")]
    .filter((w) => /Error (rendering|displaying) (Jupyter )?widget/i.test(w.textContent)).length;
  return { images: imgs.length, broken, views: views.length, unrendered, widgetErrors,
           explorers: document.querySelectorAll(".ntlib-explorer").length };
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

// A redirect page (index.html -> the first page): its target must be a local page.
function redirectTarget(file) {
  const m = readFileSync(file, "utf8").match(/http-equiv="refresh"[^>]*url=([^"'>\s]+)/i);
  return m ? m[1] : null;
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
  const url = pathToFileURL(file).href;
  await page.goto(url, { waitUntil: "load", timeout });
  // MathJax 3 typesets after startup; wait for it when the page loads it.
  await page.evaluate(async () => {
    const mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) await mj.startup.promise;
  });
  // Widgets render asynchronously after load.
  await page.waitForFunction(() => {
    const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]');
    const done = [...views].filter((s) => s.previousElementSibling?.querySelector?.(".jupyter-widgets"));
    return done.length === views.length;
  }, null, { timeout: 15000 }).catch(() => {});
  // Decode every image, also lazy ones below the fold.
  await page.evaluate(async () => {
    for (const img of document.querySelectorAll("img")) {
      img.loading = "eager";
      if (!img.complete) await new Promise((ok) => { img.onload = img.onerror = ok; setTimeout(ok, 5000); });
    }
  });
  await page.evaluate(async () => {
    const mj = window.MathJax;
    if (mj && mj.typesetPromise) await mj.startup.promise;
  });

  const math = await page.evaluate(inspectMath);
  if (math.rendered < math.nodes) problems.push(`math: ${math.rendered} of ${math.nodes} formulas rendered`);
  if (math.errors) problems.push(`math: ${math.errors} MathJax error node(s)`);
  if (math.raw.length) problems.push(`raw TeX visible: ${JSON.stringify(math.raw)}`);
  const st = await page.evaluate(inspectPage);
  if (st.broken.length) problems.push(`broken images: ${JSON.stringify(st.broken)}`);
  if (st.unrendered) problems.push(`widgets: ${st.unrendered} of ${st.views} did not render`);
  if (st.widgetErrors) problems.push(`widgets: ${st.widgetErrors} error message(s)`);
  let explorers = 0;
  if (st.explorers) explorers = await checkExplorers(page, problems);
  if (shots) {
    const png = join(shots, relative(root, file).split(sep).join("__").replace(/\.html$/, ".png"));
    await page.screenshot({ path: png, fullPage: true });
  }
  await page.close();
  return { problems, math, st, explorers };
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const external = [];
await context.route("**/*", (route) => {
  const u = route.request().url();
  if (LOCAL.test(u)) return route.continue();
  external.push(u);
  return route.abort("blockedbyclient");
});
if (shots) mkdirSync(shots, { recursive: true });

let pages = htmlPages(root);
if (only.length) pages = pages.filter((p) => only.some((o) => p.endsWith(o)));
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
  const info = res.redirect ? `redirect to ${res.redirect}` : `math ${res.math.rendered ?? "?"}/${res.math.nodes ?? "?"}, images ${res.st.images ?? "?"}, ` +
    `widgets ${res.st.views ?? "?"}, explorers ${res.explorers}`;
  if (res.problems.length) {
    failed++;
    console.log(`FAIL ${name} (${info})`);
    for (const p of [...new Set(res.problems)]) console.log(`     - ${p}`);
  } else {
    passed++;
    console.log(`ok   ${name} (${info})`);
  }
}
await browser.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed || !pages.length ? 1 : 0);
