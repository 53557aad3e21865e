// UI behaviour the `local` provider cannot trigger on demand (several calls in one step, a full
// pool, a dropped transport). These run only against the scripted dev server (BERTH_DEV=1); the
// integrator's run against berth skips them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { openBrowser, screenshot, READY_TIMEOUT_MS, TEST_TIMEOUT_MS } from "./lib.mjs";

const dev = process.env.BERTH_DEV === "1";
const skip = dev ? false : "needs the scripted dev server (BERTH_DEV=1)";

async function start(opts) {
  const { startDevServer } = await import("./dev-server.mjs");
  return startDevServer({ port: 0, ...opts });
}

const stateIs = (page, s) =>
  page.waitForFunction((x) => document.getElementById("status").dataset.state === x, s, { timeout: READY_TIMEOUT_MS });

test("two calls in one step: k of n shown, outputs stay under their own call", { skip, timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = await start();
  const b = await openBrowser();
  try {
    const { page } = b;
    await page.goto(srv.url + "/");
    await stateIs(page, "ready");
    await page.locator("#message").fill("Read notes.txt and then Read README.md");
    await page.locator("#message").press("Enter");

    const first = page.locator('.call[data-state="pending"]');
    await first.waitFor();
    assert.equal((await first.locator(".call-pos").textContent()).trim(), "1 of 2");
    const id1 = await first.getAttribute("data-call-id");
    await screenshot(page, "dev-two-calls-1");
    await first.getByRole("button", { name: "Approve read_file" }).click();

    // The second card appears with focus on its Approve button (the user was deciding).
    await page.waitForFunction((id) => {
      const p = document.querySelector('.call[data-state="pending"]');
      return p && p.dataset.callId !== id;
    }, id1);
    const second = page.locator('.call[data-state="pending"]');
    assert.equal((await second.locator(".call-pos").textContent()).trim(), "2 of 2");
    const id2 = await second.getAttribute("data-call-id");
    assert.notEqual(id1, id2);
    assert.equal(await page.evaluate(() => document.activeElement.getAttribute("aria-label")), "Approve read_file");
    await page.keyboard.press("Enter");

    const out1 = page.locator(`.call[data-call-id="${id1}"] .call-output-body`);
    const out2 = page.locator(`.call[data-call-id="${id2}"] .call-output-body`);
    await out1.waitFor();
    await out2.waitFor();
    assert.equal(await out1.count(), 1);
    assert.equal(await out2.count(), 1);
    assert.match(await out1.textContent(), /hello from the dev server/);
    assert.match(await out2.textContent(), /# Sandbox/);
    await page.locator(".msg-assistant").first().waitFor();
    await screenshot(page, "dev-two-calls-2");
    assert.deepEqual(b.problems, []);
  } finally {
    await b.close();
    await srv.close();
  }
});

test("a full pool shows the queue position, then ready when a container frees up", { skip, timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = await start({ poolMax: 1 });
  const a = await openBrowser();
  const b = await openBrowser();
  try {
    await a.page.goto(srv.url + "/");
    await stateIs(a.page, "ready");
    await b.page.goto(srv.url + "/");
    await stateIs(b.page, "queued");
    assert.equal((await b.page.locator("#status-text").textContent()).trim(), "Queued — position 1");
    assert.ok(await b.page.locator("#message").isDisabled(), "cannot type while queued");
    await screenshot(b.page, "dev-queued");
    await a.page.getByRole("button", { name: "End session" }).click();
    await stateIs(b.page, "ready");
    assert.ok(await b.page.locator("#message").isEnabled());
    assert.deepEqual([...a.problems, ...b.problems], []);
  } finally {
    await a.close();
    await b.close();
    await srv.close();
  }
});

test("a dropped transport shows reconnecting, then resumed without duplicating the transcript", { skip, timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = await start();
  const b = await openBrowser();
  try {
    const { page } = b;
    await page.goto(srv.url + "/");
    await stateIs(page, "ready");
    const container = (await page.locator("#status-text").textContent()).split("container ")[1];
    await page.locator("#message").fill("hello");
    await page.locator("#message").press("Enter");
    await page.locator(".msg-assistant").waitFor();
    const before = await page.locator("#log > *").count();

    await page.evaluate(() => {
      window.seenStates = [];
      const st = document.getElementById("status");
      new MutationObserver(() => window.seenStates.push(st.dataset.state)).observe(st, { attributes: true });
    });
    const [s] = srv.state.sessions.values();
    s.socket.conn.close(); // transport drops; the client reconnects on its own
    await stateIs(page, "resumed");
    assert.equal((await page.locator("#status-text").textContent()).trim(), "Resumed — container " + container);
    assert.ok((await page.evaluate(() => window.seenStates)).includes("reconnecting"), "reconnecting was shown");
    assert.equal(await page.locator("#log > *").count(), before, "transcript neither lost nor duplicated");
    assert.equal(srv.state.sessions.size, 1, "same session, no second container");
    assert.deepEqual(b.problems, []);
  } finally {
    await b.close();
    await srv.close();
  }
});
