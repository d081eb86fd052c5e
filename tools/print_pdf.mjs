// Print the built HTML book to one PDF with headless Chromium, offline.
//
// The pages are printed in reading order (index.html's redirect, then each page's
// rel="next"), after MathJax has typeset them, and merged with pdf-lib; each page
// gets a "n / N" footer. Before printing, every page must have all its formulas
// rendered (no raw TeX, no MathJax error) and make no request off the machine,
// else nothing is written and the exit status is 1.
//
// Usage: node tools/print_pdf.mjs [_build/html] [_build/pdf/book.pdf]
// Env:   CHROMIUM (default /usr/bin/chromium)

import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { PDFDocument, StandardFonts, rgb } from "pdf-lib";
import { launch, mathProblems, readingOrder, settle } from "./pages.mjs";

const root = resolve(process.argv[2] ?? "_build/html");
const out = resolve(process.argv[3] ?? "_build/pdf/book.pdf");
const order = readingOrder(root);
if (!order.length) {
  console.error(`no built book at ${root} (run make book first)`);
  process.exit(2);
}

const { browser, context, external } = await launch({ width: 1100, height: 1400 });
const book = await PDFDocument.create();
book.setTitle("Neural Thermodynamics: an executable book");
const problems = [];
let formulas = 0;
for (const file of order) {
  const name = relative(root, file);
  const page = await context.newPage();
  page.on("pageerror", (err) => problems.push(`${name}: uncaught ${String(err).slice(0, 160)}`));
  await page.goto(pathToFileURL(file).href, { waitUntil: "load", timeout: 60000 });
  await settle(page);
  await page.emulateMedia({ media: "print" });
  const { math, problems: mp } = await mathProblems(page);
  problems.push(...mp.map((p) => `${name}: ${p}`));
  formulas += math.rendered;
  const pdf = await page.pdf({
    format: "A4", printBackground: true, preferCSSPageSize: false,
    margin: { top: "16mm", bottom: "18mm", left: "14mm", right: "14mm" },
  });
  const part = await PDFDocument.load(pdf);
  const pages = await book.copyPages(part, part.getPageIndices());
  pages.forEach((p) => book.addPage(p));
  console.log(`${name}: ${pages.length} page(s), ${math.rendered}/${math.nodes} formulas rendered`);
  await page.close();
}
await browser.close();
if (external.length) problems.push(`external requests (blocked): ${[...new Set(external)].slice(0, 5).join(", ")}`);
if (problems.length) {
  for (const p of problems) console.log(`FAIL ${p}`);
  process.exit(1);
}

const font = await book.embedFont(StandardFonts.Helvetica);
const total = book.getPageCount();
book.getPages().forEach((p, i) => {
  const label = `${i + 1} / ${total}`;
  const size = 9;
  p.drawText(label, { x: (p.getWidth() - font.widthOfTextAtSize(label, size)) / 2, y: 24, size,
                      font, color: rgb(0.35, 0.35, 0.35) });
});
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, await book.save());
console.log(`pdf: ${relative(process.cwd(), out)}, ${total} pages, ${order.length} chapters/pages, ` +
            `${formulas} formulas rendered, 0 external requests`);
