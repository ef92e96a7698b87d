package compat_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// Built-in Key Vault crypto roles (Azure's GUIDs).
const (
	roleKeyVaultCryptoOfficer           = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
	roleKeyVaultCryptoServiceEncryption = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
)

func (e *env) keysClient(t *testing.T, vaultName string, cred azcore.TokenCredential) *azkeys.Client {
	t.Helper()
	c, err := azkeys.NewClient(e.srv.VaultURL(vaultName), cred, &azkeys.ClientOptions{ClientOptions: e.clientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// keysVault creates an RBAC vault and a service principal holding Key Vault
// Crypto Officer on it, and returns an azkeys client authenticated as it.
func keysVault(t *testing.T, e *env, vaultName string) (*azkeys.Client, string) {
	t.Helper()
	e.createResourceGroup(t, "rg-"+vaultName)
	vaultID := e.createVault(t, "rg-"+vaultName, vaultName)
	sp := e.createServicePrincipal(t, "compat-"+vaultName)
	e.assignRole(t, vaultID, roleKeyVaultCryptoOfficer, sp.ObjectID)
	return e.keysClient(t, vaultName, e.clientSecretCredential(t, sp.AppID, sp.Secret)), vaultID
}

// TestKeysClient drives the azkeys.Client operations keyhaven supports
// against a real server, checking the cryptography with Go's own crypto.
func TestKeysClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const vaultName = "kv-compat-keys"
	client, vaultID := keysVault(t, e, vaultName)
	ctx := testCtx(t)
	vaultURL := strings.TrimSuffix(e.srv.VaultURL(vaultName), "/")
	digest := sha256.Sum256([]byte("keyhaven compat"))
	var rsaV1, rsaV2 string
	var rsaPub *rsa.PublicKey

	t.Run("ok/create-rsa", func(t *testing.T) {
		exp := time.Now().Add(48 * time.Hour).Truncate(time.Second).UTC()
		res, err := client.CreateKey(ctx, "rsa-key", azkeys.CreateKeyParameters{
			Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048), PublicExponent: to.Ptr[int32](65537),
			Tags:          map[string]*string{"env": to.Ptr("compat")},
			KeyAttributes: &azkeys.KeyAttributes{Expires: to.Ptr(exp)},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		k := res.Key
		if k == nil || k.KID == nil || k.KID.Name() != "rsa-key" || len(k.KID.Version()) != 32 ||
			!strings.HasPrefix(string(*k.KID), vaultURL+"/keys/rsa-key/") {
			t.Fatalf("kid %v", k)
		}
		if *k.Kty != azkeys.KeyTypeRSA || len(k.N) != 256 || !bytes.Equal(k.E, []byte{1, 0, 1}) || k.D != nil || k.P != nil {
			t.Fatalf("jwk kty=%v n=%d e=%x private=%v", *k.Kty, len(k.N), k.E, k.D != nil)
		}
		if len(k.KeyOps) != 6 {
			t.Errorf("key_ops %d", len(k.KeyOps))
		}
		a := res.Attributes
		if a == nil || !*a.Enabled || !a.Expires.Equal(exp) || a.RecoverableDays == nil || *a.RecoverableDays != 7 ||
			!strings.Contains(*a.RecoveryLevel, "Recoverable") || *res.Tags["env"] != "compat" {
			t.Fatalf("attributes %+v tags %v", a, res.Tags)
		}
		rsaV1 = k.KID.Version()
		rsaPub = &rsa.PublicKey{N: new(big.Int).SetBytes(k.N), E: int(new(big.Int).SetBytes(k.E).Int64())}
	})

	t.Run("ok/create-ec-curves", func(t *testing.T) {
		for _, crv := range []azkeys.CurveName{azkeys.CurveNameP256, azkeys.CurveNameP384, azkeys.CurveNameP521} {
			res, err := client.CreateKey(ctx, "ec-"+strings.ToLower(strings.ReplaceAll(string(crv), "-", "")), azkeys.CreateKeyParameters{
				Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(crv),
			}, nil)
			if err != nil {
				t.Fatalf("%s: %v", crv, err)
			}
			if *res.Key.Kty != azkeys.KeyTypeEC || *res.Key.Crv != crv || len(res.Key.X) == 0 || len(res.Key.X) != len(res.Key.Y) || res.Key.D != nil {
				t.Fatalf("%s: jwk %+v", crv, res.Key)
			}
		}
	})

	t.Run("fail/create-refused", func(t *testing.T) {
		_, err := client.CreateKey(ctx, "hsm", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM)}, nil)
		wantResponseError(t, "RSA-HSM", err, 400, "BadParameter")
		_, err = client.CreateKey(ctx, "k256", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256K)}, nil)
		wantResponseError(t, "P-256K", err, 400, "BadParameter")
	})

	t.Run("ok/new-version-and-get", func(t *testing.T) {
		res, err := client.CreateKey(ctx, "rsa-key", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		rsaV2 = res.Key.KID.Version()
		latest, err := client.GetKey(ctx, "rsa-key", "", nil)
		if err != nil || latest.Key.KID.Version() != rsaV2 {
			t.Fatalf("latest %v %v", latest.Key, err)
		}
		first, err := client.GetKey(ctx, "rsa-key", rsaV1, nil)
		if err != nil || !bytes.Equal(first.Key.N, rsaPub.N.Bytes()) {
			t.Fatalf("first version %v", err)
		}
		_, err = client.GetKey(ctx, "missing", "", nil)
		wantResponseError(t, "get missing", err, 404, "KeyNotFound")
	})

	t.Run("ok/list-with-paging", func(t *testing.T) {
		for i := range 26 { // more than one page of 25
			if _, err := client.CreateKey(ctx, fmt.Sprintf("page-%02d", i), azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil); err != nil {
				t.Fatal(err)
			}
		}
		var names []string
		pages := 0
		pager := client.NewListKeyPropertiesPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, k := range page.Value {
				names = append(names, k.KID.Name())
			}
		}
		if pages < 2 || len(names) != 30 || !slices.Contains(names, "rsa-key") || !slices.Contains(names, "page-25") {
			t.Fatalf("%d pages, %d keys: %v", pages, len(names), names)
		}
		var versions []string
		vp := client.NewListKeyPropertiesVersionsPager("rsa-key", nil)
		for vp.More() {
			page, err := vp.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range page.Value {
				versions = append(versions, k.KID.Version())
			}
		}
		slices.Sort(versions)
		want := []string{rsaV1, rsaV2}
		slices.Sort(want)
		if !slices.Equal(versions, want) {
			t.Fatalf("versions %v, want %v", versions, want)
		}
	})

	t.Run("ok/update", func(t *testing.T) {
		res, err := client.UpdateKey(ctx, "rsa-key", rsaV1, azkeys.UpdateKeyParameters{
			Tags:   map[string]*string{"env": to.Ptr("updated")},
			KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationEncrypt), to.Ptr(azkeys.KeyOperationDecrypt), to.Ptr(azkeys.KeyOperationWrapKey), to.Ptr(azkeys.KeyOperationUnwrapKey), to.Ptr(azkeys.KeyOperationSign), to.Ptr(azkeys.KeyOperationVerify)},
		}, nil)
		if err != nil || *res.Tags["env"] != "updated" || len(res.Key.KeyOps) != 6 {
			t.Fatalf("update %v %v", res, err)
		}
		// Disabled, the version refuses to work; enabled again, it works.
		if _, err := client.UpdateKey(ctx, "rsa-key", rsaV2, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
			t.Fatal(err)
		}
		_, err = client.Sign(ctx, "rsa-key", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: digest[:]}, nil)
		wantResponseError(t, "sign with a disabled key", err, 403, "Forbidden")
		if _, err := client.UpdateKey(ctx, "rsa-key", rsaV2, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true)}}, nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ok/encrypt-decrypt", func(t *testing.T) {
		plain := []byte("a data encryption key, or a secret")
		for _, alg := range []azkeys.EncryptionAlgorithm{azkeys.EncryptionAlgorithmRSAOAEP, azkeys.EncryptionAlgorithmRSAOAEP256, azkeys.EncryptionAlgorithmRSA15} {
			enc, err := client.Encrypt(ctx, "rsa-key", rsaV1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: plain}, nil)
			if err != nil {
				t.Fatalf("%s encrypt: %v", alg, err)
			}
			if enc.KID.Version() != rsaV1 || len(enc.Result) != 256 {
				t.Fatalf("%s: kid %v, %d bytes", alg, *enc.KID, len(enc.Result))
			}
			dec, err := client.Decrypt(ctx, "rsa-key", rsaV1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: enc.Result}, nil)
			if err != nil || !bytes.Equal(dec.Result, plain) {
				t.Fatalf("%s decrypt: %q %v", alg, dec.Result, err)
			}
		}
		// A ciphertext made locally with the public key decrypts.
		ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, rsaPub, plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := client.Decrypt(ctx, "rsa-key", rsaV1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: ct}, nil)
		if err != nil || !bytes.Equal(dec.Result, plain) {
			t.Fatalf("local ciphertext: %v", err)
		}
		_, err = client.Encrypt(ctx, "rsa-key", rsaV1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP), Value: make([]byte, 215)}, nil)
		wantResponseError(t, "plaintext too long", err, 400, "BadParameter")
	})

	t.Run("ok/wrap-unwrap", func(t *testing.T) {
		cek := make([]byte, 32)
		_, _ = rand.Read(cek)
		w, err := client.WrapKey(ctx, "rsa-key", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: cek}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if w.KID.Version() != rsaV2 {
			t.Fatalf("wrapped with %v, want the latest %s", *w.KID, rsaV2)
		}
		u, err := client.UnwrapKey(ctx, "rsa-key", w.KID.Version(), azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: w.Result}, nil)
		if err != nil || !bytes.Equal(u.Result, cek) {
			t.Fatalf("unwrap: %v", err)
		}
	})

	t.Run("ok/sign-verify-ES256", func(t *testing.T) {
		key, err := client.GetKey(ctx, "ec-p256", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := client.Sign(ctx, "ec-p256", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: digest[:]}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Result) != 64 {
			t.Fatalf("ES256 signature %d bytes", len(s.Result))
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, key.Key.X...), key.Key.Y...))
		if err != nil {
			t.Fatal(err)
		}
		if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(s.Result[:32]), new(big.Int).SetBytes(s.Result[32:])) {
			t.Fatal("ES256 signature does not verify locally")
		}
		v, err := client.Verify(ctx, "ec-p256", "", azkeys.VerifyParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Digest: digest[:], Signature: s.Result}, nil)
		if err != nil || !*v.Value {
			t.Fatalf("verify %v %v", v.Value, err)
		}
		bad := bytes.Clone(s.Result)
		bad[0] ^= 1
		v, err = client.Verify(ctx, "ec-p256", "", azkeys.VerifyParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Digest: digest[:], Signature: bad}, nil)
		if err != nil || *v.Value {
			t.Fatalf("verify of a bad signature %v %v", v.Value, err)
		}
		_, err = client.Sign(ctx, "ec-p256", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES384), Value: digest[:]}, nil)
		wantResponseError(t, "ES384 with a P-256 key", err, 400, "BadParameter")
	})

	t.Run("ok/sign-verify-PS256", func(t *testing.T) {
		s, err := client.Sign(ctx, "rsa-key", rsaV1, azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmPS256), Value: digest[:]}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := rsa.VerifyPSS(rsaPub, crypto.SHA256, digest[:], s.Result, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
			t.Fatalf("PS256 signature does not verify locally: %v", err)
		}
		v, err := client.Verify(ctx, "rsa-key", rsaV1, azkeys.VerifyParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmPS256), Digest: digest[:], Signature: s.Result}, nil)
		if err != nil || !*v.Value {
			t.Fatalf("verify %v %v", v.Value, err)
		}
	})

	t.Run("ok/rotate", func(t *testing.T) {
		r, err := client.RotateKey(ctx, "ec-p384", nil)
		if err != nil {
			t.Fatal(err)
		}
		if *r.Key.Crv != azkeys.CurveNameP384 || len(r.Key.X) != 48 {
			t.Fatalf("rotated %+v", r.Key)
		}
		latest, err := client.GetKey(ctx, "ec-p384", "", nil)
		if err != nil || latest.Key.KID.Version() != r.Key.KID.Version() {
			t.Fatalf("latest after rotate: %v", err)
		}
	})

	t.Run("ok/rotation-policy", func(t *testing.T) {
		def, err := client.GetKeyRotationPolicy(ctx, "ec-p384", nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(def.LifetimeActions) != 1 || *def.LifetimeActions[0].Action.Type != azkeys.KeyRotationPolicyActionNotify {
			t.Fatalf("default policy %+v", def.KeyRotationPolicy)
		}
		upd, err := client.UpdateKeyRotationPolicy(ctx, "ec-p384", azkeys.KeyRotationPolicy{
			LifetimeActions: []*azkeys.LifetimeAction{
				{Trigger: &azkeys.LifetimeActionTrigger{TimeAfterCreate: to.Ptr("P90D")}, Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionRotate)}},
				{Trigger: &azkeys.LifetimeActionTrigger{TimeBeforeExpiry: to.Ptr("P30D")}, Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionNotify)}},
			},
			Attributes: &azkeys.KeyRotationPolicyAttributes{ExpiryTime: to.Ptr("P1Y")},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if upd.ID == nil || !strings.HasSuffix(*upd.ID, "/keys/ec-p384/rotationpolicy") || upd.Attributes == nil ||
			*upd.Attributes.ExpiryTime != "P1Y" || upd.Attributes.Created == nil || len(upd.LifetimeActions) != 2 {
			t.Fatalf("updated policy %+v", upd.KeyRotationPolicy)
		}
		got, err := client.GetKeyRotationPolicy(ctx, "ec-p384", nil)
		if err != nil || *got.LifetimeActions[0].Trigger.TimeAfterCreate != "P90D" {
			t.Fatalf("policy read back: %v %+v", err, got.KeyRotationPolicy)
		}
		// A rotation now gives the new version the policy's expiry.
		r, err := client.RotateKey(ctx, "ec-p384", nil)
		if err != nil {
			t.Fatal(err)
		}
		if exp := r.Attributes.Expires; exp == nil || exp.Before(time.Now().AddDate(0, 11, 0)) || exp.After(time.Now().AddDate(1, 0, 1)) {
			t.Fatalf("rotated version expires %v, want in a year", exp)
		}
		_, err = client.UpdateKeyRotationPolicy(ctx, "ec-p384", azkeys.KeyRotationPolicy{
			LifetimeActions: []*azkeys.LifetimeAction{{Trigger: &azkeys.LifetimeActionTrigger{TimeAfterCreate: to.Ptr("P1D")},
				Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionRotate)}}},
		}, nil)
		wantResponseError(t, "rotation after one day", err, 400, "BadParameter")
	})

	t.Run("ok/import", func(t *testing.T) {
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := k.PublicKey.Bytes()
		d, _ := k.Bytes()
		res, err := client.ImportKey(ctx, "imported", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{
			Kty: to.Ptr(azkeys.KeyTypeEC), Crv: to.Ptr(azkeys.CurveNameP384), X: raw[1:49], Y: raw[49:], D: d,
			KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationSign), to.Ptr(azkeys.KeyOperationVerify)},
		}}, nil)
		if err != nil || res.Key.D != nil || !bytes.Equal(res.Key.X, raw[1:49]) {
			t.Fatalf("import %v", err)
		}
	})

	t.Run("ok/backup-delete-recover-purge-restore", func(t *testing.T) {
		b, err := client.BackupKey(ctx, "rsa-key", nil)
		if err != nil || len(b.Value) == 0 {
			t.Fatalf("backup %v", err)
		}
		del, err := client.DeleteKey(ctx, "rsa-key", nil)
		if err != nil || del.RecoveryID == nil || del.DeletedDate == nil || del.ScheduledPurgeDate == nil ||
			!strings.HasSuffix(*del.RecoveryID, "/deletedkeys/rsa-key") {
			t.Fatalf("delete %+v %v", del, err)
		}
		if _, err := client.GetDeletedKey(ctx, "rsa-key", nil); err != nil {
			t.Fatal(err)
		}
		found := false
		dp := client.NewListDeletedKeyPropertiesPager(nil)
		for dp.More() {
			page, err := dp.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range page.Value {
				found = found || k.KID.Name() == "rsa-key"
			}
		}
		if !found {
			t.Fatal("deleted key not listed")
		}
		_, err = client.CreateKey(ctx, "rsa-key", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil)
		wantResponseError(t, "create over a deleted key", err, 409, "Conflict")
		if _, err := client.RecoverDeletedKey(ctx, "rsa-key", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := client.GetKey(ctx, "rsa-key", "", nil); err != nil {
			t.Fatalf("after recover: %v", err)
		}
		if _, err := client.DeleteKey(ctx, "rsa-key", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := client.PurgeDeletedKey(ctx, "rsa-key", nil); err != nil {
			t.Fatal(err)
		}
		_, err = client.GetDeletedKey(ctx, "rsa-key", nil)
		wantResponseError(t, "get purged", err, 404, "KeyNotFound")
		r, err := client.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: b.Value}, nil)
		if err != nil || r.Key.KID.Name() != "rsa-key" {
			t.Fatalf("restore %v", err)
		}
		// The restored first version still signs with the same key.
		s, err := client.Sign(ctx, "rsa-key", rsaV1, azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: digest[:]}, nil)
		if err != nil || rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, digest[:], s.Result) != nil {
			t.Fatalf("sign after restore: %v", err)
		}
	})

	t.Run("ok/service-encryption-user-wraps-only", func(t *testing.T) {
		sp := e.createServicePrincipal(t, "compat-keys-wrapper")
		e.assignRole(t, vaultID+"/keys/rsa-key", roleKeyVaultCryptoServiceEncryption, sp.ObjectID)
		c := e.keysClient(t, vaultName, e.clientSecretCredential(t, sp.AppID, sp.Secret))
		w, err := c.WrapKey(ctx, "rsa-key", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: []byte("cek")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.UnwrapKey(ctx, "rsa-key", w.KID.Version(), azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: w.Result}, nil); err != nil {
			t.Fatal(err)
		}
		_, err = c.Sign(ctx, "rsa-key", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: digest[:]}, nil)
		wantResponseError(t, "sign as Crypto Service Encryption User", err, 403, "Forbidden")
		_, err = c.WrapKey(ctx, "ec-p256", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: []byte("cek")}, nil)
		wantResponseError(t, "wrap with another key", err, 403, "Forbidden")
	})
}

