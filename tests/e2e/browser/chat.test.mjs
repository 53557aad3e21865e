// Browser tests of Berth's chat UI (web/), driven through Debian's Chromium by playwright-core.
//   cd tests/e2e && BERTH_URL=http://127.0.0.1:3000 node --test browser/
//   (BERTH_DEV=1 runs them against browser/dev-server.mjs instead; development aid only.)
// The target must run the `local` LLM provider; every session the tests open is ended through
// the UI so its container is destroyed.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { targetUrl, stopDevServer, openBrowser, screenshot, READY_TIMEOUT_MS, STEP_TIMEOUT_MS, TEST_TIMEOUT_MS } from "./lib.mjs";

const LIST = "List all files in /workspace";
const STORAGE_KEY = "berth.session";

after(stopDevServer);

async function gotoReady(page, url, states = ["ready", "resumed"]) {
  const res = await page.goto(url + "/", { waitUntil: "domcontentloaded" });
  assert.equal(res.status(), 200, "GET / answers 200");
  await page.waitForFunction((s) => s.includes(document.getElementById("status").dataset.state), states, {
    timeout: READY_TIMEOUT_MS,
  });
  return res;
}

async function statusText(page) {
  return (await page.locator("#status-text").textContent()).trim();
}

function containerOf(text) {
  const m = /container (\S+)/.exec(text);
  return m ? m[1] : null;
}

async function send(page, text) {
  await page.locator("#message").fill(text);
  await page.getByRole("button", { name: "Send" }).click();
}

// Waits for a pending approval card for `tool` and checks what it shows.
async function pendingCall(page, tool) {
  const pending = page.locator('.call[data-state="pending"]').last();
  await pending.waitFor({ state: "visible" });
  // Pin the card by its call id: its state changes once decided.
  const callId = await pending.getAttribute("data-call-id");
  assert.ok(callId, "card carries its callId");
  const card = page.locator(`.call[data-call-id="${callId}"]`);
  assert.equal((await card.locator(".call-name").textContent()).trim(), tool);
  return card;
}

// Finished assistant messages (a streamed answer counts once it ended).
const DONE = ".msg-assistant:not(.is-streaming)";
async function assistantCount(page) {
  return page.locator(DONE).count();
}

// The turn ends with a new agent:response or agent:error after `before` assistant messages.
async function waitTurnEnd(page, before) {
  await page.waitForFunction(
    (n) => document.querySelectorAll(".msg-assistant:not(.is-streaming)").length > n || document.querySelector(".err") !== null,
    before,
    { timeout: STEP_TIMEOUT_MS },
  );
}

async function endSession(page) {
  const end = page.locator("#end");
  if (!(await end.isVisible()) || !(await end.isEnabled())) return;
  await end.click();
  await page.waitForFunction(() => document.getElementById("status").dataset.state === "ended", null, {
    timeout: STEP_TIMEOUT_MS,
  });
}

function noProblems(b) {
  assert.deepEqual(b.problems, [], "no console errors, page errors or CSP violations");
}

async function withBrowser(opts, fn) {
  const b = await openBrowser(opts);
  try {
    await fn(b);
  } finally {
    await endSession(b.page).catch(() => {});
    await b.close();
  }
}

test("full tool flow by clicking: list files, approve, output under the call, agent answer", { timeout: TEST_TIMEOUT_MS }, async () => {
  const url = await targetUrl();
  await withBrowser({}, async (b) => {
    const { page } = b;
    await gotoReady(page, url);
    const status = await statusText(page);
    assert.match(status, /^Ready — container [0-9a-zA-Z_-]{4,12}$/, "status shows the short container id: " + status);

    await send(page, LIST);
    await page.locator(".msg-user", { hasText: LIST }).waitFor();
    const card = await pendingCall(page, "list_files");
    const args = await card.locator(".call-args").textContent();
    assert.deepEqual(JSON.parse(args).path, "/workspace", "arguments are shown as JSON");
    assert.match(args, /\n {2}"path": "\/workspace"/, "arguments are pretty-printed");
    assert.equal((await card.locator(".call-pos").textContent()).trim(), "1 of 1");
    await screenshot(page, "flow-approval");

    const before = await assistantCount(page);
    await card.getByRole("button", { name: "Approve list_files" }).click();
    const output = card.locator(".call-output .call-output-body");
    await output.first().waitFor();
    assert.ok((await output.first().textContent()).length > 0, "tool output is shown under its call");
    await waitTurnEnd(page, before);
    assert.equal(await page.locator(".err").count(), 0, "no error in a successful flow");
    const answer = await page.locator(DONE).last().textContent();
    assert.match(answer, /\/workspace/, "agent answer mentions the listed directory");
    // The answer comes after the card it summarises.
    const order = await page.evaluate(() => {
      const c = document.querySelector(".call");
      const all = document.querySelectorAll(".msg-assistant");
      return c.compareDocumentPosition(all[all.length - 1]) & Node.DOCUMENT_POSITION_FOLLOWING;
    });
    assert.ok(order, "agent answer follows the tool call");
    assert.equal(await page.locator('.call[data-state="pending"]').count(), 0);
    await screenshot(page, "flow-done");
    noProblems(b);
  });
});

