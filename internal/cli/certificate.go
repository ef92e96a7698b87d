package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// az keyvault certificate: certificates in a vault's data plane. A policy is
// given as az prints it (get-default-policy: camelCase) or in the REST
// shape (key_props, x509_props, ...); both are sent in the REST shape.

func init() {
	register("keyvault", newCertCmd)
}

const (
	maxCertFileBytes   = 128 << 10
	maxPolicyBytes     = 64 << 10
	certPollInterval   = 200 * time.Millisecond
	certPollAttempts   = 150
	defaultCertSubject = "CN=CLIGetDefaultPolicy"
)

func newCertCmd(a *app) *cobra.Command {
	cmd := newGroup("certificate", "Manage certificates.")
	cmd.AddCommand(newCertCreateCmd(a), newCertImportCmd(a), newCertShowCmd(a), newCertListCmd(a, "list", "List certificates in a specified key vault.", "/certificates"),
		newCertListVersionsCmd(a), newCertSetAttributesCmd(a), newCertDownloadCmd(a), newCertDefaultPolicyCmd(a),
		objCallCmd(a, certObject, "delete", "Delete a certificate from a specified key vault (recoverable while soft-deleted).", false, http.MethodDelete, "certificates", ""),
		objCallCmd(a, certObject, "show-deleted", "Get a deleted certificate.", false, http.MethodGet, "deletedcertificates", "", "deletedcertificates"),
		newCertListCmd(a, "list-deleted", "List the deleted certificates in the specified vault.", "/deletedcertificates"),
		objCallCmd(a, certObject, "recover", "Recover a deleted certificate to its latest version.", false, http.MethodPost, "deletedcertificates", "/recover", "deletedcertificates", "certificates"),
		objCallCmd(a, certObject, "purge", "Permanently delete the specified deleted certificate.", false, http.MethodDelete, "deletedcertificates", "", "deletedcertificates", "certificates"),
		newCertBackupCmd(a), newCertRestoreCmd(a), newCertPendingCmd(a))
	return cmd
}

// policyKeys maps az's camelCase policy members to the REST names.
var policyKeys = map[string]string{
	"issuerParameters": "issuer", "certificateType": "cty", "certificateTransparency": "cert_transparency",
	"keyProperties": "key_props", "keyType": "kty", "keySize": "key_size", "reuseKey": "reuse_key", "curve": "crv",
	"secretProperties": "secret_props", "x509CertificateProperties": "x509_props", "subjectAlternativeNames": "sans",
	"dnsNames": "dns_names", "keyUsage": "key_usage", "validityInMonths": "validity_months",
	"lifetimeActions": "lifetime_actions", "actionType": "action_type", "lifetimePercentage": "lifetime_percentage",
	"daysBeforeExpiry": "days_before_expiry",
}

// restPolicy renames az's members to the REST ones and drops nulls.
func restPolicy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			if x == nil || k == "id" {
				continue
			}
			if r, ok := policyKeys[k]; ok {
				k = r
			}
			out[k] = restPolicy(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = restPolicy(x)
		}
		return out
	}
	return v
}

