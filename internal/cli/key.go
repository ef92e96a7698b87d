package cli

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// az keyvault key: keys in a vault's data plane. Private key material never
// comes back from the server; import reads a PEM file locally and sends the
// key as a JSON web key.

func init() {
	register("keyvault", newKeyCmd)
	multiValueFlags["--ops"] = true
}

const maxKeyPEMBytes = 64 << 10

var (
	keyTypes      = []string{"EC", "EC-HSM", "RSA", "RSA-HSM", "oct", "oct-HSM"}
	keyCurves     = []string{"P-256", "P-256K", "P-384", "P-521"}
	keyOperations = []string{"decrypt", "encrypt", "import", "release", "sign", "unwrapKey", "verify", "wrapKey"}
	encAlgorithms = []string{"RSA-OAEP", "RSA-OAEP-256", "RSA1_5"}
	sigAlgorithms = []string{"ES256", "ES256K", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512"}
)

func newKeyCmd(a *app) *cobra.Command {
	cmd := newGroup("key", "Manage keys.")
	cmd.AddCommand(newKeyCreateCmd(a), newKeyImportCmd(a), newKeyShowCmd(a), newKeyListCmd(a), newKeyListVersionsCmd(a),
		newKeySetAttributesCmd(a), newKeyDeleteCmd(a), newKeyShowDeletedCmd(a), newKeyListDeletedCmd(a),
		newKeyRecoverCmd(a), newKeyPurgeCmd(a), newKeyBackupCmd(a), newKeyRestoreCmd(a),
		newKeyCryptCmd(a, "encrypt", "Encrypt a value (at most one RSA block) with a key.", "encrypt"),
		newKeyCryptCmd(a, "decrypt", "Decrypt a value with a key.", "decrypt"),
		newKeySignCmd(a), newKeyVerifyCmd(a), newKeyRotateCmd(a), newKeyRotationPolicyCmd(a))
	return cmd
}

const maxRotationPolicyBytes = 8 << 10

// newKeyRotationPolicyCmd is az keyvault key rotation-policy show|update.
func newKeyRotationPolicyCmd(a *app) *cobra.Command {
	cmd := newGroup("rotation-policy", "Manage key's rotation policy.")
	var f objFlags
	var value string
	update := &cobra.Command{
		Use: "update", Short: "Update the rotation policy of a Key Vault key.", Args: cobra.NoArgs,
		Example: `  keyhaven keyvault key rotation-policy update -n mykey --vault-name mykeyvault --value @policy.json
  # policy.json: {"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}},
  #   {"trigger":{"timeBeforeExpiry":"P30D"},"action":{"type":"Notify"}}],"attributes":{"expiryTime":"P2Y"}}`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw := []byte(value)
			if strings.HasPrefix(value, "@") {
				b, err := readFileLimited(strings.TrimPrefix(value, "@"), maxRotationPolicyBytes)
				if err != nil {
					return usageErrorf("argument --value: %v", err)
				}
				raw = b
			}
			var policy map[string]any
			if len(raw) > maxRotationPolicyBytes || json.Unmarshal(raw, &policy) != nil || policy == nil {
				return usageErrorf("argument --value: the rotation policy as a JSON object (or @file holding one), at most %d bytes", maxRotationPolicyBytes)
			}
			it, err := a.item(keyObject, &f)
			if err != nil {
				return err
			}
			v, err := a.kv(cmd.Context(), http.MethodPut, kvURL(it.base, "/keys/"+it.name+"/rotationpolicy", nil), policy)
			if err != nil {
				return err
			}
			return a.print(v)
		},
	}
	f.bind(update, keyObject, false, true)
	update.Flags().StringVar(&value, "value", "", "The rotation policy: JSON, or @file holding JSON (lifetimeActions with a Rotate trigger timeAfterCreate or timeBeforeExpiry, attributes.expiryTime; ISO 8601 durations such as P90D).")
	_ = update.MarkFlagRequired("value")
	cmd.AddCommand(objCallCmd(a, keyObject, "show", "Get the rotation policy of a Key Vault key.", false, http.MethodGet, "keys", "/rotationpolicy"), update)
	return cmd
}

// keyAttrs are the settable attributes of create, import and set-attributes.
type keyAttrs struct {
	expires, notBefore string
	ops, tags          []string
}