test("reload resumes the session: same container, history visible", { timeout: TEST_TIMEOUT_MS }, async () => {
  const url = await targetUrl();
  await withBrowser({}, async (b) => {
    const { page } = b;
    await gotoReady(page, url);
    const first = containerOf(await statusText(page));
    const sessionOf = () => page.evaluate((k) => JSON.parse(localStorage.getItem(k) || "null")?.sessionId ?? null, STORAGE_KEY);
    const firstSession = await sessionOf();
    assert.ok(firstSession, "the session id is stored");
    assert.ok(first, "container id shown");
    const saved = await page.evaluate((k) => JSON.parse(localStorage.getItem(k)), STORAGE_KEY);
    assert.ok(saved && saved.sessionId && saved.resumeToken, "session id and resume token persisted");

    await send(page, LIST);
    const card = await pendingCall(page, "list_files");
    const before = await assistantCount(page);
    await card.getByRole("button", { name: "Approve list_files" }).click();
    await card.locator(".call-output").first().waitFor();
    await waitTurnEnd(page, before);
    const outputText = (await card.locator(".call-output-body").first().textContent()).trim();

    await page.reload({ waitUntil: "domcontentloaded" });
    await page.waitForFunction(() => document.getElementById("status").dataset.state === "resumed", null, {
      timeout: READY_TIMEOUT_MS,
    });
    const status = await statusText(page);
    assert.match(status, /^Resumed/, status);
    assert.equal(containerOf(status), first, "the same container after reload");
    const again = await page.evaluate((k) => JSON.parse(localStorage.getItem(k)), STORAGE_KEY);
    assert.equal(again.sessionId, saved.sessionId);
    await page.locator(".msg-user", { hasText: LIST }).waitFor();
    assert.ok((await page.locator(".msg-assistant").count()) >= 1, "assistant history shown");
    if (outputText && outputText !== "(no output)") {
      const firstLine = outputText.split("\n")[0];
      const log = await page.locator("#log").textContent();
      assert.ok(log.includes(firstLine), "tool output from before the reload is shown: " + firstLine);
    }
    await screenshot(page, "resumed");
    noProblems(b);
  });
});

test("a rejected call is marked rejected and the turn still ends", { timeout: TEST_TIMEOUT_MS }, async () => {
  const url = await targetUrl();
  await withBrowser({}, async (b) => {
    const { page } = b;
    await gotoReady(page, url);
    await send(page, LIST);
    const card = await pendingCall(page, "list_files");
    const before = await assistantCount(page);
    await card.getByRole("button", { name: "Reject list_files" }).click();
    await page.waitForFunction((el) => el.dataset.state === "rejected", await card.elementHandle());
    assert.equal((await card.locator(".call-state").textContent()).trim(), "Rejected");
    assert.equal(await card.getByRole("button").count(), 0, "no approve/reject buttons left");
    await waitTurnEnd(page, before);
    // A rejected call never shows a successful output.
    assert.equal(await card.locator(".call-output:not(.is-error)").count(), 0);
    assert.ok(await page.locator("#thinking").isHidden(), "thinking indicator cleared");
    await screenshot(page, "rejected");
    noProblems(b);
  });
});

test("six requests fired quickly show TOO_MANY_REQUESTS", { timeout: TEST_TIMEOUT_MS }, async () => {
  const url = await targetUrl();
  await withBrowser({}, async (b) => {
    const { page } = b;
    await gotoReady(page, url);
    const input = page.locator("#message");
    for (let i = 1; i <= 6; i++) {
      await input.fill(LIST + " (" + i + ")");
      await input.press("Enter");
    }
    const err = page.locator(".err", { hasText: "TOO_MANY_REQUESTS" });
    await err.first().waitFor();
    assert.equal((await err.first().locator(".err-code").textContent()).trim(), "TOO_MANY_REQUESTS");
    assert.ok((await err.first().locator(".err-text").textContent()).trim().length > 0, "readable message");
    assert.equal(await err.first().getAttribute("role"), "alert");
    await screenshot(page, "too-many-requests");
    noProblems(b);
  });
});

