// What the capacity harness reads from the host, cheaply and without perturbing the run much:
// /proc (CPU, RSS, fds of processes), cgroups (container memory and CPU), the Docker Engine API
// on its unix socket (containers of the replicas under test), redis-cli INFO, and Berth's
// /metrics. Every call has a timeout; a probe that fails returns null, never throws, so one bad
// sample does not end a 30-minute soak.
import { execFile, execFileSync } from "node:child_process";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import http from "node:http";
import { parsePrometheus } from "./stats.mjs";

const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

const read = (p) => {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return null;
  }
};

// utime+stime (+ reaped children's cutime+cstime) of one process, in seconds; null if gone.
export function procCpuS(pid) {
  const s = read(`/proc/${pid}/stat`);
  if (!s) return null;
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  // fields after ")": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
}

export function procRssBytes(pid) {
  const s = read(`/proc/${pid}/status`);
  const m = s && /VmRSS:\s+(\d+) kB/.exec(s);
  return m ? Number(m[1]) * 1024 : null;
}

export function procFds(pid) {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

// A process and all its descendants (threads' children lists), bounded.
export function procTree(pid) {
  const out = [];
  const todo = [pid];
  while (todo.length && out.length < 10000) {
    const p = todo.pop();
    out.push(p);
    let tasks = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      const c = read(`/proc/${p}/task/${t}/children`);
      if (c) for (const k of c.trim().split(/\s+/).filter(Boolean)) todo.push(Number(k));
    }
  }
  return out;
}

// Sum of CPU seconds / RSS / fds over a set of pids (null when none of them is alive).
export function procsSnapshot(pids) {
  let cpuS = 0, rssBytes = 0, fds = 0, alive = 0;
  for (const pid of pids) {
    const c = procCpuS(pid);
    if (c === null) continue;
    alive++;
    cpuS += c;
    rssBytes += procRssBytes(pid) ?? 0;
    fds += procFds(pid) ?? 0;
  }
  return alive ? { cpuS, rssBytes, fds, processes: alive } : null;
}

// Pids whose /proc/<pid>/comm is one of names (comm is cut to 15 characters by the kernel).
export function pidsByComm(names) {
  const want = new Set(names.map((n) => n.slice(0, 15)));
  const out = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const c = read(`/proc/${d}/comm`);
    if (c && want.has(c.trim())) out.push(Number(d));
  }
  return out;
}

// containerd-shim-runc-v2 pid of each container id (from its command line "-id <id>").
export function shimPids() {
  const out = new Map();
  for (const pid of pidsByComm(["containerd-shim-runc-v2"])) {
    const cmd = read(`/proc/${pid}/cmdline`);
    if (!cmd) continue;
    const a = cmd.split("\0");
    const i = a.indexOf("-id");
    if (i >= 0 && a[i + 1]) out.set(a[i + 1], pid);
  }
  return out;
}

// Rss / Pss / Private_Dirty (bytes) of a process from smaps_rollup.
export function smapsRollup(pid) {
  const s = read(`/proc/${pid}/smaps_rollup`);
  if (!s) return null;
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? 0) * 1024;
  return { rss: kb("Rss"), pss: kb("Pss"), privateDirty: kb("Private_Dirty") };
}

// Host CPU from /proc/stat: {totalS, busyS} summed over all CPUs.
export function hostCpu() {
  const s = read("/proc/stat");
  if (!s) return null;
  const f = s.split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // user..steal (guest is inside user)
  const idle = f[3] + f[4];
  return { totalS: total / CLK_TCK, busyS: (total - idle) / CLK_TCK };
}

// ---- cgroups (v1 with the cgroupfs driver, v2 with cgroupfs or systemd)
const MEM_DIRS = (id) => [
  `/sys/fs/cgroup/memory/docker/${id}`,
  `/sys/fs/cgroup/docker/${id}`,
  `/sys/fs/cgroup/system.slice/docker-${id}.scope`,
];

// Memory a container costs the host: usage minus reclaimable inactive file cache (what
// `docker stats` shows). Bytes, or null when its cgroup is not found.
export function containerMemoryBytes(id) {
  for (const dir of MEM_DIRS(id)) {
    const v1 = read(`${dir}/memory.usage_in_bytes`);
    const v2 = v1 === null ? read(`${dir}/memory.current`) : null;
    if (v1 === null && v2 === null) continue;
    const stat = read(`${dir}/memory.stat`) ?? "";
    const inactive = Number((/^(?:total_inactive_file|inactive_file) (\d+)/m.exec(stat) ?? [])[1] ?? 0);
    return Math.max(0, Number(v1 ?? v2) - inactive);
  }
  return null;
}