func (k *keyAttrs) bind(c *cobra.Command) {
	c.Flags().StringVar(&k.expires, "expires", "", "Expiration UTC datetime (Y-m-d'T'H:M:S'Z').")
	c.Flags().StringVar(&k.notBefore, "not-before", "", "Key not usable before the provided UTC datetime (Y-m-d'T'H:M:S'Z').")
	c.Flags().StringArrayVar(&k.ops, "ops", nil, "Space-separated list of permitted JSON web key operations: "+strings.Join(keyOperations, ", ")+".")
	c.Flags().StringArrayVar(&k.tags, "tags", nil, "Space-separated tags: key[=value] [key[=value] ...].")
}

// fill writes the attributes into a request body; opsInto is the map that
// carries key_ops (the body for create and update, the JWK for import).
func (k *keyAttrs) fill(c *cobra.Command, body, attrs, opsInto map[string]any) error {
	if err := fillWindow(k.expires, k.notBefore, attrs); err != nil {
		return err
	}
	if c.Flags().Changed("ops") {
		for _, op := range k.ops {
			if !slices.Contains(keyOperations, op) {
				return usageErrorf("argument --ops: invalid choice: %q (choose from %s)", op, quoteList(keyOperations))
			}
		}
		opsInto["key_ops"] = k.ops
	}
	return fillTags(c, keyObject, k.tags, body)
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = "'" + v + "'"
	}
	return strings.Join(q, ", ")
}

func choice(flag, v string, valid []string) error {
	if !slices.Contains(valid, v) {
		return usageErrorf("argument %s: invalid choice: %q (choose from %s)", flag, v, quoteList(valid))
	}
	return nil
}

func newKeyCreateCmd(a *app) *cobra.Command {
	var f objFlags
	var attrs keyAttrs
	var kty, curve, protection string
	var size int
	var disabled triBool
	cmd := &cobra.Command{
		Use: "create", Short: "Create a new key, or a new version of it, and return its public part.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.vault == "" || f.name == "" {
				return usageErrorf("the following arguments are required: --vault-name, --name/-n")
			}
			if err := choice("--protection/-p", protection, []string{"software", "hsm"}); err != nil {
				return err
			}
			if kty == "" {
				kty = "RSA"
				if curve != "" {
					kty = "EC"
				}
			}
			if err := choice("--kty", kty, keyTypes); err != nil {
				return err
			}
			if protection == "hsm" && !strings.HasSuffix(kty, "-HSM") {
				kty += "-HSM" // as az does; keyhaven's server refuses HSM keys with the reason
			}
			body := map[string]any{"kty": kty}
			if size != 0 {
				body["key_size"] = size
			}
			if curve != "" {
				if err := choice("--curve", curve, keyCurves); err != nil {
					return err
				}
				body["crv"] = curve
			}
			return a.sendNewKey(cmd, &f, &attrs, disabled, body, body, http.MethodPost, "/create")
		},
	}
	f.bind(cmd, keyObject, false, true)
	attrs.bind(cmd)
	cmd.Flags().StringVar(&kty, "kty", "", "The type of key to create: "+strings.Join(keyTypes, ", ")+" (keyhaven creates RSA and EC).")
	cmd.Flags().IntVar(&size, "size", 0, "The key size in bits: 2048, 3072 or 4096 for RSA.")
	cmd.Flags().StringVar(&curve, "curve", "", "Elliptic curve name: "+strings.Join(keyCurves, ", ")+".")
	bindNewKeyFlags(cmd, &protection, &disabled, "Create key in disabled state.")
	return cmd
}

func newKeyImportCmd(a *app) *cobra.Command {
	var f objFlags
	var attrs keyAttrs
	var pemFile, pemString, protection string
	var disabled triBool
	cmd := &cobra.Command{
		Use: "import", Short: "Import a private key (unencrypted PEM: PKCS #8, PKCS #1 or SEC 1).", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.vault == "" || f.name == "" {
				return usageErrorf("the following arguments are required: --vault-name, --name/-n")
			}
			if (pemFile == "") == (pemString == "") {
				return usageErrorf("usage error: specify exactly one of --pem-file, --pem-string")
			}
			if err := choice("--protection/-p", protection, []string{"software", "hsm"}); err != nil {
				return err
			}
			raw := []byte(pemString)
			if pemFile != "" {
				b, err := readFileLimited(pemFile, maxKeyPEMBytes)
				if err != nil {
					return usageErrorf("argument --pem-file: %v", err)
				}
				raw = b
			}
			jwk, err := pemToJWK(raw)
			if err != nil {
				return err
			}
			body := map[string]any{"key": jwk}
			if protection == "hsm" {
				body["Hsm"] = true
			}
			return a.sendNewKey(cmd, &f, &attrs, disabled, body, jwk, http.MethodPut, "")
		},
	}
	f.bind(cmd, keyObject, false, true)
	attrs.bind(cmd)
	cmd.Flags().StringVar(&pemFile, "pem-file", "", "PEM file containing the key to be imported.")
	cmd.Flags().StringVar(&pemString, "pem-string", "", "PEM string containing the key to be imported.")
	bindNewKeyFlags(cmd, &protection, &disabled, "Import key in disabled state.")
	return cmd
}

