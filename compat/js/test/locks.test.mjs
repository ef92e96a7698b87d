// @azure/arm-locks ManagementLockClient, unmodified, against a real keyhaven server.
// The client runs as a service principal (ClientSecretCredential) that holds Owner at
// the subscription; the writes that locks must refuse are sent as plain ARM requests
// with the bootstrap administrator's token, so both callers are seen to be refused.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { ManagementLockClient } from "@azure/arm-locks";

import {
  ROLE,
  assignRole,
  createResourceGroup,
  createServicePrincipal,
  createVault,
  describeResponse,
  startKeyhaven,
  uniqueName,
} from "../lib/harness.mjs";
import { collect, credentialFor, rejectsWith } from "../lib/sdk.mjs";

const VAULT_API = "api-version=2023-07-01";

// armExpect sends an ARM request as the admin and asserts its status (and error
// code), reporting the whole exchange on failure.
async function armExpect(kh, method, p, body, status, code) {
  const res = await kh.arm(method, p, body);
  assert.equal(res.status, status, describeResponse(method, p, res));
  if (code !== undefined) {
    assert.equal(res.json?.error?.code, code, describeResponse(method, p, res));
    assert.equal(res.headers["x-ms-error-code"] ?? code, code, describeResponse(method, p, res));
  }
  return res;
}

function vaultBody(kh, tags = {}) {
  return {
    location: "local",
    tags,
    properties: { tenantId: kh.tenantId, sku: { family: "A", name: "standard" }, enableRbacAuthorization: true },
  };
}

// lockClient is a ManagementLockClient for a service principal, with keyhaven as
// the ARM endpoint and token audience.
function lockClient(kh, sp) {
  return new ManagementLockClient(credentialFor(kh, sp), kh.subscriptionId, {
    endpoint: kh.baseUrl,
    credentialScopes: [`${kh.baseUrl}/.default`],
    ...kh.clientOptions(),
  });
}

