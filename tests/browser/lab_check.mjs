// A chapter run in JupyterLab, as a reader runs it, in headless Chromium:
//   - the file browser lists the chapters (the folder of the chapter);
//   - a double click on the chapter's .md opens it as a notebook (its default viewer, set by
//     the book's Lab settings, tools/lab/overrides.json), with the python3 kernel;
//   - Run > Run All Cells (the menu), then wait, on state and not on sleeps, until the kernel
//     is idle and every code cell has an execution count (or an error stops the run);
//   - fail on any error output, any code cell that did not run, a dead kernel, an uncaught
//     page error, a request that leaves the machine, no figure, or no live explorer: the
//     `.ntlib-explorer` slider (ntlib.book.figure_slider) must be in the page, and moving it
//     must change the visible picture.
// The server is started, and stopped, by tests/browser/lab_check.sh (make lab-check).
//
// Usage: LAB_URL=http://127.0.0.1:PORT/ LAB_TOKEN=... node tests/browser/lab_check.mjs [notebooks/01_entropic_loss.md]
// Env:   CHROMIUM, LAB_RUN_TIMEOUT_MS (default 600000: the run of all cells),
//        LAB_TIMEOUT_MS (default 120000: each other wait), SCREENSHOTS=<dir> (PNGs of Lab).
// Prints what it checked and `N passed, M failed`; exits 1 on any failure.

import { createHash } from "node:crypto";
import { mkdirSync, readdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { launch } from "../../tools/pages.mjs";

const base = process.env.LAB_URL;
const token = process.env.LAB_TOKEN;
const chapter = process.argv[2] ?? "notebooks/01_entropic_loss.md";
const runTimeout = Number(process.env.LAB_RUN_TIMEOUT_MS ?? 600000);
const timeout = Number(process.env.LAB_TIMEOUT_MS ?? 120000);
const shots = process.env.SCREENSHOTS;
if (!base || !token) {
  console.error("lab_check.mjs: set LAB_URL and LAB_TOKEN (run tests/browser/lab_check.sh)");
  process.exit(2);
}
const folder = dirname(chapter);
const name = basename(chapter);
const t0 = Date.now();
const log = (msg) => console.log(`lab-check: ${msg} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);

const checks = [];
function check(what, ok, detail = "") {
  checks.push({ what, ok });
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${detail ? `: ${detail}` : ""}`);
}

async function shot(page, file) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, file) });
}

// Runs in the page: the notebook panel of `path` among Lab's widgets, or null.
function panelState(path) {
  const app = window.jupyterapp;
  if (!app) return { app: false };
  const panel = [...app.shell.widgets("main")].find((w) => w.context?.path === path);
  if (!panel) return { app: true, open: false };
  const notebook = panel.node.classList.contains("jp-NotebookPanel") && panel.content?.widgets;
  const kernel = panel.sessionContext?.session?.kernel;
  return { app: true, open: true, ready: !!panel.context.isReady, notebook: !!notebook, kernel: kernel?.name ?? null,
           status: kernel?.status ?? panel.sessionContext?.kernelDisplayStatus ?? null,
           cells: notebook ? panel.content.widgets.length : 0,
           current: app.shell.currentWidget === panel };
}

// Runs in the page: each code cell's execution count, state and output types.
function cellsState(path) {
  const panel = [...window.jupyterapp.shell.widgets("main")].find((w) => w.context?.path === path);
  const kernel = panel.sessionContext?.session?.kernel;
  const cells = [];
  panel.content.widgets.forEach((cell, index) => {
    if (cell.model.type !== "code") return;
    const outputs = [];
    for (let i = 0; i < cell.model.outputs.length; i++) {
      const o = cell.model.outputs.get(i);
      const data = o.data ?? {};
      outputs.push({ type: o.type, mimes: Object.keys(data),
                     error: o.type === "error" ? `${o.toJSON().ename}: ${o.toJSON().evalue}` : null,
                     stderr: o.type === "stream" && o.toJSON().name === "stderr" ? String(o.toJSON().text).slice(0, 200) : null });
    }
    cells.push({ index, count: cell.model.executionCount, state: cell.model.executionState ?? null, outputs });
  });
  return { status: kernel?.status ?? "none", cells };
}

