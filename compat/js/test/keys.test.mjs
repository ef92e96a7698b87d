// @azure/keyvault-keys KeyClient and CryptographyClient, unmodified, against a real
// keyhaven server, authenticated by @azure/identity ClientSecretCredential for a
// service principal that holds Key Vault Crypto Officer on the vault (RBAC).

import assert from "node:assert/strict";
import { createHash, createPublicKey, publicEncrypt, verify as nodeVerify, constants } from "node:crypto";
import { after, before, describe, it } from "node:test";

import { CryptographyClient, KeyClient } from "@azure/keyvault-keys";

import { ROLE, createServicePrincipal, startKeyhaven } from "../lib/harness.mjs";
import { POLL, collect, credentialFor, rejectsWith, vaultWithPrincipal } from "../lib/sdk.mjs";

// nodeKey turns the SDK's public JsonWebKey (byte arrays) into a node KeyObject.
function nodeKey(jwk) {
  const b64 = (b) => Buffer.from(b).toString("base64url");
  if (jwk.kty === "RSA") return createPublicKey({ key: { kty: "RSA", n: b64(jwk.n), e: b64(jwk.e) }, format: "jwk" });
  return createPublicKey({ key: { kty: "EC", crv: jwk.crv, x: b64(jwk.x), y: b64(jwk.y) }, format: "jwk" });
}

const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "k"];

