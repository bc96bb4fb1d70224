// serve.mjs - a tiny static file server for the browser test: serves one
// folder on 127.0.0.1 (port 0 = any free one), writes the port it got to
// a file, and logs each request path (one a line) to stdout. Stops on
// SIGTERM, or by itself after --max-seconds.
//   node serve.mjs --dir DIR --port-file FILE [--max-seconds 300]
import { createServer } from "node:http";
import { readFile, writeFile } from "node:fs/promises";
import { join, normalize, extname } from "node:path";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) =>
    a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc, []));
const root = normalize(args.dir);
const types = { ".js": "text/javascript", ".css": "text/css",
                ".html": "text/html", ".png": "image/png",
                ".json": "application/json", ".map": "application/json" };

const server = createServer(async (req, res) => {
  const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
  console.log(path);
  const file = normalize(join(root, path.replace(/^\/assets/, "")));
  if (!file.startsWith(root)) {
    res.writeHead(403).end();
    return;
  }
  try {
    const body = await readFile(file);
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream",
                         "access-control-allow-origin": "*" });
    res.end(body);
  } catch {
    res.writeHead(404).end("not found");
  }
});
server.listen(0, "127.0.0.1", async () => {
  await writeFile(args["port-file"], String(server.address().port));
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
setTimeout(() => process.exit(0), 1000 * Number(args["max-seconds"] ?? 300)).unref();