test("no console errors or CSP violations on the chat page and the operator panel", { timeout: TEST_TIMEOUT_MS }, async () => {
  const url = await targetUrl();
  await withBrowser({}, async (b) => {
    const { page } = b;
    const res = await gotoReady(page, url);
    const csp = res.headers()["content-security-policy"] || "";
    assert.match(csp, /script-src 'self'/, "page served with a restrictive CSP");
    assert.match(csp, /style-src 'self'/);
    await page.locator("#message").focus();
    await screenshot(page, "ready");

    const ops = await page.goto(url + "/ops.html", { waitUntil: "domcontentloaded" });
    assert.equal(ops.status(), 200);
    await page.waitForFunction(() => document.getElementById("h-status").textContent !== "—", null, {
      timeout: STEP_TIMEOUT_MS,
    });
    await page.waitForFunction(() => document.getElementById("p-total").textContent !== "—");
    assert.match(await page.locator("#h-status").textContent(), /HTTP \d{3}/);
    assert.match(await page.locator("#p-total").textContent(), /^\d+$/, "pool total shown");
    await screenshot(page, "ops");
    await page.goto(url + "/", { waitUntil: "domcontentloaded" });
    await page.waitForFunction(() => ["ready", "resumed"].includes(document.getElementById("status").dataset.state));
    noProblems(b);
  });
});

test("375 px wide: no horizontal scroll through a whole tool flow", { timeout: TEST_TIMEOUT_MS }, async () => {
  const url = await targetUrl();
  await withBrowser({ width: 375, height: 740 }, async (b) => {
    const { page } = b;
    await gotoReady(page, url);
    const noHScroll = () =>
      page.evaluate(() => ({
        doc: document.documentElement.scrollWidth - document.documentElement.clientWidth,
        body: document.body.scrollWidth - document.body.clientWidth,
        log: document.getElementById("log").scrollWidth - document.getElementById("log").clientWidth,
      }));
    assert.deepEqual(await noHScroll(), { doc: 0, body: 0, log: 0 }, "no horizontal overflow when ready");
    await send(page, "Please list all files in /workspace/a-rather-long-directory-name-that-does-not-wrap-easily");
    const card = page.locator(".call").last();
    await card.waitFor();
    await page.waitForFunction(() => document.querySelector(".call-actions:not([hidden]), .err, .msg-assistant"));
    assert.deepEqual(await noHScroll(), { doc: 0, body: 0, log: 0 }, "no horizontal overflow with an approval card");
    await screenshot(page, "narrow-approval");
    const approve = card.getByRole("button", { name: /^Approve / });
    if (await approve.count()) {
      const before = await assistantCount(page);
      await approve.click();
      await waitTurnEnd(page, before);
    }
    assert.deepEqual(await noHScroll(), { doc: 0, body: 0, log: 0 }, "no horizontal overflow after the answer");
    const box = await page.locator("#send").boundingBox();
    assert.ok(box && box.x + box.width <= 375, "send button inside the viewport");
    await screenshot(page, "narrow-done");
    noProblems(b);
  });
});

test("keyboard only: type, send with Enter, tab to Approve, Enter", { timeout: TEST_TIMEOUT_MS }, async () => {
  const url = await targetUrl();
  await withBrowser({}, async (b) => {
    const { page } = b;
    await gotoReady(page, url);
    const active = () =>
      page.evaluate(() => {
        const a = document.activeElement;
        return { id: a.id, label: a.getAttribute("aria-label") || a.textContent.trim(), tag: a.tagName };
      });
    // Tab from the top of the page to the message box (bounded).
    await page.locator("body").focus();
    let found = false;
    for (let i = 0; i < 20 && !found; i++) {
      await page.keyboard.press("Tab");
      found = (await active()).id === "message";
    }
    assert.ok(found, "message box reachable with Tab");
    await page.keyboard.type(LIST);
    await page.keyboard.press("Enter");
    await pendingCall(page, "list_files");

    // Back to the card's Approve button with Shift+Tab (bounded), check the focus is visible.
    found = false;
    for (let i = 0; i < 20 && !found; i++) {
      await page.keyboard.press("Shift+Tab");
      found = (await active()).label === "Approve list_files";
    }
    assert.ok(found, "Approve button reachable with the keyboard");
    const outline = await page.evaluate(() => {
      const s = getComputedStyle(document.activeElement);
      return { style: s.outlineStyle, width: parseFloat(s.outlineWidth) };
    });
    assert.notEqual(outline.style, "none", "focus is visible");
    assert.ok(outline.width >= 2, "focus outline at least 2px");
    await screenshot(page, "keyboard-focus");
    const before = await assistantCount(page);
    await page.keyboard.press("Enter");
    await page.locator(".call .call-output").first().waitFor();
    await waitTurnEnd(page, before);
    assert.equal((await active()).id, "message", "focus returns to the message box after deciding");
    noProblems(b);
  });
});