// bindNewKeyFlags adds the --protection and --disabled of create and import.
func bindNewKeyFlags(cmd *cobra.Command, protection *string, disabled *triBool, disabledHelp string) {
	cmd.Flags().StringVarP(protection, "protection", "p", "software", "Specifies the type of key protection: software (hsm is refused by keyhaven).")
	cmd.Flags().Var(disabled, "disabled", disabledHelp)
	cmd.Flags().Lookup("disabled").NoOptDefVal = "true"
}

// sendNewKey ends create and import: the attributes and --disabled go into
// body (key_ops into opsInto) and body goes to /keys/{name}{suffix}.
func (a *app) sendNewKey(cmd *cobra.Command, f *objFlags, attrs *keyAttrs, disabled triBool, body, opsInto map[string]any, method, suffix string) error {
	attr := map[string]any{}
	if err := attrs.fill(cmd, body, attr, opsInto); err != nil {
		return err
	}
	if disabled.set {
		attr["enabled"] = !disabled.val
	}
	if len(attr) > 0 {
		body["attributes"] = attr
	}
	it, err := a.item(keyObject, f)
	if err != nil {
		return err
	}
	v, err := a.kv(cmd.Context(), method, kvURL(it.base, "/keys/"+it.name+suffix, nil), body)
	if err != nil {
		return err
	}
	return a.print(v)
}

// pemToJWK reads one unencrypted private key from PEM and returns it as a
// JSON web key (base64url members, as Key Vault takes them).
func pemToJWK(raw []byte) (map[string]any, error) {
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, usageErrorf("argument --pem-file/--pem-string: no PEM block found")
	}
	if strings.Contains(block.Type, "ENCRYPTED") || block.Headers["Proc-Type"] != "" {
		return nil, usageErrorf("argument --pem-file/--pem-string: encrypted PEM is not supported; decrypt it first (openssl pkey)")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, usageErrorf("argument --pem-file/--pem-string: PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, usageErrorf("argument --pem-file/--pem-string: %v", err)
	}
	b := func(x []byte) string { return base64.RawURLEncoding.EncodeToString(x) }
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if len(k.Primes) != 2 {
			return nil, usageErrorf("argument --pem-file/--pem-string: multi-prime RSA keys are not supported")
		}
		k.Precompute()
		return map[string]any{
			"kty": "RSA", "n": b(k.N.Bytes()), "e": b(big.NewInt(int64(k.E)).Bytes()), "d": b(k.D.Bytes()),
			"p": b(k.Primes[0].Bytes()), "q": b(k.Primes[1].Bytes()),
			"dp": b(k.Precomputed.Dp.Bytes()), "dq": b(k.Precomputed.Dq.Bytes()), "qi": b(k.Precomputed.Qinv.Bytes()),
		}, nil
	case *ecdsa.PrivateKey:
		pub, err := k.PublicKey.Bytes()
		if err != nil {
			return nil, usageErrorf("argument --pem-file/--pem-string: %v", err)
		}
		d, err := k.Bytes()
		if err != nil {
			return nil, usageErrorf("argument --pem-file/--pem-string: %v", err)
		}
		n := (len(pub) - 1) / 2
		return map[string]any{"kty": "EC", "crv": k.Curve.Params().Name, "x": b(pub[1 : 1+n]), "y": b(pub[1+n:]), "d": b(d)}, nil
	}
	return nil, usageErrorf("argument --pem-file/--pem-string: %T keys are not supported (RSA and EC are)", key)
}

func newKeyShowCmd(a *app) *cobra.Command {
	return objCallCmd(a, keyObject, "show", "Get a key's attributes and, if it's an asymmetric key, its public material.", true, http.MethodGet, "keys", "")
}