// readPolicy reads --policy: JSON, or @file holding JSON.
func readPolicy(s string) (map[string]any, error) {
	raw := []byte(s)
	if strings.HasPrefix(s, "@") {
		b, err := readFileLimited(strings.TrimPrefix(s, "@"), maxPolicyBytes)
		if err != nil {
			return nil, usageErrorf("argument --policy/-p: %v", err)
		}
		raw = b
	}
	if len(raw) > maxPolicyBytes {
		return nil, usageErrorf("argument --policy/-p: the policy exceeds %d bytes", maxPolicyBytes)
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil || v == nil {
		return nil, usageErrorf("argument --policy/-p: not a JSON object (give JSON or @file)")
	}
	return restPolicy(v).(map[string]any), nil
}

// certBody builds the common part of create, import and set-attributes.
func certBody(cmd *cobra.Command, policy string, tags []string, disabled triBool) (map[string]any, error) {
	body := map[string]any{}
	if policy != "" {
		p, err := readPolicy(policy)
		if err != nil {
			return nil, err
		}
		body["policy"] = p
	}
	if err := fillTags(cmd, certObject, tags, body); err != nil {
		return nil, err
	}
	if disabled.set {
		body["attributes"] = map[string]any{"enabled": !disabled.val}
	}
	return body, nil
}

func newCertCreateCmd(a *app) *cobra.Command {
	var f objFlags
	var policy string
	var tags []string
	var disabled triBool
	var validity int
	cmd := &cobra.Command{
		Use: "create", Short: "Create a Key Vault certificate (self-signed with issuer Self); waits for the operation.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.vault == "" || f.name == "" || policy == "" {
				return usageErrorf("the following arguments are required: --vault-name, --name/-n, --policy/-p")
			}
			body, err := certBody(cmd, policy, tags, disabled)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("validity") {
				if validity < 1 || validity > 1200 {
					return usageErrorf("argument --validity: must be 1 to 1200 months")
				}
				p := body["policy"].(map[string]any)
				x, _ := p["x509_props"].(map[string]any)
				if x == nil {
					x = map[string]any{}
					p["x509_props"] = x
				}
				x["validity_months"] = validity
			}
			it, err := a.item(certObject, &f)
			if err != nil {
				return err
			}
			op, err := a.kv(cmd.Context(), http.MethodPost, kvURL(it.base, "/certificates/"+it.name+"/create", nil), body)
			if err != nil {
				return err
			}
			done, err := a.waitCertOp(cmd.Context(), it, op)
			if err != nil {
				return err
			}
			if !done {
				return a.print(op) // e.g. issuer Unknown: waiting for a merge
			}
			v, err := a.kv(cmd.Context(), http.MethodGet, kvURL(it.base, "/certificates/"+it.name+"/", nil), nil)
			if err != nil {
				return err
			}
			return a.print(withName(v))
		},
	}
	f.bind(cmd, certObject, false, true)
	cmd.Flags().StringVarP(&policy, "policy", "p", "", "JSON encoded policy definition. Use @{file} to load from a file (e.g. 'keyhaven keyvault certificate get-default-policy > policy.json').")
	cmd.Flags().StringArrayVar(&tags, "tags", nil, "Space-separated tags: key[=value] [key[=value] ...].")
	cmd.Flags().Var(&disabled, "disabled", "Create certificate in disabled state.")
	cmd.Flags().Lookup("disabled").NoOptDefVal = "true"
	cmd.Flags().IntVar(&validity, "validity", 0, "Number of months the certificate is valid for. Overrides the value specified with --policy/-p.")
	return cmd
}

// waitCertOp polls the operation until it leaves inProgress; false when it
// is still waiting (an Unknown issuer waits for a merge).
func (a *app) waitCertOp(ctx context.Context, it *kvItem, op any) (bool, error) {
	for i := 0; ; i++ {
		m, _ := op.(map[string]any)
		status, _ := m["status"].(string)
		switch {
		case strings.EqualFold(status, "completed"):
			return true, nil
		case !strings.EqualFold(status, "inProgress"):
			msg := "the certificate operation ended with status " + status
			if e, ok := m["error"].(map[string]any); ok {
				msg += ": " + fmt.Sprint(e["message"])
			}
			return false, &azerr.Error{Message: msg}
		}
		if iss, _ := m["issuer"].(map[string]any); iss != nil && strings.EqualFold(fmt.Sprint(iss["name"]), "Unknown") {
			return false, nil
		}
		if i >= certPollAttempts {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(certPollInterval):
		}
		var err error
		if op, err = a.kv(ctx, http.MethodGet, kvURL(it.base, "/certificates/"+it.name+"/pending", nil), nil); err != nil {
			return false, err
		}
	}
}

