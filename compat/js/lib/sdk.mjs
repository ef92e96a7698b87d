// Shared setup and assertions of the SDK suites: a service principal's
// credential against keyhaven's identity plane, a vault with a principal that
// holds roles on it, async-iterator collection and RestError checks.

import assert from "node:assert/strict";

import { ClientSecretCredential } from "@azure/identity";

import { assignRole, createResourceGroup, createServicePrincipal, createVault, uniqueName } from "./harness.mjs";

// Pollers default to a 2 s interval; keyhaven deletes, recovers and completes at once.
export const POLL = { updateIntervalInMs: 50 };

/** All the items of an async iterator (a paged list). */
export async function collect(iter) {
  const out = [];
  for await (const x of iter) out.push(x);
  return out;
}

/** Asserts a RestError with the given HTTP status and (when given) error code. */
export async function rejectsWith(promise, statusCode, code) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.name, "RestError", `want RestError, got ${err.name}: ${err.message}`);
    assert.equal(err.statusCode, statusCode, `status: ${err.message}`);
    if (code !== undefined) assert.equal(err.code, code, `code: ${err.message}`);
    return true;
  });
}

/** A ClientSecretCredential for a service principal, with keyhaven as the authority. */
export function credentialFor(kh, sp) {
  return new ClientSecretCredential(kh.tenantId, sp.appId, sp.secret, {
    authorityHost: kh.baseUrl,
    disableInstanceDiscovery: true,
    ...kh.clientOptions(),
  });
}

/**
 * Creates a resource group and an RBAC vault named with vaultPrefix, and a
 * service principal called principal holding each of roles (GUIDs) on the
 * vault. Returns {vaultName, vaultUrl, credential (the principal's)}.
 */
export async function vaultWithPrincipal(kh, { vaultPrefix, principal, roles }) {
  const rg = uniqueName("rg");
  const vaultName = uniqueName(vaultPrefix);
  await createResourceGroup(kh, rg);
  const vault = await createVault(kh, rg, vaultName);
  const sp = await createServicePrincipal(kh, principal);
  for (const role of roles) await assignRole(kh, vault.id, role, sp.objectId);
  return { vaultName, vaultUrl: kh.vaultUrl(vaultName), credential: credentialFor(kh, sp) };
}