func newKeyDeleteCmd(a *app) *cobra.Command {
	return objCallCmd(a, keyObject, "delete", "Delete a key of any type (recoverable while soft-deleted).", false, http.MethodDelete, "keys", "")
}

func newKeyShowDeletedCmd(a *app) *cobra.Command {
	return objCallCmd(a, keyObject, "show-deleted", "Get the public part of a deleted key.", false, http.MethodGet, "deletedkeys", "", "deletedkeys")
}

func newKeyRecoverCmd(a *app) *cobra.Command {
	return objCallCmd(a, keyObject, "recover", "Recover the deleted key to its latest version.", false, http.MethodPost, "deletedkeys", "/recover", "deletedkeys", "keys")
}

func newKeyRotateCmd(a *app) *cobra.Command {
	return objCallCmd(a, keyObject, "rotate", "Create a new version of a key with new key material (its rotation policy's expiryTime, if any, sets the new version's expiry).", false, http.MethodPost, "keys", "/rotate")
}

func newKeyPurgeCmd(a *app) *cobra.Command {
	return objCallCmd(a, keyObject, "purge", "Permanently delete the specified key.", false, http.MethodDelete, "deletedkeys", "", "deletedkeys", "keys")
}

func newKeyListCmd(a *app) *cobra.Command {
	return managedListCmd(a, keyObject, "list", "List keys in the specified vault.", "/keys", true)
}

func newKeyListDeletedCmd(a *app) *cobra.Command {
	return managedListCmd(a, keyObject, "list-deleted", "List the deleted keys in the specified vault.", "/deletedkeys", false)
}

func newKeyListVersionsCmd(a *app) *cobra.Command {
	return listVersionsCmd(a, keyObject, "List the identifiers and properties of a key's versions.")
}

func newKeySetAttributesCmd(a *app) *cobra.Command {
	var attrs keyAttrs
	return setAttributesCmd(a, keyObject, "Change specified attributes (and operations) of a stored key.", attrs.bind,
		func(cmd *cobra.Command, body, attr map[string]any) error { return attrs.fill(cmd, body, attr, body) })
}

func newKeyBackupCmd(a *app) *cobra.Command {
	return backupCmd(a, keyObject, "Back up the specified key (all versions) to a file.")
}

func newKeyRestoreCmd(a *app) *cobra.Command {
	return restoreCmd(a, keyObject, "Restore a backed up key to a vault.")
}

// decodeB64 accepts standard or URL base64, padded or not.
func decodeB64(flag, s string) ([]byte, error) {
	t := strings.TrimRight(s, "=")
	if b, err := base64.RawStdEncoding.DecodeString(t); err == nil {
		return b, nil
	}
	if b, err := base64.RawURLEncoding.DecodeString(t); err == nil {
		return b, nil
	}
	return nil, usageErrorf("argument %s: not base64", flag)
}

// keyOpPath is /keys/{name}[/{version}]/{op}.
func keyOpPath(it *kvItem, op string) string {
	if it.version == "" {
		return "/keys/" + it.name + "/" + op
	}
	return "/keys/" + it.name + "/" + it.version + "/" + op
}

// resultOf reads a KeyOperationResult's kid and base64url value.
func resultOf(v any) (string, []byte, error) {
	m, _ := v.(map[string]any)
	kid, _ := m["kid"].(string)
	s, _ := m["value"].(string)
	b, err := base64.RawURLEncoding.DecodeString(trimPad(s))
	if err != nil {
		return "", nil, &azerr.Error{Message: "the server returned an invalid operation result"}
	}
	return kid, b, nil
}