func newCertImportCmd(a *app) *cobra.Command {
	var f objFlags
	var file, password, policy string
	var tags []string
	var disabled triBool
	cmd := &cobra.Command{
		Use: "import", Short: "Import a certificate with its private key: a PFX (PKCS #12) or PEM file.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.vault == "" || f.name == "" || file == "" {
				return usageErrorf("the following arguments are required: --vault-name, --name/-n, --file/-f")
			}
			raw, err := readFileLimited(file, maxCertFileBytes)
			if err != nil {
				return usageErrorf("argument --file/-f: %v", err)
			}
			body, err := certBody(cmd, policy, tags, disabled)
			if err != nil {
				return err
			}
			if bytes.Contains(raw, []byte("-----BEGIN")) { // PEM, perhaps with openssl's Bag Attributes
				body["value"] = string(raw)
				p, _ := body["policy"].(map[string]any)
				if p == nil {
					p = map[string]any{}
					body["policy"] = p
				}
				sp, _ := p["secret_props"].(map[string]any)
				if sp == nil {
					p["secret_props"] = map[string]any{"contentType": "application/x-pem-file"}
				}
			} else {
				body["value"] = base64.StdEncoding.EncodeToString(raw)
			}
			if password != "" {
				body["pwd"] = password
			}
			it, err := a.item(certObject, &f)
			if err != nil {
				return err
			}
			v, err := a.kv(cmd.Context(), http.MethodPost, kvURL(it.base, "/certificates/"+it.name+"/import", nil), body)
			if err != nil {
				return err
			}
			return a.print(withName(v))
		},
	}
	f.bind(cmd, certObject, false, true)
	cmd.Flags().StringVarP(&file, "file", "f", "", "PKCS12 file or PEM file containing the certificate and private key.")
	cmd.Flags().StringVar(&password, "password", "", "If the private key in certificate is encrypted, the password used for encryption.")
	cmd.Flags().StringVarP(&policy, "policy", "p", "", "JSON encoded policy definition. Use @{file} to load from a file.")
	cmd.Flags().StringArrayVar(&tags, "tags", nil, "Space-separated tags: key[=value] [key[=value] ...].")
	cmd.Flags().Var(&disabled, "disabled", "Import the certificate in disabled state.")
	cmd.Flags().Lookup("disabled").NoOptDefVal = "true"
	return cmd
}

func newCertShowCmd(a *app) *cobra.Command {
	return objCallCmd(a, certObject, "show", "Get information about a certificate (latest or a version).", true, http.MethodGet, "certificates", "")
}

func (a *app) getCert(ctx context.Context, f *objFlags) (any, error) {
	it, err := a.item(certObject, f)
	if err != nil {
		return nil, err
	}
	// Version "" gives /certificates/{name}/, as the SDKs send.
	return a.kv(ctx, http.MethodGet, kvURL(it.base, "/certificates/"+it.name+"/"+it.version, nil), nil)
}

func newCertListCmd(a *app, use, short, path string) *cobra.Command {
	return vaultListCmd(a, use, short, vaultIDOnlyHelp, path, use == "list")
}

func newCertListVersionsCmd(a *app) *cobra.Command {
	return listVersionsCmd(a, certObject, "List the versions of a certificate.")
}

func newCertSetAttributesCmd(a *app) *cobra.Command {
	var f objFlags
	var policy string
	var tags []string
	var enabled triBool
	cmd := &cobra.Command{
		Use: "set-attributes", Short: "Update a certificate's attributes, tags or policy.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, err := certBody(cmd, policy, tags, triBool{})
			if err != nil {
				return err
			}
			if enabled.set {
				body["attributes"] = map[string]any{"enabled": enabled.val}
			}
			it, err := a.item(certObject, &f)
			if err != nil {
				return err
			}
			v, err := a.kv(cmd.Context(), http.MethodPatch, kvURL(it.base, "/certificates/"+it.name+"/"+it.version, nil), body)
			if err != nil {
				return err
			}
			return a.print(withName(v))
		},
	}
	f.bind(cmd, certObject, true, true)
	cmd.Flags().StringVarP(&policy, "policy", "p", "", "JSON encoded policy definition. Use @{file} to load from a file.")
	cmd.Flags().StringArrayVar(&tags, "tags", nil, "Space-separated tags: key[=value] [key[=value] ...].")
	cmd.Flags().Var(&enabled, "enabled", "Enable the certificate (true or false).")
	return cmd
}

