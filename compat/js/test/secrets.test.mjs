// @azure/keyvault-secrets SecretClient, unmodified, against a real keyhaven server,
// authenticated by @azure/identity ClientSecretCredential for a service principal
// that holds Key Vault Secrets Officer on the vault (RBAC).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { SecretClient } from "@azure/keyvault-secrets";

import { ROLE, createServicePrincipal, startKeyhaven } from "../lib/harness.mjs";
import { POLL, collect, credentialFor, rejectsWith, vaultWithPrincipal } from "../lib/sdk.mjs";

describe("keyvault-secrets SecretClient", { timeout: 90_000 }, () => {
  let kh;
  let client;
  let vaultName;

  before(async () => {
    kh = await startKeyhaven();
    const vault = await vaultWithPrincipal(kh, { vaultPrefix: "jsv", principal: "compat-js-secrets", roles: [ROLE.keyVaultSecretsOfficer] });
    vaultName = vault.vaultName;
    client = new SecretClient(vault.vaultUrl, vault.credential, kh.clientOptions());
  });

  after(async () => {
    await kh?.stop();
  });

  it("ok/set and get latest and by version", async () => {
    const v1 = await client.setSecret("db-password", "first", { contentType: "text/plain", tags: { env: "test" } });
    assert.equal(v1.name, "db-password");
    assert.equal(v1.value, "first");
    assert.equal(v1.properties.contentType, "text/plain");
    assert.deepEqual(v1.properties.tags, { env: "test" });
    assert.equal(v1.properties.enabled, true);
    assert.ok(v1.properties.version, "version set");
    assert.equal(v1.properties.vaultUrl, kh.vaultUrl(vaultName));
    assert.equal(v1.properties.id, `${kh.vaultUrl(vaultName)}/secrets/db-password/${v1.properties.version}`);
    assert.ok(v1.properties.createdOn instanceof Date);
    assert.ok(Math.abs(v1.properties.createdOn.getTime() - Date.now()) < 5 * 60_000, "createdOn is now");

    const v2 = await client.setSecret("db-password", "second");
    assert.notEqual(v2.properties.version, v1.properties.version);

    const latest = await client.getSecret("db-password");
    assert.equal(latest.value, "second");
    assert.equal(latest.properties.version, v2.properties.version);

    const old = await client.getSecret("db-password", { version: v1.properties.version });
    assert.equal(old.value, "first");
    assert.equal(old.properties.version, v1.properties.version);
  });

  it("ok/list versions", async () => {
    const name = "versioned";
    const made = [];
    for (let i = 0; i < 3; i++) made.push((await client.setSecret(name, `v${i}`)).properties.version);
    const versions = await collect(client.listPropertiesOfSecretVersions(name));
    assert.deepEqual(versions.map((p) => p.version).sort(), [...made].sort());
    for (const p of versions) {
      assert.equal(p.name, name);
      assert.equal(p.value, undefined, "listing never carries values");
    }
  });

  it("ok/list secrets pages over more than 25 secrets", async () => {
    const names = [];
    for (let i = 0; i < 30; i++) {
      const n = `page-${String(i).padStart(2, "0")}`;
      names.push(n);
      await client.setSecret(n, `value-${i}`);
    }
    const pages = await collect(client.listPropertiesOfSecrets().byPage({ maxPageSize: 10 }));
    assert.ok(pages.length >= 3, `want >= 3 pages, got ${pages.length}`);
    for (const page of pages) assert.ok(page.length <= 10, `page of ${page.length} > maxPageSize 10`);
    const listed = pages.flat().map((p) => p.name);
    assert.equal(new Set(listed).size, listed.length, "no secret listed twice");
    for (const n of names) assert.ok(listed.includes(n), `${n} listed`);

    // The default page size (25) must also page through all of them.
    const all = await collect(client.listPropertiesOfSecrets());
    for (const n of names) assert.ok(all.some((p) => p.name === n), `${n} listed without maxPageSize`);
  });

  it("ok/update properties", async () => {
    const s = await client.setSecret("updatable", "x");
    const expiresOn = new Date(Math.floor(Date.now() / 1000 + 86_400) * 1000);
    const updated = await client.updateSecretProperties("updatable", s.properties.version, {
      enabled: false,
      contentType: "application/json",
      tags: { owner: "js" },
      expiresOn,
    });
    assert.equal(updated.enabled, false);
    assert.equal(updated.contentType, "application/json");
    assert.deepEqual(updated.tags, { owner: "js" });
    assert.equal(updated.expiresOn.getTime(), expiresOn.getTime());
    assert.equal(updated.version, s.properties.version);

    // A disabled version's value cannot be read (Forbidden, code Forbidden in Azure).
    await assert.rejects(client.getSecret("updatable"), (err) => {
      assert.equal(err.statusCode, 403, err.message);
      return true;
    });
    const [props] = await collect(client.listPropertiesOfSecretVersions("updatable"));
    assert.equal(props.enabled, false);
  });

  it("ok/delete, get deleted, list deleted, recover", async () => {
    await client.setSecret("to-recover", "keep me");
    const poller = await client.beginDeleteSecret("to-recover", POLL);
    const deleted = await poller.pollUntilDone();
    assert.equal(deleted.name, "to-recover");
    assert.ok(deleted.properties.recoveryId, "recoveryId set");
    assert.ok(deleted.properties.deletedOn instanceof Date, "deletedOn set");
    assert.ok(deleted.properties.scheduledPurgeDate instanceof Date, "scheduledPurgeDate set");

    await rejectsWith(client.getSecret("to-recover"), 404, "SecretNotFound");

    const got = await client.getDeletedSecret("to-recover");
    assert.equal(got.name, "to-recover");
    assert.equal(got.properties.recoveryId, deleted.properties.recoveryId);

    const listed = await collect(client.listDeletedSecrets());
    assert.ok(listed.some((d) => d.name === "to-recover"), "deleted secret listed");

    const rp = await client.beginRecoverDeletedSecret("to-recover", POLL);
    const recovered = await rp.pollUntilDone();
    assert.equal(recovered.name, "to-recover");
    const back = await client.getSecret("to-recover");
    assert.equal(back.value, "keep me");
    await rejectsWith(client.getDeletedSecret("to-recover"), 404);
  });

  it("ok/delete and purge", async () => {
    await client.setSecret("to-purge", "gone");
    await (await client.beginDeleteSecret("to-purge", POLL)).pollUntilDone();
    await client.purgeDeletedSecret("to-purge");
    await rejectsWith(client.getDeletedSecret("to-purge"), 404);
    await rejectsWith(client.getSecret("to-purge"), 404, "SecretNotFound");
    // The name is free again.
    const again = await client.setSecret("to-purge", "new");
    assert.equal(again.value, "new");
  });

  it("ok/backup and restore", async () => {
    const first = await client.setSecret("backed-up", "one");
    await client.setSecret("backed-up", "two");
    const blob = await client.backupSecret("backed-up");
    assert.ok(blob instanceof Uint8Array && blob.length > 0, "backup blob");

    // Restore needs the name free: delete and purge first.
    await (await client.beginDeleteSecret("backed-up", POLL)).pollUntilDone();
    await client.purgeDeletedSecret("backed-up");

    const restored = await client.restoreSecretBackup(blob);
    assert.equal(restored.name, "backed-up");
    assert.equal((await client.getSecret("backed-up")).value, "two");
    assert.equal((await client.getSecret("backed-up", { version: first.properties.version })).value, "one");
    const versions = await collect(client.listPropertiesOfSecretVersions("backed-up"));
    assert.equal(versions.length, 2);

    // Restoring over an existing secret is a conflict.
    await rejectsWith(client.restoreSecretBackup(blob), 409);
  });

  it("fail/missing secret is SecretNotFound", async () => {
    await rejectsWith(client.getSecret("never-set"), 404, "SecretNotFound");
    await rejectsWith(client.getSecret("db-password", { version: "0123456789abcdef0123456789abcdef" }), 404, "SecretNotFound");
    await rejectsWith(client.updateSecretProperties("never-set", "0123456789abcdef0123456789abcdef", { enabled: true }), 404, "SecretNotFound");
    await rejectsWith(client.beginDeleteSecret("never-set", POLL), 404, "SecretNotFound");
    await rejectsWith(client.backupSecret("never-set"), 404, "SecretNotFound");
  });

  it("fail/invalid name is BadParameter", async () => {
    await rejectsWith(client.setSecret("bad_name", "x"), 400, "BadParameter");
  });

  it("fail/principal without a role is Forbidden", async () => {
    const other = await createServicePrincipal(kh, "compat-js-norole");
    const credential = credentialFor(kh, other);
    const c = new SecretClient(kh.vaultUrl(vaultName), credential, kh.clientOptions());
    await rejectsWith(c.getSecret("db-password"), 403, "Forbidden");
  });
});
