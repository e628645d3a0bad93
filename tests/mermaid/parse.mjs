// Parses every ```mermaid block of the Markdown files named on the command line with
// Mermaid's own parser (the `mermaid` package, in a jsdom window), and prints one JSON line
// per block: {"file", "block", "ok", "type", "error"}. Run by tests/mermaid.rs from the
// directory it installed the packages into.
import { readFileSync } from 'node:fs';
import { JSDOM } from 'jsdom';

const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');
mermaid.initialize({ startOnLoad: false, securityLevel: 'strict' });

for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, 'utf8');
  const blocks = [...text.matchAll(/^```mermaid\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
  if (blocks.length === 0) {
    console.log(JSON.stringify({ file, block: -1, ok: false, error: 'no mermaid block' }));
  }
  for (const [i, src] of blocks.entries()) {
    try {
      const r = await mermaid.parse(src);
      console.log(JSON.stringify({ file, block: i, ok: true, type: r.diagramType }));
    } catch (e) {
      console.log(JSON.stringify({ file, block: i, ok: false, error: String(e.message ?? e) }));
    }
  }
}