// CPU seconds of all Docker containers ever run under the docker parent cgroup (a parent cgroup
// keeps the usage of removed children), or null.
export function containersCpuS() {
  const v1 = read("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage") ?? read("/sys/fs/cgroup/cpu,cpuacct/docker/cpuacct.usage");
  if (v1 !== null) return Number(v1) / 1e9;
  for (const dir of ["/sys/fs/cgroup/docker", "/sys/fs/cgroup/system.slice"]) {
    const s = read(`${dir}/cpu.stat`);
    const m = s && /^usage_usec (\d+)/m.exec(s);
    if (m) return Number(m[1]) / 1e6;
  }
  return null;
}

// ---- Docker Engine API over its unix socket
const DOCKER_SOCK = (process.env.DOCKER_HOST || "unix:///var/run/docker.sock").replace(/^unix:\/\//, "");

export function dockerGet(path, timeoutMs = 10000) {
  return new Promise((resolve) => {
    const req = http.request({ socketPath: DOCKER_SOCK, path, method: "GET", timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        try {
          resolve(res.statusCode === 200 ? JSON.parse(body) : null);
        } catch {
          resolve(null);
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve(null));
    req.end();
  });
}

// Containers labelled berth.managed=true whose berth.replica is one of `replicas`:
// [{id, state, replica}] or null when the API does not answer.
export async function managedContainers(replicas) {
  const filters = encodeURIComponent(JSON.stringify({ label: ["berth.managed=true"] }));
  const list = await dockerGet(`/containers/json?all=1&filters=${filters}`);
  if (!Array.isArray(list)) return null;
  const want = new Set(replicas);
  return list
    .filter((c) => want.has(c.Labels?.["berth.replica"]))
    .map((c) => ({ id: c.Id, state: c.State, replica: c.Labels["berth.replica"] }));
}

export function dockerRm(ids) {
  // docker rm -f in batches of 100, bounded in time; removal errors (already gone) are fine.
  for (let i = 0; i < ids.length; i += 100) {
    try {
      execFileSync("docker", ["rm", "-f", ...ids.slice(i, i + 100)], { stdio: "ignore", timeout: 120000 });
    } catch {
      /* counted by the caller's recount */
    }
  }
}

// ---- Redis INFO through redis-cli (a host redis-cli, or `docker exec <container> redis-cli`)
export function redisInfo(cliArgv, timeoutMs = 5000) {
  return new Promise((resolve) => {
    execFile(cliArgv[0], [...cliArgv.slice(1), "INFO"], { timeout: timeoutMs }, (err, stdout) => {
      if (err) return resolve(null);
      const info = {};
      for (const line of stdout.split(/\r?\n/)) {
        const i = line.indexOf(":");
        if (i > 0 && !line.startsWith("#")) info[line.slice(0, i)] = line.slice(i + 1);
      }
      const keys = Object.entries(info)
        .filter(([k]) => /^db\d+$/.test(k))
        .reduce((a, [, v]) => a + Number(/keys=(\d+)/.exec(v)?.[1] ?? 0), 0);
      resolve({
        usedMemory: Number(info.used_memory),
        maxmemory: Number(info.maxmemory),
        keys,
        cpuS: Number(info.used_cpu_sys) + Number(info.used_cpu_user),
        connectedClients: Number(info.connected_clients),
        evictedKeys: Number(info.evicted_keys),
      });
    });
  });
}

// ---- Berth /metrics
export async function scrapeMetrics(url, timeoutMs = 5000) {
  try {
    const r = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!r.ok) return null;
    return parsePrometheus(await r.text());
  } catch {
    return null;
  }
}

export async function getJson(url, timeoutMs = 5000) {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return r.ok ? await r.json() : null;
  } catch {
    return null;
  }
}

// The pid listening on a TCP port of this host (ss -ltnp), or null.
export function listenerPid(port) {
  try {
    const out = execFileSync("ss", ["-ltnpH", `sport = :${port}`], { timeout: 5000 }).toString();
    const m = /pid=(\d+)/.exec(out);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export function procEnv(pid, name) {
  const s = read(`/proc/${pid}/environ`);
  if (!s) return null;
  const hit = s.split("\0").find((kv) => kv.startsWith(`${name}=`));
  return hit ? hit.slice(name.length + 1) : null;
}

export const exists = existsSync;
