// A stand-in for the OpenAI Chat Completions API on 127.0.0.1 (a fake for a cloud LLM API only),
// speaking its real streaming wire format: `stream: true` requests get text/event-stream with
// chat.completion.chunk objects (role chunk, content pieces, a finish_reason chunk, the usage
// chunk that stream_options.include_usage asks for, `data: [DONE]`), chunked. Each reply follows
// a script entry (the last repeats):
//   {pieces: [...], gapMs}          stream the pieces, gapMs apart
//   {pieces, gapMs, cutAfter: n}    destroy the connection after n pieces (a provider that dies)
//   {pieces, firstDelayMs}          wait before the first content piece (the model "thinks")
//   {hang: true}                    never answer (not even the status line) until the client goes
//   {pieces, usage: {prompt_tokens, completion_tokens}}   the usage chunk reports these
// Records every request ({body, at, closedEarly}) and, per reply, when its first byte and its
// first content piece were written (process.hrtime, ns), so a benchmark in the same process can
// compare with the time its client saw the first agent:delta.
import http from "node:http";

export async function startFakeOpenAI(script = [{ pieces: ["Hello", " there"], gapMs: 0 }]) {
  const requests = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", async () => {
      const entry = script[Math.min(requests.length, script.length - 1)];
      const rec = { body: JSON.parse(body || "{}"), at: Date.now(), firstByteNs: null, firstContentNs: null,
                    closedEarly: false, done: false };
      requests.push(rec);
      res.on("close", () => {
        if (!rec.done) rec.closedEarly = true;
      });
      if (entry.hang) return;
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "close" });
      const chunk = (choices, usage = null) =>
        `data: ${JSON.stringify({ id: "chatcmpl-fake", object: "chat.completion.chunk", created: 1733000000, model: "gpt-4o-mini-2024-07-18", choices, usage })}\n\n`;
      // Node corks a response's socket until the next tick: a cut right after a write would drop
      // the written piece, so a cut waits for the last write to reach the socket.
      let flushed = Promise.resolve();
      const write = (s) => {
        if (rec.firstByteNs === null) rec.firstByteNs = process.hrtime.bigint();
        let done;
        flushed = new Promise((r) => (done = r));
        return res.write(s, () => done());
      };
      write(chunk([{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }]));
      const pieces = entry.pieces || [];
      for (let i = 0; i < pieces.length; i++) {
        if (res.destroyed) return;
        if (entry.cutAfter !== undefined && i === entry.cutAfter) {
          await flushed;
          res.socket?.destroy();
          return;
        }
        if (i > 0 && entry.gapMs) await new Promise((r) => setTimeout(r, entry.gapMs));
        if (i === 0 && entry.firstDelayMs) await new Promise((r) => setTimeout(r, entry.firstDelayMs));
        if (res.destroyed) return;
        const ok = write(chunk([{ index: 0, delta: { content: pieces[i] }, logprobs: null, finish_reason: null }]));
        if (i === 0) rec.firstContentNs = process.hrtime.bigint();
        // Stream as fast as the reader (berth) takes it; never buffer unboundedly here.
        if (!ok) await new Promise((r) => res.once("drain", r));
      }
      write(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }]));
      const usage = { prompt_tokens: 10, completion_tokens: pieces.length, ...entry.usage };
      write(chunk([], { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens }));
      write("data: [DONE]\n\n");
      rec.done = true;
      res.end();
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    port,
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    script,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