// TestKeysVaultRecovery: a vault's keys go with it. A deleted vault's keys
// come back, the same key material, when the vault is recovered; a purged
// vault's keys are gone, also from a new vault of the same name.
func TestKeysVaultRecovery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const vaultName = "kv-compat-keys-rec"
	rg := "rg-" + vaultName
	client, _ := keysVault(t, e, vaultName)
	vaults := e.vaultsClient(t)
	ctx := testCtx(t)
	digest := sha256.Sum256([]byte("before the vault was deleted"))

	created, err := client.CreateKey(ctx, "carried", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP384)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d384 := sha512.Sum384(digest[:])
	sig, err := client.Sign(ctx, "carried", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES384), Value: d384[:]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vaults.Delete(ctx, rg, vaultName, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := client.GetKey(ctx, "carried", "", nil); err == nil {
		t.Fatal("a deleted vault's key is still served")
	}
	params := e.vaultParams(true)
	params.Properties.CreateMode = to.Ptr(armkeyvault.CreateModeRecover)
	poller, err := vaults.BeginCreateOrUpdate(ctx, rg, vaultName, params, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pollUntilDone(t, ctx, poller); err != nil {
		t.Fatal(err)
	}
	got, err := client.GetKey(ctx, "carried", "", nil)
	if err != nil || got.Key.KID.Version() != created.Key.KID.Version() || !bytes.Equal(got.Key.X, created.Key.X) {
		t.Fatalf("after recovery: %v", err)
	}
	v, err := client.Verify(ctx, "carried", "", azkeys.VerifyParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES384), Digest: d384[:], Signature: sig.Result}, nil)
	if err != nil || !*v.Value {
		t.Fatalf("the recovered key does not verify its old signature: %v", err)
	}

	if _, err := vaults.Delete(ctx, rg, vaultName, nil); err != nil {
		t.Fatal(err)
	}
	purge, err := vaults.BeginPurgeDeleted(ctx, vaultName, "local", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pollUntilDone(t, ctx, purge); err != nil {
		t.Fatal(err)
	}
	e.createVault(t, rg, vaultName)
	_, err = client.GetKey(ctx, "carried", "", nil)
	wantResponseError(t, "key of a purged vault", err, 404, "KeyNotFound")
}
