// @azure/keyvault-certificates CertificateClient, unmodified, against a real keyhaven
// server, authenticated by @azure/identity ClientSecretCredential for a service
// principal that holds Key Vault Certificates Officer and Key Vault Secrets User on the
// vault (RBAC). The private key is read back through the certificate's managed secret
// with @azure/keyvault-secrets and checked with Node's crypto.

import assert from "node:assert/strict";
import { X509Certificate, createPrivateKey, createPublicKey } from "node:crypto";
import { after, before, describe, it } from "node:test";

import { CertificateClient } from "@azure/keyvault-certificates";
import { SecretClient } from "@azure/keyvault-secrets";

import { ROLE, startKeyhaven } from "../lib/harness.mjs";
import { POLL, collect, rejectsWith, vaultWithPrincipal } from "../lib/sdk.mjs";

// The PEM blocks of one type in a PEM bundle.
function pemBlocks(pem, type) {
  const re = new RegExp(`-----BEGIN ${type}-----[\\s\\S]+?-----END ${type}-----\\n?`, "g");
  return pem.match(re) ?? [];
}

describe("keyvault-certificates CertificateClient", { timeout: 120_000 }, () => {
  let kh;
  let client;
  let secrets;
  let vaultName;

  before(async () => {
    kh = await startKeyhaven();
    const vault = await vaultWithPrincipal(kh, {
      vaultPrefix: "jsc",
      principal: "compat-js-certificates",
      roles: [ROLE.keyVaultCertificatesOfficer, ROLE.keyVaultSecretsUser],
    });
    vaultName = vault.vaultName;
    client = new CertificateClient(vault.vaultUrl, vault.credential, kh.clientOptions());
    secrets = new SecretClient(vault.vaultUrl, vault.credential, kh.clientOptions());
  });

  after(async () => {
    await kh?.stop();
  });

  it("ok/create self-signed, poll, get, get version, private key through the managed secret", async () => {
    const poller = await client.beginCreateCertificate(
      "web",
      {
        issuerName: "Self",
        subject: "CN=web.example.com",
        subjectAlternativeNames: { dnsNames: ["web.example.com", "www.example.com"] },
        contentType: "application/x-pem-file",
        keyType: "RSA",
        keySize: 2048,
        validityInMonths: 12,
        exportable: true,
      },
      { ...POLL, tags: { env: "test" } },
    );
    const created = await poller.pollUntilDone();
    assert.equal(poller.getOperationState().isCompleted, true);
    assert.equal(created.name, "web");
    assert.ok(created.properties.version);
    assert.deepEqual(created.properties.tags, { env: "test" });
    assert.equal(created.policy.issuerName, "Self");
    assert.equal(created.policy.subject, "CN=web.example.com");
    assert.equal(created.policy.contentType, "application/x-pem-file");
    assert.equal(created.keyId, `${kh.vaultUrl(vaultName)}/keys/web/${created.properties.version}`);
    assert.equal(created.secretId, `${kh.vaultUrl(vaultName)}/secrets/web/${created.properties.version}`);

    const x509 = new X509Certificate(Buffer.from(created.cer));
    assert.equal(x509.subject, "CN=web.example.com");
    assert.match(x509.subjectAltName, /DNS:www\.example\.com/);
    assert.equal(Buffer.from(created.properties.x509Thumbprint).toString("hex").toUpperCase(), x509.fingerprint.replace(/:/g, ""));

    const got = await client.getCertificate("web");
    assert.equal(got.properties.version, created.properties.version);
    assert.deepEqual(Buffer.from(got.cer), Buffer.from(created.cer));
    const byVersion = await client.getCertificateVersion("web", created.properties.version);
    assert.equal(byVersion.properties.version, created.properties.version);
    assert.equal(byVersion.properties.expiresOn.getTime(), new Date(x509.validTo).getTime());

    const op = await client.getCertificateOperation("web", POLL);
    assert.equal(op.getOperationState().isCompleted, true);
    assert.equal((await op.pollUntilDone()).properties.version, created.properties.version);

    // The managed secret carries the certificate and its private key.
    const secret = await secrets.getSecret("web");
    assert.equal(secret.properties.managed, true);
    assert.equal(secret.properties.contentType, "application/x-pem-file");
    assert.equal(secret.properties.certificateKeyId, created.keyId);
    const [keyPem] = pemBlocks(secret.value, "PRIVATE KEY");
    const [certPem] = pemBlocks(secret.value, "CERTIFICATE");
    assert.ok(keyPem, "secret holds the private key");
    const fromSecret = new X509Certificate(certPem);
    assert.equal(fromSecret.subject, "CN=web.example.com");
    assert.ok(fromSecret.checkPrivateKey(createPrivateKey(keyPem)), "the key is the certificate's");
    assert.equal(
      createPublicKey(keyPem).export({ format: "pem", type: "spki" }),
      x509.publicKey.export({ format: "pem", type: "spki" }),
    );

    // The managed secret cannot be changed on its own.
    await rejectsWith(secrets.setSecret("web", "overwrite"), 403, "Forbidden");
  });

  it("ok/EC certificate in PKCS #12", async () => {
    const poller = await client.beginCreateCertificate(
      "ec-cert",
      { issuerName: "Self", subject: "CN=ec", keyType: "EC", keyCurveName: "P-384" },
      POLL,
    );
    const cert = await poller.pollUntilDone();
    const x509 = new X509Certificate(Buffer.from(cert.cer));
    assert.equal(x509.publicKey.asymmetricKeyType, "ec");
    assert.equal(x509.publicKey.asymmetricKeyDetails.namedCurve, "secp384r1");
    const secret = await secrets.getSecret("ec-cert");
    assert.equal(secret.properties.contentType, "application/x-pkcs12");
    assert.ok(Buffer.from(secret.value, "base64").length > 100);
  });

  it("ok/list, list versions, update properties", async () => {
    const p2 = await client.beginCreateCertificate("web", { issuerName: "Self", subject: "CN=web.example.com", contentType: "application/x-pem-file" }, POLL);
    const v2 = await p2.pollUntilDone();
    const names = (await collect(client.listPropertiesOfCertificates())).map((c) => c.name);
    assert.ok(names.includes("web") && names.includes("ec-cert"), `listed ${names}`);
    const versions = await collect(client.listPropertiesOfCertificateVersions("web"));
    assert.equal(versions.length, 2);
    assert.ok(versions.some((v) => v.version === v2.properties.version));

    const updated = await client.updateCertificateProperties("web", "", { enabled: false, tags: { owner: "ops" } });
    assert.equal(updated.properties.enabled, false);
    assert.deepEqual(updated.properties.tags, { owner: "ops" });
    await rejectsWith(secrets.getSecret("web"), 403);
    const again = await client.updateCertificateProperties("web", v2.properties.version, { enabled: true });
    assert.equal(again.properties.enabled, true);
  });

  it("ok/policy get and update", async () => {
    const policy = await client.getCertificatePolicy("web");
    assert.equal(policy.issuerName, "Self");
    assert.equal(policy.validityInMonths, 12);
    assert.equal(policy.keyType, "RSA");
    // updateCertificatePolicy 4.10.3 resolves to an empty policy whatever the service
    // answers (it never reads the response body), so the update is read back.
    await client.updateCertificatePolicy("web", { ...policy, validityInMonths: 6, subject: "CN=renewed.example.com" });
    const updated = await client.getCertificatePolicy("web");
    assert.equal(updated.validityInMonths, 6);
    assert.equal(updated.subject, "CN=renewed.example.com");
    const renewed = await (await client.beginCreateCertificate("web", updated, POLL)).pollUntilDone();
    assert.equal(new X509Certificate(Buffer.from(renewed.cer)).subject, "CN=renewed.example.com");
  });

  it("ok/import PEM", async () => {
    const secret = await secrets.getSecret("web");
    const imported = await client.importCertificate("imported", Buffer.from(secret.value), {
      policy: { contentType: "application/x-pem-file" },
      tags: { source: "import" },
    });
    assert.equal(imported.name, "imported");
    assert.equal(imported.policy.issuerName, "Unknown");
    assert.deepEqual(imported.properties.tags, { source: "import" });
    assert.equal(new X509Certificate(Buffer.from(imported.cer)).subject, "CN=renewed.example.com");
    const back = await secrets.getSecret("imported");
    assert.equal(back.properties.managed, true);
    assert.equal(pemBlocks(back.value, "PRIVATE KEY").length, 1);
  });

  it("ok/backup, purge, restore", async () => {
    const before = await client.getCertificate("ec-cert");
    const backup = await client.backupCertificate("ec-cert");
    assert.ok(backup instanceof Uint8Array && backup.length > 0);
    await (await client.beginDeleteCertificate("ec-cert", POLL)).pollUntilDone();
    await client.purgeDeletedCertificate("ec-cert");
    await rejectsWith(client.getCertificate("ec-cert"), 404);
    const restored = await client.restoreCertificateBackup(backup);
    assert.equal(restored.name, "ec-cert");
    assert.equal(restored.properties.version, before.properties.version);
    assert.deepEqual(Buffer.from(restored.cer), Buffer.from(before.cer));
    assert.equal((await secrets.getSecret("ec-cert")).properties.managed, true);
  });

  it("fail/issuer other than Self or Unknown", async () => {
    await rejectsWith(
      client.beginCreateCertificate("ca-cert", { issuerName: "DigiCert", subject: "CN=x" }, POLL),
      400,
      "BadParameter",
    );
  });

  it("ok/delete, get deleted, recover, delete, purge", async () => {
    const dp = await client.beginDeleteCertificate("imported", POLL);
    const deleted = await dp.pollUntilDone();
    assert.equal(deleted.name, "imported");
    assert.ok(deleted.recoveryId.endsWith("/deletedcertificates/imported"));
    assert.ok(deleted.scheduledPurgeDate instanceof Date);
    const got = await client.getDeletedCertificate("imported");
    assert.equal(got.name, "imported");
    await rejectsWith(client.getCertificate("imported"), 404, "CertificateNotFound");
    await rejectsWith(secrets.getSecret("imported"), 404);
    const listed = (await collect(client.listDeletedCertificates())).map((c) => c.name);
    assert.ok(listed.includes("imported"));

    const rp = await client.beginRecoverDeletedCertificate("imported", POLL);
    const recovered = await rp.pollUntilDone();
    assert.equal(recovered.name, "imported");
    assert.equal((await secrets.getSecret("imported")).properties.managed, true);

    await (await client.beginDeleteCertificate("imported", POLL)).pollUntilDone();
    await client.purgeDeletedCertificate("imported");
    await rejectsWith(client.getDeletedCertificate("imported"), 404);
    await rejectsWith(client.getCertificate("imported"), 404);
  });
});
