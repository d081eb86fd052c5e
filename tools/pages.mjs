// Shared helpers of the browser check and the PDF printer: launch the Debian
// Chromium offline, list the book's pages, wait until a page has settled (MathJax
// typeset, widgets rendered, images decoded) and inspect it.

import { chromium } from "playwright-core";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

export const LOCAL = /^(file|data|blob|about):/;

// Headless Chromium from CHROMIUM (default: Debian's /usr/bin/chromium), with every
// request that would leave the machine blocked and recorded in `external`. `allow`: URL
// prefixes that may be requested too (a local server, e.g. "http://127.0.0.1:8888/").
export async function launch(viewport = { width: 1280, height: 900 }, { allow = [] } = {}) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext({ viewport });
  const external = [];
  await context.route("**/*", (route) => {
    const u = route.request().url();
    if (LOCAL.test(u) || allow.some((prefix) => u.startsWith(prefix))) return route.continue();
    external.push(u);
    return route.abort("blockedbyclient");
  });
  return { browser, context, external };
}

// Every .html file of the built book (skipping _static, _sources, _images).
export function htmlPages(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (name.startsWith("_") || name.startsWith(".")) continue;
      out.push(...htmlPages(path));
    } else if (name.endsWith(".html")) {
      out.push(path);
    }
  }
  return out;
}

// A redirect page (index.html -> the first page): its target, else null.
export function redirectTarget(file) {
  const m = readFileSync(file, "utf8").match(/http-equiv="refresh"[^>]*url=([^"'>\s]+)/i);
  return m ? m[1] : null;
}

// The pages in reading order: follow the redirect of index.html, then rel="next".
export function readingOrder(root) {
  const order = [];
  let file = join(root, "index.html");
  const target = redirectTarget(file);
  if (target) file = resolve(dirname(file), target);
  while (file && existsSync(file) && !order.includes(file)) {
    order.push(file);
    const m = readFileSync(file, "utf8").match(/<link rel="next"[^>]*href="([^"#]+)"/);
    file = m ? resolve(dirname(file), m[1]) : null;
  }
  return order;
}

// Wait until MathJax has typeset, widgets have rendered and images have decoded.
export async function settle(page) {
  await page.evaluate(async () => {
    const mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) await mj.startup.promise;
  });
  await page.waitForFunction(() => {
    const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]');
    const done = [...views].filter((s) => s.previousElementSibling?.querySelector?.(".jupyter-widgets"));
    return done.length === views.length;
  }, null, { timeout: 15000 }).catch(() => {});
  await page.evaluate(async () => {
    for (const img of document.querySelectorAll("img")) {
      img.loading = "eager";
      if (!img.complete) await new Promise((ok) => { img.onload = img.onerror = ok; setTimeout(ok, 5000); });
    }
    const mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) await mj.startup.promise;
  });
}

// Problems with the math of a settled page, and its counts.
export async function mathProblems(page) {
  const math = await page.evaluate(inspectMath);
  const problems = [];
  if (math.rendered < math.nodes) problems.push(`math: ${math.rendered} of ${math.nodes} formulas rendered`);
  if (math.errors) problems.push(`math: ${math.errors} MathJax error node(s)`);
  if (math.raw.length) problems.push(`raw TeX visible: ${JSON.stringify(math.raw)}`);
  return { math, problems };
}

// Runs in the page: count math nodes and rendered formulas, find raw TeX in visible text.
export function inspectMath() {
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
  // Display equations wider than the text column (they scroll; worth splitting).
  const wide = [];
  const items = window.MathJax?.startup?.document?.math;
  for (const item of items ? [...items] : []) {
    const root = item.typesetRoot;
    if (item.display && root && root.scrollWidth > root.clientWidth + 2) {
      wide.push(`${item.math.trim().replace(/\s+/g, " ").slice(0, 50)}... (${root.scrollWidth} > ${root.clientWidth} px)`);
    }
  }
  return { nodes: nodes.length, rendered, errors, raw: raw.slice(0, 3), wide };
}

// Runs in the page: image and widget state.
export function inspectPage() {
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
  // Download links to notebooks, and whether this page is an executed notebook (myst-nb).
  const ipynb = [...document.querySelectorAll('a[href$=".ipynb"]')].map((a) => a.getAttribute("href"));
  const isNotebook = !!document.querySelector("div.cell");
  return { images: imgs.length, broken, views: views.length, unrendered, widgetErrors, ipynb, isNotebook,
           explorers: document.querySelectorAll(".ntlib-explorer").length };
}
