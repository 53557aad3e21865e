// Shared helpers for the browser tests: target URL, Chromium launch, console-error capture,
// screenshots. The target is BERTH_URL (default http://127.0.0.1:3000); with BERTH_DEV=1 the
// tests start tests/e2e/browser/dev-server.mjs on a free port instead (development aid only).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = path.resolve(here, "../artifacts");
export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
export const READY_TIMEOUT_MS = Number(process.env.BERTH_READY_TIMEOUT_MS || 45000);
export const STEP_TIMEOUT_MS = Number(process.env.BERTH_STEP_TIMEOUT_MS || 30000);
// Generous: on a loaded machine starting Chromium alone can take half a minute.
export const TEST_TIMEOUT_MS = Number(process.env.BERTH_TEST_TIMEOUT_MS || 300000);

let devServer = null;

export async function targetUrl() {
  if (process.env.BERTH_DEV === "1") {
    if (!devServer) {
      const { startDevServer } = await import("./dev-server.mjs");
      devServer = await startDevServer({ port: 0 });
    }
    return devServer.url;
  }
  const url = process.env.BERTH_URL || "http://127.0.0.1:3000";
  const host = new URL(url).hostname;
  if (host !== "127.0.0.1" && host !== "localhost" && host !== "[::1]")
    throw new Error("BERTH_URL must point at a local server (127.0.0.1), got " + url);
  return url.replace(/\/+$/, "");
}

export async function stopDevServer() {
  if (devServer) await devServer.close();
  devServer = null;
}

// One Chromium per test, with its own fresh profile (so fresh localStorage), removed afterwards.
export async function openBrowser({ width = 1280, height = 800 } = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "berth-e2e-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 180000,
    viewport: { width, height },
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  const page = context.pages()[0] || (await context.newPage());
  const problems = [];
  const watch = (p) => {
    p.on("console", (msg) => {
      if (msg.type() === "error") problems.push("console error: " + msg.text());
    });
    p.on("pageerror", (err) => problems.push("page error: " + err.message));
  };
  watch(page);
  context.on("page", watch);
  return {
    context,
    page,
    problems,
    async close() {
      await context.close().catch(() => {});
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

export async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, "browser-" + name + ".png");
  await page.screenshot({ path: file, fullPage: false });
  return file;
}
