// A real streamable-HTTP MCP server (the official @modelcontextprotocol/sdk), for tests of
// Berth's HTTP MCP client. Stateful: each initialize gets its own session (Mcp-Session-Id).
// Tools: echo {text} -> "echo: <text>", read_file {path} -> "remote file <path>" (clashes with
// the sandbox's read_file, so Berth exposes it as <server>__read_file).
// Import startMcpHttpServer(), or run it: `node mcp-http-server.mjs [--json]` prints its URL on
// stdout and serves until stdin closes (the C++ integration test's child process); the line
// "forget" on stdin drops all sessions (answered "forgotten" on stdout).
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

function buildServer() {
  const server = new McpServer({ name: 'berth-test-remote', version: '1.0.0' });
  server.registerTool('echo', {
    description: 'Echo the text back',
    inputSchema: { text: z.string() },
  }, async ({ text }) => ({ content: [{ type: 'text', text: `echo: ${text}` }] }));
  server.registerTool('read_file', {
    description: 'Read a remote file',
    inputSchema: { path: z.string() },
  }, async ({ path }) => ({ content: [{ type: 'text', text: `remote file ${path}` }] }));
  return server;
}

// options.jsonResponse: reply with application/json instead of an SSE stream.
export async function startMcpHttpServer({ jsonResponse = false } = {}) {
  const transports = new Map();
  const requests = [];  // {method, headers} of every HTTP request, for assertions
  const httpServer = http.createServer(async (req, res) => {
    requests.push({ method: req.method, headers: { ...req.headers } });
    try {
      const sid = req.headers['mcp-session-id'];
      let transport = sid ? transports.get(sid) : undefined;
      if (sid && !transport) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }));
        return;
      }
      if (!transport) {
        transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          enableJsonResponse: jsonResponse,
          onsessioninitialized: (id) => transports.set(id, transport),
        });
        transport.onclose = () => { if (transport.sessionId) transports.delete(transport.sessionId); };
        await buildServer().connect(transport);
      }
      await transport.handleRequest(req, res);
    } catch (e) {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(e));
    }
  });
  await new Promise((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const { port } = httpServer.address();
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    requests,
    sessions: () => transports.size,
    // Drops every session as a restarted server would: later requests with their ids get 404.
    forget: () => transports.clear(),
    close: () => new Promise((resolve) => {
      for (const t of transports.values()) t.close().catch(() => {});
      httpServer.closeAllConnections?.();
      httpServer.close(() => resolve());
    }),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const srv = await startMcpHttpServer({ jsonResponse: process.argv.includes('--json') });
  process.stdout.write(`${srv.url}\n`);
  // Commands on stdin, one a line: "forget" (answered "forgotten"). EOF stops the server.
  let pending = '';
  process.stdin.on('data', (d) => {
    pending += d;
    for (let i = pending.indexOf('\n'); i >= 0; i = pending.indexOf('\n')) {
      const cmd = pending.slice(0, i).trim();
      pending = pending.slice(i + 1);
      if (cmd === 'forget') { srv.forget(); process.stdout.write('forgotten\n'); }
    }
  });
  process.stdin.on('end', async () => { await srv.close(); process.exit(0); });
}