test("the answer streams in as deltas, and Stop shows only while a turn runs", { timeout: TEST_TIMEOUT_MS }, async () => {
  const url = await targetUrl();
  await withBrowser({}, async (b) => {
    const { page } = b;
    await gotoReady(page, url);
    const stop = page.locator("#stop");
    assert.equal(await stop.isVisible(), false, "no Stop before a turn");
    // Count the agent:delta events the page receives, as the app renders them.
    await send(page, LIST);
    const card = await pendingCall(page, "list_files");
    assert.equal(await stop.isVisible(), true, "Stop is shown while the turn waits for approval");
    const before = await assistantCount(page);
    await card.getByRole("button", { name: "Approve list_files" }).click();
    await waitTurnEnd(page, before);
    const last = page.locator(DONE).last();
    const deltas = Number(await last.getAttribute("data-deltas"));
    assert.ok(deltas >= 2, `the answer arrived in several deltas (${deltas})`);
    assert.match(await last.textContent(), /\/workspace/, "the finished message holds the whole answer");
    await page.waitForFunction(() => document.getElementById("stop").hidden, null, { timeout: STEP_TIMEOUT_MS });
    assert.equal(await page.locator(".msg-assistant.is-streaming").count(), 0);
    noProblems(b);
  });
});

test("Stop by keyboard ends a running tool: the call and the turn show stopped", { timeout: TEST_TIMEOUT_MS }, async () => {
  const url = await targetUrl();
  await withBrowser({}, async (b) => {
    const { page } = b;
    await gotoReady(page, url);
    await send(page, "run `sleep 30`");
    const card = await pendingCall(page, "run_command");
    await card.getByRole("button", { name: "Approve run_command" }).click();
    await page.locator('.call[data-state="approved"]').first().waitFor();
    // Tab from the message box to Stop (bounded), then Enter.
    await page.locator("#message").focus();
    let found = false;
    for (let i = 0; i < 10 && !found; i++) {
      await page.keyboard.press("Tab");
      found = await page.evaluate(() => document.activeElement.id === "stop");
    }
    assert.ok(found, "Stop reachable with Tab");
    const t0 = Date.now();
    await page.keyboard.press("Enter");
    await card.locator(".call-state", { hasText: "Stopped" }).waitFor({ timeout: STEP_TIMEOUT_MS });
    assert.ok(Date.now() - t0 < 10000, "stopped well before the 30 s command would end");
    await page.locator(".sys", { hasText: "Stopped." }).or(page.locator(".msg-note.is-stopped")).first().waitFor();
    await page.waitForFunction(() => document.getElementById("stop").hidden, null, { timeout: STEP_TIMEOUT_MS });
    await screenshot(page, "stopped");
    // The session goes on: the next turn works.
    await send(page, LIST);
    const next = await pendingCall(page, "list_files");
    assert.ok(await next.isVisible());
    // Escape stops too (the turn now awaits approval).
    await page.keyboard.press("Escape");
    await next.locator(".call-state", { hasText: "Stopped" }).waitFor({ timeout: STEP_TIMEOUT_MS });
    assert.equal(await page.locator(".err").count(), 0, "stopping is not an error");
    noProblems(b);
  });
});

test("reset history clears the transcript; end session clears localStorage; next visit gets a new session", { timeout: TEST_TIMEOUT_MS }, async () => {
  const url = await targetUrl();
  await withBrowser({}, async (b) => {
    const { page } = b;
    await gotoReady(page, url);
    const first = containerOf(await statusText(page));
    const sessionOf = () => page.evaluate((k) => JSON.parse(localStorage.getItem(k) || "null")?.sessionId ?? null, STORAGE_KEY);
    const firstSession = await sessionOf();
    assert.ok(firstSession, "the session id is stored");

    await send(page, "hello");
    await page.locator(DONE).first().waitFor();
    await page.getByRole("button", { name: "Reset history" }).click();
    await page.waitForFunction(() => !document.querySelector(".msg-user") && document.querySelector(".sys"));
    assert.ok((await page.locator(".sys").first().textContent()).trim().length > 0, "system message shown");
    await screenshot(page, "reset");
    await page.getByRole("button", { name: "End session" }).click();
    await page.waitForFunction(() => document.getElementById("status").dataset.state === "ended");
    assert.equal(await page.evaluate((k) => localStorage.getItem(k), STORAGE_KEY), null);
    await screenshot(page, "ended");
    await page.reload({ waitUntil: "domcontentloaded" });
    await page.waitForFunction(() => document.getElementById("status").dataset.state === "ready", null, {
      timeout: READY_TIMEOUT_MS,
    });
    // session:end scrubs the container and returns it to the pool (docs/SANDBOX.md), so the new
    // session may well get the same container back: what must differ is the session.
    const second = containerOf(await statusText(page));
    assert.ok(first && second, "both visits show their container");
    const secondSession = await sessionOf();
    assert.ok(secondSession && secondSession !== firstSession, "the next visit is a new session");
    noProblems(b);
  });
});