const { browser, context, external } = await launch({ width: 1400, height: 900 }, { allow: [base] });
const uncaught = [];
const consoleErrors = [];
try {
  const page = await context.newPage();
  page.on("pageerror", (err) => uncaught.push(String(err).slice(0, 200)));
  page.on("console", (msg) => { if (msg.type() === "error") consoleErrors.push(msg.text().slice(0, 200)); });

  // 1. Lab opens on the chapters' folder, which lists every chapter.
  await page.goto(`${base}lab/tree/${folder}?token=${token}`, { waitUntil: "domcontentloaded", timeout });
  const itemText = page.locator(".jp-DirListing-item .jp-DirListing-itemText");
  await itemText.filter({ hasText: name }).first().waitFor({ timeout });
  const listed = (await itemText.allInnerTexts()).map((s) => s.trim());
  const chapters = readdirSync(folder).filter((f) => f.endsWith(".md")).sort();
  const missing = chapters.filter((f) => !listed.includes(f));
  check(`the file browser lists the ${chapters.length} chapters of ${folder}/`, missing.length === 0,
        missing.length ? `missing ${missing.join(", ")}` : listed.join(", "));
  log("Lab loaded");
  await shot(page, "lab-1-chapters.png");

  // 2. A double click opens the .md as a notebook (default viewer), kernel python3.
  const item = page.locator(".jp-DirListing-item").filter({
    has: page.locator(".jp-DirListing-itemText", { hasText: new RegExp(`^${name.replace(/\./g, "\\.")}$`) }) });
  await item.dblclick();
  await page.waitForFunction(([fn, path]) => {
    const st = new Function(`return (${fn})`)()(path);
    return st.open && st.ready && st.cells > 0;
  }, [panelState.toString(), chapter], { timeout });
  let st = await page.evaluate(panelState, chapter);
  check(`a double click opens ${name} as a notebook`, st.notebook && st.current, `${st.cells} cells`);
  if (!st.notebook) throw new Error(`${name} did not open as a notebook`);
  await page.waitForFunction(([fn, path]) => {
    const s = new Function(`return (${fn})`)()(path);
    return s.status === "idle" || s.status === "dead";
  }, [panelState.toString(), chapter], { timeout });
  st = await page.evaluate(panelState, chapter);
  check("its kernel starts (python3, idle)", st.kernel === "python3" && st.status === "idle",
        `${st.kernel}, ${st.status}`);
  log("notebook open, kernel idle");
  await shot(page, "lab-2-open.png");

  // 3. Run > Run All Cells, then wait until every code cell ran, or an error stopped the run.
  await page.locator(".lm-MenuBar-itemLabel", { hasText: /^Run$/ }).click();
  await page.locator(".lm-Menu-itemLabel", { hasText: /^Run All Cells$/ }).click();
  await page.waitForFunction(([fn, path]) => {
    const s = new Function(`return (${fn})`)()(path);
    const error = s.cells.some((c) => c.outputs.some((o) => o.type === "error"));
    const done = s.cells.every((c) => c.count !== null && c.state !== "running");
    return s.status === "dead" || error || (done && s.status === "idle");
  }, [cellsState.toString(), chapter], { timeout: runTimeout, polling: 500 });
  const run = await page.evaluate(cellsState, chapter);
  log("run finished");
  const notRun = run.cells.filter((c) => c.count === null).map((c) => c.index);
  const errors = run.cells.flatMap((c) => c.outputs.filter((o) => o.error).map((o) => `cell ${c.index}: ${o.error}`));
  const counts = run.cells.map((c) => c.count);
  check(`Run All Cells ran every code cell (${run.cells.length})`, notRun.length === 0 && run.status === "idle",
        notRun.length ? `not run: cells ${notRun.join(", ")}; kernel ${run.status}` : `counts ${counts[0]}..${counts.at(-1)}`);
  check("no cell has an error output", errors.length === 0, errors.join("; "));
  const stderr = run.cells.flatMap((c) => c.outputs.filter((o) => o.stderr).map((o) => `cell ${c.index}: ${o.stderr}`));
  if (stderr.length) console.log(`note: standard error in ${stderr.length} output(s): ${stderr.join(" | ")}`);
  const figures = run.cells.reduce((n, c) => n + c.outputs.filter((o) => o.mimes.includes("image/png")).length, 0);
  const views = run.cells.reduce((n, c) => n + c.outputs.filter((o) => o.mimes.includes("application/vnd.jupyter.widget-view+json")).length, 0);
  check("figures are shown", figures > 0, `${figures} PNG output(s), ${views} widget view(s)`);

  // 4. The explorer: rendered by the live widget manager, and its slider changes the picture.
  const explorer = page.locator(".jp-NotebookPanel .ntlib-explorer").first();
  await explorer.waitFor({ state: "attached", timeout }).catch(() => {});
  const found = await explorer.count();
  check("the explorer rendered (.ntlib-explorer with a slider)", found > 0 &&
        (await explorer.locator('.noUi-handle, [role="slider"], input[type="range"]').count()) > 0);
  if (found) {
    await explorer.scrollIntoViewIfNeeded();
    await explorer.locator("img").first().waitFor({ timeout });
    const handle = explorer.locator('.noUi-handle, [role="slider"], input[type="range"]').first();
    const picture = async () => {
      const png = await explorer.locator(":scope > *").last().screenshot();
      return createHash("sha1").update(png).digest("hex");
    };
    const max = Number(await handle.getAttribute("aria-valuemax") ?? 1);
    const before = await picture();
    await handle.focus();
    await page.keyboard.press("ArrowRight");
    await page.waitForFunction((h) => Number(h.getAttribute("aria-valuenow")) === 1, await handle.elementHandle(), { timeout });
    let after = before;
    for (let i = 0; i < 20 && after === before; i++) {  // the image swap lands within a frame or two
      await page.waitForTimeout(100);
      after = await picture();
    }
    check(`moving the explorer's slider changes the picture (1 of ${max})`, after !== before);
    await shot(page, "lab-3-explorer.png");
  }
  await page.evaluate(() => document.querySelector(".jp-NotebookPanel .jp-WindowedPanel-outer")?.scrollTo(0, 0));
  await shot(page, "lab-4-ran.png");
} catch (err) {
  check("the Lab run completed", false, String(err).split("\n")[0].slice(0, 300));
} finally {
  check("no uncaught error in the page", uncaught.length === 0, uncaught.slice(0, 3).join("; "));
  check("no request left the machine", external.length === 0, external.slice(0, 3).join(" "));
  if (consoleErrors.length) console.log(`note: ${consoleErrors.length} console error(s): ${consoleErrors.slice(0, 3).join(" | ")}`);
  await browser.close();
}
const failed = checks.filter((c) => !c.ok).length;
console.log(`lab-check: ${checks.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