describe("arm-locks ManagementLockClient", { timeout: 90_000 }, () => {
  let kh;
  let locks;
  let sp;

  before(async () => {
    kh = await startKeyhaven();
    sp = await createServicePrincipal(kh, "compat-js-locks");
    await assignRole(kh, `/subscriptions/${kh.subscriptionId}`, ROLE.owner, sp.objectId);
    locks = lockClient(kh, sp);
  });

  after(async () => {
    await kh?.stop();
  });

  it("ok/CanNotDelete on a resource group refuses deleting its vault until removed", async () => {
    const rg = uniqueName("rg");
    const vaultName = uniqueName("lkv");
    const rgId = await createResourceGroup(kh, rg);
    const vault = await createVault(kh, rg, vaultName);
    const vaultPath = `${vault.id}?${VAULT_API}`;

    const lock = await locks.managementLocks.createOrUpdateAtResourceGroupLevel(rg, "no-delete", {
      level: "CanNotDelete",
      notes: "compat-js",
    });
    assert.equal(lock.name, "no-delete");
    assert.equal(lock.level, "CanNotDelete");
    assert.equal(lock.notes, "compat-js");
    assert.equal(lock.type, "Microsoft.Authorization/locks");
    assert.equal(lock.id.toLowerCase(), `${rgId}/providers/Microsoft.Authorization/locks/no-delete`.toLowerCase());

    const got = await locks.managementLocks.getAtResourceGroupLevel(rg, "no-delete");
    assert.equal(got.id, lock.id);
    assert.equal(got.level, "CanNotDelete");

    // The lock is inherited by the vault and by the group itself.
    await armExpect(kh, "DELETE", vaultPath, undefined, 409, "ScopeLocked");
    await armExpect(kh, "DELETE", `${rgId}?api-version=2021-04-01`, undefined, 409, "ScopeLocked");
    // CanNotDelete still allows updates.
    await armExpect(kh, "PUT", vaultPath, vaultBody(kh, { touched: "yes" }), 200);

    const listed = await collect(locks.managementLocks.listAtResourceGroupLevel(rg));
    assert.deepEqual(listed.map((l) => l.name), ["no-delete"]);

    await locks.managementLocks.deleteAtResourceGroupLevel(rg, "no-delete");
    assert.deepEqual(await collect(locks.managementLocks.listAtResourceGroupLevel(rg)), []);
    await rejectsWith(locks.managementLocks.getAtResourceGroupLevel(rg, "no-delete"), 404, "LockNotFound");

    await armExpect(kh, "DELETE", vaultPath, undefined, 200);
    await armExpect(kh, "GET", vaultPath, undefined, 404);
  });

  it("ok/ReadOnly on a vault refuses PUT, PATCH and DELETE of the vault", async () => {
    const rg = uniqueName("rg");
    const vaultName = uniqueName("rov");
    await createResourceGroup(kh, rg);
    const vault = await createVault(kh, rg, vaultName);
    const vaultPath = `${vault.id}?${VAULT_API}`;

    const lock = await locks.managementLocks.createOrUpdateByScope(vault.id, "read-only", { level: "ReadOnly" });
    assert.equal(lock.level, "ReadOnly");
    assert.equal(lock.id.toLowerCase(), `${vault.id}/providers/Microsoft.Authorization/locks/read-only`.toLowerCase());

    await armExpect(kh, "PUT", vaultPath, vaultBody(kh, { changed: "no" }), 409, "ScopeLocked");
    await armExpect(kh, "PATCH", vaultPath, { tags: { changed: "no" } }, 409, "ScopeLocked");
    await armExpect(kh, "DELETE", vaultPath, undefined, 409, "ScopeLocked");
    const read = await armExpect(kh, "GET", vaultPath, undefined, 200);
    assert.equal(read.json.tags?.changed, undefined, "refused write changed nothing");

    const byScope = await collect(locks.managementLocks.listByScope(vault.id));
    assert.deepEqual(byScope.map((l) => l.name), ["read-only"]);
    const got = await locks.managementLocks.getByScope(vault.id, "read-only");
    assert.equal(got.level, "ReadOnly");
    // A lock on the vault is not a lock on its group.
    assert.deepEqual(
      (await collect(locks.managementLocks.listAtResourceGroupLevel(rg, { filter: "atScope()" }))).map((l) => l.name),
      [],
    );

    await locks.managementLocks.deleteByScope(vault.id, "read-only");
    const patched = await armExpect(kh, "PATCH", vaultPath, { tags: { changed: "yes" } }, 200);
    assert.equal(patched.json.tags.changed, "yes");
  });

  // The resource-level operations put parentResourcePath in the URL verbatim; for a
  // top-level resource it is "" (as the Azure CLI passes it), so the URL carries
  // "Microsoft.KeyVault//vaults", which Azure Resource Manager accepts.
  it("ok/resource-level lock with an empty parentResourcePath", async () => {
    const rg = uniqueName("rg");
    const vaultName = uniqueName("rlv");
    await createResourceGroup(kh, rg);
    const vault = await createVault(kh, rg, vaultName);
    const vaultPath = `${vault.id}?${VAULT_API}`;
    const at = [rg, "Microsoft.KeyVault", "", "vaults", vaultName];

    const lock = await locks.managementLocks.createOrUpdateAtResourceLevel(...at, "read-only", { level: "ReadOnly" });
    assert.equal(lock.level, "ReadOnly");
    assert.equal(lock.id.toLowerCase(), `${vault.id}/providers/Microsoft.Authorization/locks/read-only`.toLowerCase());
    await armExpect(kh, "PATCH", vaultPath, { tags: { changed: "no" } }, 409, "ScopeLocked");

    assert.equal((await locks.managementLocks.getAtResourceLevel(...at, "read-only")).level, "ReadOnly");
    const listed = await collect(locks.managementLocks.listAtResourceLevel(...at));
    assert.deepEqual(listed.map((l) => l.name), ["read-only"]);

    await locks.managementLocks.deleteAtResourceLevel(...at, "read-only");
    await armExpect(kh, "PATCH", vaultPath, { tags: { changed: "yes" } }, 200);
  });

  it("ok/subscription-level lock create, list, delete", async () => {
    const rg = uniqueName("rg");
    const rgId = await createResourceGroup(kh, rg);
    const subId = `/subscriptions/${kh.subscriptionId}`;

    const lock = await locks.managementLocks.createOrUpdateAtSubscriptionLevel("sub-lock", {
      level: "CanNotDelete",
      notes: "whole subscription",
    });
    assert.equal(lock.id.toLowerCase(), `${subId}/providers/Microsoft.Authorization/locks/sub-lock`.toLowerCase());
    assert.equal(lock.level, "CanNotDelete");

    // A second PUT updates the lock in place.
    const updated = await locks.managementLocks.createOrUpdateAtSubscriptionLevel("sub-lock", {
      level: "CanNotDelete",
      notes: "updated",
    });
    assert.equal(updated.notes, "updated");
    assert.equal((await locks.managementLocks.getAtSubscriptionLevel("sub-lock")).notes, "updated");

    const listed = await collect(locks.managementLocks.listAtSubscriptionLevel());
    assert.ok(listed.some((l) => l.name === "sub-lock"), `sub-lock listed: ${JSON.stringify(listed.map((l) => l.id))}`);

    await armExpect(kh, "DELETE", `${rgId}?api-version=2021-04-01`, undefined, 409, "ScopeLocked");

    await locks.managementLocks.deleteAtSubscriptionLevel("sub-lock");
    const remaining = await collect(locks.managementLocks.listAtSubscriptionLevel());
    assert.ok(!remaining.some((l) => l.name === "sub-lock"), "sub-lock gone");
    await rejectsWith(locks.managementLocks.getAtSubscriptionLevel("sub-lock"), 404, "LockNotFound");

    const del = await kh.arm("DELETE", `${rgId}?api-version=2021-04-01`);
    assert.ok([200, 202].includes(del.status), describeResponse("DELETE", rgId, del));
  });

  it("fail/missing lock is LockNotFound", async () => {
    await rejectsWith(locks.managementLocks.getAtSubscriptionLevel("no-such-lock"), 404, "LockNotFound");
  });

  it("fail/a principal without a role cannot create a lock", async () => {
    const other = await createServicePrincipal(kh, "compat-js-locks-norole");
    const c = lockClient(kh, other);
    await rejectsWith(c.managementLocks.createOrUpdateAtSubscriptionLevel("denied", { level: "CanNotDelete" }), 403, "AuthorizationFailed");
  });
});