// newKeyCryptCmd is az keyvault key encrypt/decrypt. Values are base64 on
// the command line and in the output; --data-type plaintext takes (encrypt)
// or prints (decrypt) the value as text.
func newKeyCryptCmd(a *app, use, short, op string) *cobra.Command {
	var f objFlags
	var alg, value, dataType string
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if alg == "" || !cmd.Flags().Changed("value") {
				return usageErrorf("the following arguments are required: --algorithm/-a, --value")
			}
			if err := choice("--algorithm/-a", alg, encAlgorithms); err != nil {
				return err
			}
			if err := choice("--data-type", dataType, []string{"base64", "plaintext"}); err != nil {
				return err
			}
			in := []byte(value)
			if op == "decrypt" || dataType == "base64" {
				var err error
				if in, err = decodeB64("--value", value); err != nil {
					return err
				}
			}
			it, err := a.item(keyObject, &f)
			if err != nil {
				return err
			}
			body := map[string]any{"alg": alg, "value": base64.RawURLEncoding.EncodeToString(in)}
			v, err := a.kv(cmd.Context(), http.MethodPost, kvURL(it.base, keyOpPath(it, op), nil), body)
			if err != nil {
				return err
			}
			kid, out, err := resultOf(v)
			if err != nil {
				return err
			}
			result := base64.StdEncoding.EncodeToString(out)
			if op == "decrypt" && dataType == "plaintext" {
				result = string(out)
			}
			return a.print(map[string]any{"algorithm": alg, "kid": kid, "result": result})
		},
	}
	f.bind(cmd, keyObject, true, true)
	cmd.Flags().StringVarP(&alg, "algorithm", "a", "", "Algorithm identifier: "+strings.Join(encAlgorithms, ", ")+".")
	cmd.Flags().StringVar(&value, "value", "", "The value to "+op+" (base64, or text with --data-type plaintext for encrypt).")
	cmd.Flags().StringVar(&dataType, "data-type", "base64", "The type of the original data (encrypt) or of the result (decrypt): base64, plaintext.")
	return cmd
}

func newKeySignCmd(a *app) *cobra.Command {
	var f objFlags
	var alg, digest string
	cmd := &cobra.Command{
		Use: "sign", Short: "Create a signature from a digest using a key.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if alg == "" || digest == "" {
				return usageErrorf("the following arguments are required: --algorithm/-a, --digest")
			}
			if err := choice("--algorithm/-a", alg, sigAlgorithms); err != nil {
				return err
			}
			d, err := decodeB64("--digest", digest)
			if err != nil {
				return err
			}
			it, err := a.item(keyObject, &f)
			if err != nil {
				return err
			}
			body := map[string]any{"alg": alg, "value": base64.RawURLEncoding.EncodeToString(d)}
			v, err := a.kv(cmd.Context(), http.MethodPost, kvURL(it.base, keyOpPath(it, "sign"), nil), body)
			if err != nil {
				return err
			}
			kid, sig, err := resultOf(v)
			if err != nil {
				return err
			}
			return a.print(map[string]any{"algorithm": alg, "kid": kid, "signature": base64.StdEncoding.EncodeToString(sig)})
		},
	}
	f.bind(cmd, keyObject, true, true)
	cmd.Flags().StringVarP(&alg, "algorithm", "a", "", "Algorithm identifier: "+strings.Join(sigAlgorithms, ", ")+".")
	cmd.Flags().StringVar(&digest, "digest", "", "The value (base64) to sign: a digest of the hash the algorithm names.")
	return cmd
}

func newKeyVerifyCmd(a *app) *cobra.Command {
	var f objFlags
	var alg, digest, signature string
	cmd := &cobra.Command{
		Use: "verify", Short: "Verify a signature using the key that was used to sign the data.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if alg == "" || digest == "" || signature == "" {
				return usageErrorf("the following arguments are required: --algorithm/-a, --digest, --signature")
			}
			if err := choice("--algorithm/-a", alg, sigAlgorithms); err != nil {
				return err
			}
			d, err := decodeB64("--digest", digest)
			if err != nil {
				return err
			}
			sig, err := decodeB64("--signature", signature)
			if err != nil {
				return err
			}
			it, err := a.item(keyObject, &f)
			if err != nil {
				return err
			}
			enc := base64.RawURLEncoding.EncodeToString
			body := map[string]any{"alg": alg, "digest": enc(d), "value": enc(sig)}
			v, err := a.kv(cmd.Context(), http.MethodPost, kvURL(it.base, keyOpPath(it, "verify"), nil), body)
			if err != nil {
				return err
			}
			m, _ := v.(map[string]any)
			ok, _ := m["value"].(bool)
			kid := it.base + "/keys/" + it.name
			if it.version != "" {
				kid += "/" + it.version
			}
			return a.print(map[string]any{"algorithm": alg, "kid": kid, "isValid": ok})
		},
	}
	f.bind(cmd, keyObject, true, true)
	cmd.Flags().StringVarP(&alg, "algorithm", "a", "", "Algorithm identifier: "+strings.Join(sigAlgorithms, ", ")+".")
	cmd.Flags().StringVar(&digest, "digest", "", "The digest (base64) that was signed.")
	cmd.Flags().StringVar(&signature, "signature", "", "The signature (base64) to verify.")
	return cmd
}
