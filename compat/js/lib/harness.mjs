// Harness for the JavaScript compatibility suite: builds (or finds) the keyhaven
// binary, runs a real `keyhaven serve` on free loopback ports in a temporary data
// directory, and gives tests what the unmodified Azure SDK clients need to reach it:
// an https.Agent that trusts the server's CA and resolves every host name (including
// `{vault}.vault.localhost`, which nothing on these machines resolves) to 127.0.0.1.
//
// It lives outside test/ because Node 20's `node --test` runs every .mjs file under a
// test/ directory as a test file.

import { spawn, execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

// The client ID the password grant uses (the Azure CLI's public client, which
// keyhaven's identity plane accepts for the bootstrap administrator).
export const CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

// Built-in role definition GUIDs (the same as Azure's).
export const ROLE = Object.freeze({
  owner: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
  keyVaultSecretsOfficer: "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
  keyVaultSecretsUser: "4633458b-17de-408a-b874-0445c86b69e6",
  // Every key management and cryptographic operation.
  keyVaultCryptoOfficer: "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
  keyVaultCertificatesOfficer: "a4417e6f-fecd-4de8-b567-7b0420556985",
});

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));

// Keep at most this much server output for failure messages.
const MAX_LOG_BYTES = 64 * 1024;

// freePort is a loopback port free when asked, drawn from below Linux's
// ephemeral range (32768 and up) so that the outgoing connections of other
// tests cannot take it before keyhaven binds it; startKeyhaven still retries
// a bind conflict.
async function freePort() {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const ok = await new Promise((resolve) => {
      const srv = net.createServer();
      srv.unref();
      srv.once("error", () => resolve(false));
      srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error("no free loopback port below 32000");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function findBinary(workDir) {
  if (process.env.KEYHAVEN_BIN) {
    return process.env.KEYHAVEN_BIN;
  }
  const bin = path.join(workDir, "keyhaven");
  // A cold build (SQLite in pure Go) can take minutes on a fresh machine.
  await execFileP("go", ["build", "-o", bin, "./cmd/keyhaven"], {
    cwd: repoRoot,
    timeout: 10 * 60 * 1000,
    maxBuffer: 16 * 1024 * 1024,
  });
  return bin;
}

// loopbackLookup answers every name with 127.0.0.1, in both callback shapes
// (`all: true` is what Node's happy-eyeballs connect asks for).
function loopbackLookup(hostname, options, callback) {
  if (typeof options === "function") {
    callback = options;
    options = {};
  }
  if (options && options.all) {
    callback(null, [{ address: "127.0.0.1", family: 4 }]);
  } else {
    callback(null, "127.0.0.1", 4);
  }
}

/**
 * Sends one HTTPS request through the agent. body: object (sent as JSON), or
 * form: object (sent as application/x-www-form-urlencoded).
 * Resolves to {status, headers, text, json}.
 */
export function httpsRequest(agent, method, url, { token, body, form, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const h = { accept: "application/json", ...headers };
    let payload;
    if (form !== undefined) {
      payload = new URLSearchParams(form).toString();
      h["content-type"] = "application/x-www-form-urlencoded";
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      h["content-type"] = "application/json";
    }
    if (payload !== undefined) {
      h["content-length"] = Buffer.byteLength(payload);
    }
    if (token) {
      h.authorization = `Bearer ${token}`;
    }
    const req = https.request(url, { method, agent, headers: h }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${url}: timed out`)));
    if (payload !== undefined) {
      req.write(payload);
    }
    req.end();
  });
}

// describeResponse renders a request/response pair for assertion messages; the
// bearer token and form bodies (passwords, client secrets) are never included.
export function describeResponse(method, url, res) {
  const code = res.headers["x-ms-error-code"];
  return `${method} ${url} -> ${res.status}${code ? ` (x-ms-error-code ${code})` : ""}: ${res.text.slice(0, 600)}`;
}

/**
 * Starts a keyhaven server and returns a handle:
 *   baseUrl, port, tenantId, subscriptionId, username, agent, ca,
 *   clientOptions()   options for any Azure SDK client (agent, no retries slowdown)
 *   adminToken(scope) password-grant token for the bootstrap admin
 *   adminCredential   a TokenCredential for the admin (password grant)
 *   arm(method, path, body)   ARM request as the admin, path relative to baseUrl
 *   graph(method, path, body) Graph-like directory request as the admin
 *   vaultUrl(name)
 *   stop()
 */
export async function startKeyhaven() {
  for (let attempt = 0; ; attempt++) {
    try {
      return await startOnce();
    } catch (err) {
      // A port is free only when it is checked; another process may bind
      // it first. Start again on fresh ports and a fresh data directory.
      if (attempt >= 5 || !/address already in use/.test(String(err?.message))) throw err;
    }
  }
}

async function startOnce() {
  const workDir = await mkdtemp(path.join(os.tmpdir(), "keyhaven-compat-js-"));
  const dataDir = path.join(workDir, "data");
  const bin = await findBinary(workDir);
  const port = await freePort();
  const miPort = await freePort();

  let log = "";
  const child = spawn(
    bin,
    [
      "serve",
      "--data-dir", dataDir,
      "--listen", `127.0.0.1:${port}`,
      "--mi-listen", `127.0.0.1:${miPort}`,
      "--log-level", "warn",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const keepLog = (chunk) => {
    log = (log + chunk.toString("utf8")).slice(-MAX_LOG_BYTES);
  };
  child.stdout.on("data", keepLog);
  child.stderr.on("data", keepLog);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });

  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exitPromise;
      clearTimeout(timer);
    }
    await rm(workDir, { recursive: true, force: true });
  };

  try {
    const baseUrl = `https://localhost:${port}`;
    const caFile = path.join(dataDir, "tls", "ca.pem");
    const deadline = Date.now() + 60_000;
    while (!existsSync(caFile)) {
      if (exited) throw new Error(`keyhaven serve exited (${JSON.stringify(exited)}):\n${log}`);
      if (Date.now() > deadline) throw new Error(`no ${caFile} after 60 s:\n${log}`);
      await sleep(50);
    }
    await sleep(50); // the file may be mid-write
    const ca = await readFile(caFile, "utf8");
    const agent = new https.Agent({ ca, lookup: loopbackLookup, keepAlive: true });

    for (;;) {
      if (exited) throw new Error(`keyhaven serve exited (${JSON.stringify(exited)}):\n${log}`);
      try {
        const res = await httpsRequest(agent, "GET", `${baseUrl}/readyz`);
        if (res.status === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`${baseUrl}/readyz not 200 after 60 s:\n${log}`);
      await sleep(100);
    }

    const creds = JSON.parse(await readFile(path.join(dataDir, "admin-credentials.json"), "utf8"));
    const { tenantId, username, password, subscriptionId } = creds;

    const tokenCache = new Map();
    const adminToken = async (scope = `${baseUrl}/.default`) => {
      const hit = tokenCache.get(scope);
      if (hit && hit.expiresOnTimestamp - 60_000 > Date.now()) return hit;
      const url = `${baseUrl}/${tenantId}/oauth2/v2.0/token`;
      const res = await httpsRequest(agent, "POST", url, {
        form: { grant_type: "password", client_id: CLI_CLIENT_ID, username, password, scope },
      });
      if (res.status !== 200 || !res.json?.access_token) {
        // describeResponse would echo only the response; the form holds the password.
        throw new Error(`password grant for ${scope}: ${res.status} ${res.text.slice(0, 300)}`);
      }
      const tok = {
        token: res.json.access_token,
        expiresOnTimestamp: Date.now() + Number(res.json.expires_in ?? 3600) * 1000,
      };
      tokenCache.set(scope, tok);
      return tok;
    };
    const adminCredential = {
      async getToken(scopes) {
        const scope = Array.isArray(scopes) ? scopes.join(" ") : scopes;
        return adminToken(scope);
      },
    };

    const asAdmin = async (method, url, body) => {
      const { token } = await adminToken(`${baseUrl}/.default`);
      return httpsRequest(agent, method, url, { token, body });
    };
    const arm = (method, p, body) => asAdmin(method, `${baseUrl}${p}`, body);
    const graph = (method, p, body) => asAdmin(method, `${baseUrl}/v1.0${p}`, body);

    const h = {
      baseUrl,
      port,
      tenantId,
      subscriptionId,
      username,
      agent,
      ca,
      adminToken,
      adminCredential,
      arm,
      graph,
      log: () => log,
      vaultUrl: (name) => `https://${name}.vault.localhost:${port}`,
      // Options for any Azure SDK client: the agent goes through the public
      // PipelineOptions.agent; retries are kept short so a failing test fails fast.
      clientOptions: (extra = {}) => ({
        agent,
        retryOptions: { maxRetries: 1, retryDelayInMs: 100, maxRetryDelayInMs: 500 },
        ...extra,
      }),
      stop: async () => {
        agent.destroy();
        await stop();
      },
    };
    return h;
  } catch (err) {
    await stop();
    throw err;
  }
}

// expectStatus throws with the whole exchange when res.status is not one of want.
export function expectStatus(method, url, res, ...want) {
  if (!want.includes(res.status)) {
    throw new Error(`want ${want.join("|")}: ${describeResponse(method, url, res)}`);
  }
  return res;
}

/** Creates a resource group (admin) and returns its ID. */
export async function createResourceGroup(kh, name) {
  const p = `/subscriptions/${kh.subscriptionId}/resourcegroups/${name}?api-version=2021-04-01`;
  const res = await kh.arm("PUT", p, { location: "local" });
  expectStatus("PUT", p, res, 200, 201);
  return res.json.id;
}

/** Creates an RBAC-mode vault (admin) and returns the ARM resource. */
export async function createVault(kh, resourceGroup, name) {
  const p = `/subscriptions/${kh.subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.KeyVault/vaults/${name}?api-version=2023-07-01`;
  const res = await kh.arm("PUT", p, {
    location: "local",
    properties: {
      tenantId: kh.tenantId,
      sku: { family: "A", name: "standard" },
      enableRbacAuthorization: true,
    },
  });
  expectStatus("PUT", p, res, 200, 201);
  return res.json;
}

/**
 * Creates an application + service principal with one client secret (admin).
 * Returns {appId, objectId (of the service principal), secret}.
 */
export async function createServicePrincipal(kh, displayName) {
  const app = expectStatus("POST", "/v1.0/applications", await kh.graph("POST", "/applications", { displayName }), 200, 201).json;
  const sp = expectStatus("POST", "/v1.0/servicePrincipals", await kh.graph("POST", "/servicePrincipals", { appId: app.appId }), 200, 201).json;
  const pw = await kh.graph("POST", `/applications/${app.id}/addPassword`, {});
  if (pw.status !== 200 && pw.status !== 201) {
    throw new Error(`addPassword: ${pw.status} ${pw.headers["x-ms-error-code"] ?? ""}`);
  }
  return { appId: app.appId, objectId: sp.id, secret: pw.json.secretText };
}

/** Assigns a built-in role (by GUID) to a service principal at scope (an ARM ID). */
export async function assignRole(kh, scope, roleGuid, principalId) {
  const p = `${scope}/providers/Microsoft.Authorization/roleAssignments/${randomUUID()}?api-version=2022-04-01`;
  const res = await kh.arm("PUT", p, {
    properties: {
      roleDefinitionId: `/subscriptions/${kh.subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${roleGuid}`,
      principalId,
      principalType: "ServicePrincipal",
    },
  });
  expectStatus("PUT", p, res, 200, 201);
  return res.json;
}

/** A unique, valid vault name (3-24 chars, starts with a letter). */
export function uniqueName(prefix) {
  return `${prefix}${randomUUID().replace(/-/g, "").slice(0, 10)}`;
}