describe("keyvault-keys KeyClient and CryptographyClient", { timeout: 120_000 }, () => {
  let kh;
  let client;
  let credential;
  let vaultName;

  before(async () => {
    kh = await startKeyhaven();
    const vault = await vaultWithPrincipal(kh, { vaultPrefix: "jsk", principal: "compat-js-keys", roles: [ROLE.keyVaultCryptoOfficer] });
    ({ vaultName, credential } = vault);
    client = new KeyClient(vault.vaultUrl, credential, kh.clientOptions());
  });

  after(async () => {
    await kh?.stop();
  });

  it("ok/create RSA and EC keys, get latest and by version", async () => {
    const rsa = await client.createRsaKey("rsa-key", { keySize: 2048, tags: { env: "test" } });
    assert.equal(rsa.name, "rsa-key");
    assert.equal(rsa.keyType, "RSA");
    assert.equal(rsa.key.kty, "RSA");
    assert.equal(Buffer.from(rsa.key.n).length, 256, "2048-bit modulus");
    assert.deepEqual([...rsa.key.e], [1, 0, 1]);
    for (const m of PRIVATE_MEMBERS) assert.equal(rsa.key[m], undefined, `no private member ${m}`);
    assert.deepEqual(rsa.properties.tags, { env: "test" });
    assert.equal(rsa.properties.enabled, true);
    assert.ok(rsa.properties.version, "version set");
    assert.equal(rsa.properties.vaultUrl, kh.vaultUrl(vaultName));
    assert.equal(rsa.id, `${kh.vaultUrl(vaultName)}/keys/rsa-key/${rsa.properties.version}`);
    assert.ok(rsa.properties.createdOn instanceof Date);
    assert.ok(rsa.keyOperations.includes("encrypt") && rsa.keyOperations.includes("unwrapKey"), `ops ${rsa.keyOperations}`);

    const ec = await client.createEcKey("ec-key", { curve: "P-256" });
    assert.equal(ec.keyType, "EC");
    assert.equal(ec.key.crv, "P-256");
    assert.equal(Buffer.from(ec.key.x).length, 32);
    assert.equal(Buffer.from(ec.key.y).length, 32);
    for (const m of PRIVATE_MEMBERS) assert.equal(ec.key[m], undefined, `no private member ${m}`);
    nodeKey(ec.key); // the point is on the curve

    const rsa2 = await client.createRsaKey("rsa-key");
    assert.notEqual(rsa2.properties.version, rsa.properties.version);
    const latest = await client.getKey("rsa-key");
    assert.equal(latest.properties.version, rsa2.properties.version);
    assert.deepEqual(Buffer.from(latest.key.n), Buffer.from(rsa2.key.n));
    const old = await client.getKey("rsa-key", { version: rsa.properties.version });
    assert.equal(old.properties.version, rsa.properties.version);
    assert.deepEqual(Buffer.from(old.key.n), Buffer.from(rsa.key.n));
  });

  it("ok/list keys pages over more than 25 keys", async () => {
    const names = [];
    for (let i = 0; i < 27; i++) {
      const n = `page-${String(i).padStart(2, "0")}`;
      names.push(n);
      await client.createEcKey(n, { curve: "P-256" });
    }
    const pages = await collect(client.listPropertiesOfKeys().byPage({ maxPageSize: 10 }));
    assert.ok(pages.length >= 3, `want >= 3 pages, got ${pages.length}`);
    for (const page of pages) assert.ok(page.length <= 10, `page of ${page.length} > maxPageSize 10`);
    const listed = pages.flat().map((p) => p.name);
    assert.equal(new Set(listed).size, listed.length, "no key listed twice");
    for (const n of names) assert.ok(listed.includes(n), `${n} listed`);

    const all = await collect(client.listPropertiesOfKeys());
    for (const n of names) assert.ok(all.some((p) => p.name === n), `${n} listed without maxPageSize`);
    const versions = await collect(client.listPropertiesOfKeyVersions("page-00"));
    assert.equal(versions.length, 1);
  });

  it("ok/update properties", async () => {
    const k = await client.createEcKey("updatable", { curve: "P-256" });
    const expiresOn = new Date(Math.floor(Date.now() / 1000 + 86_400) * 1000);
    const updated = await client.updateKeyProperties("updatable", k.properties.version, {
      enabled: false,
      tags: { owner: "js" },
      expiresOn,
      keyOps: ["sign", "verify"],
    });
    assert.equal(updated.properties.enabled, false);
    assert.deepEqual(updated.properties.tags, { owner: "js" });
    assert.equal(updated.properties.expiresOn.getTime(), expiresOn.getTime());
    assert.deepEqual([...updated.keyOperations].sort(), ["sign", "verify"]);
    assert.equal(updated.properties.version, k.properties.version);

    // As in Azure, a disabled key is not even returned (403, "Operation get
    // is not allowed on a disabled key."), but its properties are listed.
    await rejectsWith(client.getKey("updatable"), 403);
    const [props] = await collect(client.listPropertiesOfKeyVersions("updatable"));
    assert.equal(props.enabled, false);

    // A disabled key performs no operation.
    const crypto = new CryptographyClient(k.id, credential, kh.clientOptions());
    const digest = createHash("sha256").update("disabled").digest();
    await assert.rejects(crypto.sign("ES256", digest), (err) => {
      assert.equal(err.statusCode, 403, err.message);
      return true;
    });
  });

  it("ok/RSA-OAEP encrypt and decrypt", async () => {
    const key = await client.createRsaKey("crypt", { keySize: 2048 });
    const crypto = new CryptographyClient(key.id, credential, kh.clientOptions());
    const plaintext = Buffer.from("attack at dawn, keyhaven");

    const enc = await crypto.encrypt({ algorithm: "RSA-OAEP", plaintext });
    assert.equal(enc.algorithm, "RSA-OAEP");
    assert.equal(Buffer.from(enc.result).length, 256);
    const dec = await crypto.decrypt({ algorithm: "RSA-OAEP", ciphertext: enc.result });
    assert.deepEqual(Buffer.from(dec.result), plaintext);
    assert.equal(dec.keyID, key.id);

    // A ciphertext made by anyone holding the public key decrypts too.
    const local = publicEncrypt({ key: nodeKey(key.key), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" }, plaintext);
    const dec2 = await crypto.decrypt({ algorithm: "RSA-OAEP", ciphertext: local });
    assert.deepEqual(Buffer.from(dec2.result), plaintext);

    // A tampered ciphertext does not decrypt.
    const bad = Buffer.from(local);
    bad[10] ^= 0xff;
    await assert.rejects(crypto.decrypt({ algorithm: "RSA-OAEP", ciphertext: bad }));
  });

  it("ok/ES256 sign and verify a SHA-256 digest", async () => {
    const key = await client.createEcKey("signer", { curve: "P-256" });
    const crypto = new CryptographyClient(key.id, credential, kh.clientOptions());
    const message = Buffer.from("a message to sign");
    const digest = createHash("sha256").update(message).digest();

    const sig = await crypto.sign("ES256", digest);
    assert.equal(sig.algorithm, "ES256");
    assert.equal(Buffer.from(sig.result).length, 64, "JWS signature: r || s");
    assert.equal(sig.keyID, key.id);

    const ok = await crypto.verify("ES256", digest, sig.result);
    assert.equal(ok.result, true);
    const otherDigest = createHash("sha256").update("another message").digest();
    const notOk = await crypto.verify("ES256", otherDigest, sig.result);
    assert.equal(notOk.result, false);

    // The signature verifies with the public key alone, outside keyhaven.
    const verified = nodeVerify("sha256", message, { key: nodeKey(key.key), dsaEncoding: "ieee-p1363" }, Buffer.from(sig.result));
    assert.equal(verified, true);
  });

  it("ok/RSA-OAEP wrap and unwrap", async () => {
    const key = await client.createRsaKey("wrapper", { keySize: 3072 });
    const crypto = new CryptographyClient(key.id, credential, kh.clientOptions());
    const cek = Buffer.alloc(32, 7);

    const wrapped = await crypto.wrapKey("RSA-OAEP", cek);
    assert.equal(wrapped.algorithm, "RSA-OAEP");
    assert.equal(Buffer.from(wrapped.result).length, 384);
    const unwrapped = await crypto.unwrapKey("RSA-OAEP", wrapped.result);
    assert.deepEqual(Buffer.from(unwrapped.result), cek);
    assert.equal(unwrapped.keyID, key.id);
  });

  it("ok/delete, get deleted, recover, delete and purge", async () => {
    const key = await client.createRsaKey("to-recover");
    const poller = await client.beginDeleteKey("to-recover", POLL);
    const deleted = await poller.pollUntilDone();
    assert.equal(deleted.name, "to-recover");
    assert.ok(deleted.properties.recoveryId, "recoveryId set");
    assert.ok(deleted.properties.deletedOn instanceof Date, "deletedOn set");
    assert.ok(deleted.properties.scheduledPurgeDate instanceof Date, "scheduledPurgeDate set");

    await rejectsWith(client.getKey("to-recover"), 404, "KeyNotFound");
    const got = await client.getDeletedKey("to-recover");
    assert.equal(got.name, "to-recover");
    const listed = await collect(client.listDeletedKeys());
    assert.ok(listed.some((d) => d.name === "to-recover"), "deleted key listed");

    const recovered = await (await client.beginRecoverDeletedKey("to-recover", POLL)).pollUntilDone();
    assert.equal(recovered.name, "to-recover");
    const back = await client.getKey("to-recover");
    assert.equal(back.properties.version, key.properties.version);
    assert.deepEqual(Buffer.from(back.key.n), Buffer.from(key.key.n));
    await rejectsWith(client.getDeletedKey("to-recover"), 404);

    await (await client.beginDeleteKey("to-recover", POLL)).pollUntilDone();
    await client.purgeDeletedKey("to-recover");
    await rejectsWith(client.getDeletedKey("to-recover"), 404);
    await rejectsWith(client.getKey("to-recover"), 404, "KeyNotFound");
    // The name is free again.
    const again = await client.createEcKey("to-recover");
    assert.equal(again.keyType, "EC");
  });

  it("ok/backup and restore", async () => {
    const first = await client.createRsaKey("backed-up");
    const second = await client.createRsaKey("backed-up");
    const crypto = new CryptographyClient(second.id, credential, kh.clientOptions());
    const ct = (await crypto.encrypt({ algorithm: "RSA-OAEP", plaintext: Buffer.from("survives restore") })).result;
    const blob = await client.backupKey("backed-up");
    assert.ok(blob instanceof Uint8Array && blob.length > 0, "backup blob");

    // Restore needs the name free: delete and purge first.
    await (await client.beginDeleteKey("backed-up", POLL)).pollUntilDone();
    await client.purgeDeletedKey("backed-up");

    const restored = await client.restoreKeyBackup(blob);
    assert.equal(restored.name, "backed-up");
    assert.equal(restored.properties.version, second.properties.version);
    const versions = await collect(client.listPropertiesOfKeyVersions("backed-up"));
    assert.deepEqual(versions.map((p) => p.version).sort(), [first.properties.version, second.properties.version].sort());
    // The restored key is the same key: it decrypts what was encrypted before.
    const dec = await new CryptographyClient(restored.id, credential, kh.clientOptions()).decrypt({ algorithm: "RSA-OAEP", ciphertext: ct });
    assert.equal(Buffer.from(dec.result).toString(), "survives restore");

    // Restoring over an existing key is a conflict.
    await rejectsWith(client.restoreKeyBackup(blob), 409);
  });

  it("ok/rotation policy: default, update, read back, rotate with its expiry", async () => {
    await client.createEcKey("rotating", { curve: "P-256" });
    const def = await client.getKeyRotationPolicy("rotating");
    assert.equal(def.lifetimeActions.length, 1);
    assert.equal(def.lifetimeActions[0].action, "Notify");
    const updated = await client.updateKeyRotationPolicy("rotating", {
      lifetimeActions: [
        { action: "Rotate", timeAfterCreate: "P90D" },
        { action: "Notify", timeBeforeExpiry: "P30D" },
      ],
      expiresIn: "P1Y",
    });
    assert.equal(updated.expiresIn, "P1Y");
    assert.ok(updated.id?.endsWith("/keys/rotating/rotationpolicy"), updated.id);
    assert.ok(updated.createdOn instanceof Date);
    const got = await client.getKeyRotationPolicy("rotating");
    const rotate = got.lifetimeActions.find((a) => a.action === "Rotate");
    assert.equal(rotate?.timeAfterCreate, "P90D");
    const rotated = await client.rotateKey("rotating");
    const inAYear = Date.now() + 365 * 24 * 3600 * 1000;
    assert.ok(Math.abs(rotated.properties.expiresOn.getTime() - inAYear) < 2 * 24 * 3600 * 1000, String(rotated.properties.expiresOn));
    await rejectsWith(
      client.updateKeyRotationPolicy("rotating", { lifetimeActions: [{ action: "Rotate", timeAfterCreate: "P1D" }] }),
      400,
      "BadParameter",
    );
  });

  it("fail/missing key is KeyNotFound", async () => {
    await rejectsWith(client.getKey("never-made"), 404, "KeyNotFound");
    await rejectsWith(client.getKey("rsa-key", { version: "0123456789abcdef0123456789abcdef" }), 404, "KeyNotFound");
    await rejectsWith(client.beginDeleteKey("never-made", POLL), 404, "KeyNotFound");
    await rejectsWith(client.backupKey("never-made"), 404, "KeyNotFound");
  });

  it("fail/principal without a role is Forbidden", async () => {
    const other = await createServicePrincipal(kh, "compat-js-keys-norole");
    const cred = credentialFor(kh, other);
    const c = new KeyClient(kh.vaultUrl(vaultName), cred, kh.clientOptions());
    await rejectsWith(c.getKey("rsa-key"), 403, "Forbidden");
  });
});