func newCertDownloadCmd(a *app) *cobra.Command {
	var f objFlags
	var file, encoding string
	cmd := &cobra.Command{
		Use: "download", Short: "Download the public portion of a certificate (PEM or DER).", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErrorf("the following arguments are required: --file/-f")
			}
			if err := choice("--encoding/-e", encoding, []string{"PEM", "DER"}); err != nil {
				return err
			}
			if _, err := os.Stat(file); err == nil {
				return usageErrorf("argument --file/-f: file %s already exists", file)
			} else if !errors.Is(err, os.ErrNotExist) {
				return usageErrorf("argument --file/-f: %v", err)
			}
			v, err := a.getCert(cmd.Context(), &f)
			if err != nil {
				return err
			}
			m, _ := v.(map[string]any)
			der, err := base64.StdEncoding.DecodeString(fmt.Sprint(m["cer"]))
			if err != nil || len(der) == 0 {
				return &azerr.Error{Message: "the server returned no certificate"}
			}
			out := der
			if encoding == "PEM" {
				out = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
			}
			return writeLocalFile(file, out, 0o644)
		},
	}
	f.bind(cmd, certObject, true, true)
	cmd.Flags().StringVarP(&file, "file", "f", "", "File to receive the binary certificate contents.")
	cmd.Flags().StringVarP(&encoding, "encoding", "e", "PEM", "Encoding of the certificate: PEM or DER.")
	return cmd
}

// defaultCertPolicy is what az keyvault certificate get-default-policy prints.
func defaultCertPolicy() map[string]any {
	return map[string]any{
		"issuerParameters": map[string]any{"certificateTransparency": nil, "name": "Self"},
		"keyProperties":    map[string]any{"curve": nil, "exportable": true, "keySize": 2048, "keyType": "RSA", "reuseKey": true},
		"lifetimeActions": []any{map[string]any{
			"action": map[string]any{"actionType": "AutoRenew"}, "trigger": map[string]any{"daysBeforeExpiry": 90}}},
		"secretProperties": map[string]any{"contentType": "application/x-pkcs12"},
		"x509CertificateProperties": map[string]any{
			"keyUsage": []any{"cRLSign", "dataEncipherment", "digitalSignature", "keyEncipherment", "keyAgreement", "keyCertSign"},
			"subject":  defaultCertSubject, "validityInMonths": 12,
		},
	}
}

func newCertDefaultPolicyCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use: "get-default-policy", Short: "Get the default policy for self-signed certificates (keyhaven does not renew automatically).", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.print(defaultCertPolicy())
		},
	}
}

func newCertBackupCmd(a *app) *cobra.Command {
	return backupCmd(a, certObject, "Back up the specified certificate (all versions, key and secret) to a file.")
}

func newCertRestoreCmd(a *app) *cobra.Command {
	return restoreCmd(a, certObject, "Restore a backed up certificate to a vault.")
}

// newCertPendingCmd is az keyvault certificate pending show|delete.
func newCertPendingCmd(a *app) *cobra.Command {
	cmd := newGroup("pending", "Manage pending certificate creation operations.")
	cmd.AddCommand(
		objCallCmd(a, certObject, "show", "Get the status of a certificate's creation operation.", false, http.MethodGet, "certificates", "/pending"),
		objCallCmd(a, certObject, "delete", "Delete a certificate's creation operation.", false, http.MethodDelete, "certificates", "/pending"))
	return cmd
}
