package cli

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

const (
	maxSecretBytes = 25 * 1024 // Key Vault's limit on a secret value
	maxBackupBytes = 1 << 20
	maxResultsPage = 25 // Key Vault's maxresults ceiling
)

// secretFlags are the addressing flags of the secret commands.
type secretFlags struct {
	vault, name, version, id string
}

func (f *secretFlags) bind(c *cobra.Command, withVersion, withID bool) {
	c.Flags().StringVar(&f.vault, "vault-name", "", "Name of the Key Vault.")
	c.Flags().StringVarP(&f.name, "name", "n", "", "Name of the secret.")
	if withVersion {
		c.Flags().StringVarP(&f.version, "version", "v", "", "The secret version. If omitted, uses the latest version.")
	}
	if withID {
		c.Flags().StringVar(&f.id, "id", "", "Id of the secret. If specified all other 'Id' arguments should be omitted.")
	}
}

// item resolves the flags to a secret; collections are the id path
// collections accepted for --id (secrets, deletedsecrets).
func (a *app) secretItem(f *secretFlags, collections ...string) (*kvItem, error) {
	if f.id != "" {
		if f.vault != "" || f.name != "" || f.version != "" {
			return nil, usageErrorf("usage error: --id cannot be combined with --vault-name, --name or --version")
		}
		it, _, err := parseObjectID(f.id, collections...)
		if err != nil {
			return nil, err
		}
		if err := a.checkVaultHost(it.base); err != nil {
			return nil, err
		}
		return it, nil
	}
	if f.vault == "" || f.name == "" {
		return nil, usageErrorf("usage error: --id | --vault-name VAULT --name NAME [--version VERSION]")
	}
	if !objectNameRE.MatchString(f.name) {
		return nil, usageErrorf("argument --name/-n: invalid secret name %q (1-127 letters, digits and hyphens)", f.name)
	}
	if !versionNameRE.MatchString(f.version) {
		return nil, usageErrorf("argument --version/-v: invalid version %q", f.version)
	}
	base, err := a.vaultURL(f.vault)
	if err != nil {
		return nil, err
	}
	return &kvItem{base: base, name: f.name, version: f.version}, nil
}

// listBase resolves --vault-name or a vault URL in --id.
func (a *app) listBase(vault, id string) (string, error) {
	switch {
	case id != "" && vault != "":
		return "", usageErrorf("usage error: --id cannot be combined with --vault-name")
	case id != "":
		base, err := parseVaultID(id)
		if err != nil {
			return "", err
		}
		return base, a.checkVaultHost(base)
	case vault == "":
		return "", usageErrorf("the following arguments are required: --vault-name")
	}
	return a.vaultURL(vault)
}

func checkMaxResults(n int) error {
	if n < 0 || n > 1<<20 {
		return usageErrorf("argument --maxresults: must be a positive number")
	}
	return nil
}

// pageQuery asks for pages no bigger than the caller's limit.
func pageQuery(max int) url.Values {
	if max > 0 && max < maxResultsPage {
		return url.Values{"maxresults": {strconv.Itoa(max)}}
	}
	return url.Values{"maxresults": {strconv.Itoa(maxResultsPage)}}
}

// encodeFileValue turns file bytes into a secret value with az's --encoding.
func encodeFileValue(b []byte, encoding string) (string, error) {
	switch encoding {
	case "utf-8":
		if !utf8.Valid(b) {
			return "", usageErrorf("argument --file: the file is not valid UTF-8; use --encoding base64")
		}
		return string(b), nil
	case "ascii":
		for _, c := range b {
			if c > 127 {
				return "", usageErrorf("argument --file: the file is not ASCII; use --encoding base64")
			}
		}
		return string(b), nil
	case "base64":
		return base64.StdEncoding.EncodeToString(b), nil
	case "hex":
		return hex.EncodeToString(b), nil
	}
	return "", usageErrorf("argument --encoding/-e: invalid choice: %q (choose from 'ascii', 'base64', 'hex', 'utf-8')", encoding)
}

// secretAttrs are the settable attributes shared by set and set-attributes.
type secretAttrs struct {
	contentType, expires, notBefore string
	tags                            []string
}

func (s *secretAttrs) bind(c *cobra.Command) {
	c.Flags().StringVar(&s.contentType, "content-type", "", "Type of the secret value such as a password.")
	c.Flags().StringVar(&s.expires, "expires", "", "Expiration UTC datetime (Y-m-d'T'H:M:S'Z').")
	c.Flags().StringVar(&s.notBefore, "not-before", "", "Key not usable before the provided UTC datetime (Y-m-d'T'H:M:S'Z').")
	c.Flags().StringArrayVar(&s.tags, "tags", nil, "Space-separated tags: key[=value] [key[=value] ...].")
}

// fill writes the given attributes into a request body.
func (s *secretAttrs) fill(c *cobra.Command, body, attrs map[string]any) error {
	if c.Flags().Changed("content-type") {
		if len(s.contentType) > 255 {
			return usageErrorf("argument --content-type: at most 255 characters")
		}
		body["contentType"] = s.contentType
	}
	if s.expires != "" {
		t, err := parseTime("--expires", s.expires)
		if err != nil {
			return err
		}
		attrs["exp"] = t
	}
	if s.notBefore != "" {
		t, err := parseTime("--not-before", s.notBefore)
		if err != nil {
			return err
		}
		attrs["nbf"] = t
	}
	if c.Flags().Changed("tags") {
		t, err := parseTags(s.tags)
		if err != nil {
			return err
		}
		if len(t) > 15 { // Key Vault allows 15 tags per object
			return usageErrorf("argument --tags: at most 15 tags are allowed on a secret")
		}
		body["tags"] = t
	}
	return nil
}

func newSecretCmd(a *app) *cobra.Command {
	cmd := newGroup("secret", "Manage secrets.")
	cmd.AddCommand(newSecretSetCmd(a), newSecretShowCmd(a), newSecretListCmd(a), newSecretListVersionsCmd(a),
		newSecretSetAttributesCmd(a), newSecretDeleteCmd(a), newSecretShowDeletedCmd(a), newSecretListDeletedCmd(a),
		newSecretRecoverCmd(a), newSecretPurgeCmd(a), newSecretBackupCmd(a), newSecretRestoreCmd(a))
	return cmd
}

func newSecretSetCmd(a *app) *cobra.Command {
	var f secretFlags
	var attrs secretAttrs
	var value, file, encoding string
	var disabled triBool
	cmd := &cobra.Command{
		Use: "set", Short: "Create a secret (if one doesn't exist) or update a secret in a KeyVault.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.vault == "" || f.name == "" {
				return usageErrorf("the following arguments are required: --vault-name, --name/-n")
			}
			valueSet := cmd.Flags().Changed("value")
			if valueSet == (file != "") {
				return usageErrorf("usage error: specify exactly one of --value, --file")
			}
			body := map[string]any{}
			attr := map[string]any{}
			if err := attrs.fill(cmd, body, attr); err != nil {
				return err
			}
			if file != "" {
				b, err := readFileLimited(file, maxSecretBytes)
				if err != nil {
					return usageErrorf("argument --file/-f: %v", err)
				}
				if value, err = encodeFileValue(b, encoding); err != nil {
					return err
				}
				tags, _ := body["tags"].(map[string]string)
				if tags == nil {
					tags = map[string]string{}
				}
				tags["file-encoding"] = encoding // as az does, so a download can decode it
				body["tags"] = tags
			} else if cmd.Flags().Changed("encoding") && encoding != "utf-8" {
				return usageErrorf("argument --encoding/-e: only valid with --file")
			}
			if len(value) > maxSecretBytes {
				return usageErrorf("the secret value is larger than %d bytes", maxSecretBytes)
			}
			body["value"] = value
			if disabled.set {
				attr["enabled"] = !disabled.val
			}
			if len(attr) > 0 {
				body["attributes"] = attr
			}
			it, err := a.secretItem(&f)
			if err != nil {
				return err
			}
			v, err := a.kv(cmd.Context(), http.MethodPut, kvURL(it.base, "/secrets/"+it.name, nil), body)
			if err != nil {
				return err
			}
			return a.print(withName(v))
		},
	}
	f.bind(cmd, false, false)
	attrs.bind(cmd)
	cmd.Flags().StringVar(&value, "value", "", "Plain text secret value. Cannot be used with --file.")
	cmd.Flags().StringVarP(&file, "file", "f", "", "Source file for the secret. Use in conjunction with --encoding.")
	cmd.Flags().StringVarP(&encoding, "encoding", "e", "utf-8", "Source file encoding: ascii, base64, hex, utf-8.")
	cmd.Flags().Var(&disabled, "disabled", "Create secret in disabled state.")
	cmd.Flags().Lookup("disabled").NoOptDefVal = "true"
	return cmd
}

// secretGet runs a request against one secret and prints the result.
func (a *app) secretGet(cmd *cobra.Command, f *secretFlags, method, coll, suffix string, collections ...string) error {
	if len(collections) == 0 {
		collections = []string{"secrets"}
	}
	it, err := a.secretItem(f, collections...)
	if err != nil {
		return err
	}
	path := "/" + coll + "/" + it.name + suffix
	if suffix == "" && coll == "secrets" && method == http.MethodGet {
		path += "/" + it.version // version "" gives /secrets/{name}/, as the SDKs send
	}
	v, err := a.kv(cmd.Context(), method, kvURL(it.base, path, nil), nil)
	if err != nil {
		return err
	}
	return a.print(withName(v))
}

// secretCallCmd is a secret verb that is one secretGet call on the secret
// the flags name; withVersion adds --version.
func secretCallCmd(a *app, use, short string, withVersion bool, method, coll, suffix string, collections ...string) *cobra.Command {
	var f secretFlags
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.secretGet(cmd, &f, method, coll, suffix, collections...)
		},
	}
	f.bind(cmd, withVersion, true)
	return cmd
}

func newSecretShowCmd(a *app) *cobra.Command {
	return secretCallCmd(a, "show", "Get a specified secret from a given key vault.", true, http.MethodGet, "secrets", "")
}

func newSecretListCmd(a *app) *cobra.Command {
	var vault, id string
	var max int
	var includeManaged triBool
	cmd := &cobra.Command{
		Use: "list", Short: "List secrets in a specified key vault.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkMaxResults(max); err != nil {
				return err
			}
			base, err := a.listBase(vault, id)
			if err != nil {
				return err
			}
			items, err := a.kvList(cmd.Context(), kvURL(base, "/secrets", pageQuery(max)), 0)
			if err != nil {
				return err
			}
			out := []any{}
			for _, it := range items {
				m, _ := it.(map[string]any)
				if managed, _ := m["managed"].(bool); managed && !(includeManaged.set && includeManaged.val) {
					continue
				}
				out = append(out, withName(it))
				if max > 0 && len(out) >= max {
					break
				}
			}
			return a.print(out)
		},
	}
	cmd.Flags().StringVar(&vault, "vault-name", "", "Name of the Key Vault.")
	cmd.Flags().StringVar(&id, "id", "", "Full URI of the Vault. If specified all other 'Id' arguments should be omitted.")
	cmd.Flags().IntVar(&max, "maxresults", 0, "Maximum number of results to return.")
	cmd.Flags().Var(&includeManaged, "include-managed", "Include managed secrets.")
	cmd.Flags().Lookup("include-managed").NoOptDefVal = "true"
	return cmd
}

func newSecretListVersionsCmd(a *app) *cobra.Command {
	var f secretFlags
	var max int
	cmd := &cobra.Command{
		Use: "list-versions", Short: "List all versions of the specified secret.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkMaxResults(max); err != nil {
				return err
			}
			it, err := a.secretItem(&f, "secrets")
			if err != nil {
				return err
			}
			items, err := a.kvList(cmd.Context(), kvURL(it.base, "/secrets/"+it.name+"/versions", pageQuery(max)), max)
			if err != nil {
				return err
			}
			return a.print(withNames(items))
		},
	}
	f.bind(cmd, false, true)
	cmd.Flags().IntVar(&max, "maxresults", 0, "Maximum number of results to return.")
	return cmd
}

func newSecretSetAttributesCmd(a *app) *cobra.Command {
	var f secretFlags
	var attrs secretAttrs
	var enabled triBool
	cmd := &cobra.Command{
		Use: "set-attributes", Short: "Update a secret's attributes (not its value).", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			it, err := a.secretItem(&f, "secrets")
			if err != nil {
				return err
			}
			body := map[string]any{}
			attr := map[string]any{}
			if err := attrs.fill(cmd, body, attr); err != nil {
				return err
			}
			if enabled.set {
				attr["enabled"] = enabled.val
			}
			if len(attr) > 0 {
				body["attributes"] = attr
			}
			v, err := a.kv(cmd.Context(), http.MethodPatch, kvURL(it.base, "/secrets/"+it.name+"/"+it.version, nil), body)
			if err != nil {
				return err
			}
			return a.print(withName(v))
		},
	}
	f.bind(cmd, true, true)
	attrs.bind(cmd)
	cmd.Flags().Var(&enabled, "enabled", "Enable the secret.")
	cmd.Flags().Lookup("enabled").NoOptDefVal = "true"
	return cmd
}

func newSecretDeleteCmd(a *app) *cobra.Command {
	return secretCallCmd(a, "delete", "Delete all versions of a secret (recoverable while soft-deleted).", false, http.MethodDelete, "secrets", "")
}

func newSecretShowDeletedCmd(a *app) *cobra.Command {
	return secretCallCmd(a, "show-deleted", "Get the specified deleted secret.", false, http.MethodGet, "deletedsecrets", "", "deletedsecrets")
}

func newSecretListDeletedCmd(a *app) *cobra.Command {
	var vault, id string
	var max int
	cmd := &cobra.Command{
		Use: "list-deleted", Short: "Lists deleted secrets for the specified vault.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkMaxResults(max); err != nil {
				return err
			}
			base, err := a.listBase(vault, id)
			if err != nil {
				return err
			}
			items, err := a.kvList(cmd.Context(), kvURL(base, "/deletedsecrets", pageQuery(max)), max)
			if err != nil {
				return err
			}
			return a.print(withNames(items))
		},
	}
	cmd.Flags().StringVar(&vault, "vault-name", "", "Name of the Key Vault.")
	cmd.Flags().StringVar(&id, "id", "", "Full URI of the Vault.")
	cmd.Flags().IntVar(&max, "maxresults", 0, "Maximum number of results to return.")
	return cmd
}

func newSecretRecoverCmd(a *app) *cobra.Command {
	return secretCallCmd(a, "recover", "Recover a deleted secret to its latest version.", false, http.MethodPost, "deletedsecrets", "/recover", "deletedsecrets", "secrets")
}

func newSecretPurgeCmd(a *app) *cobra.Command {
	return secretCallCmd(a, "purge", "Permanently delete the specified deleted secret.", false, http.MethodDelete, "deletedsecrets", "", "deletedsecrets", "secrets")
}

func newSecretBackupCmd(a *app) *cobra.Command {
	var f secretFlags
	var file string
	cmd := &cobra.Command{
		Use: "backup", Short: "Back up the specified secret (all versions) to a file.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErrorf("the following arguments are required: --file/-f")
			}
			it, err := a.secretItem(&f, "secrets")
			if err != nil {
				return err
			}
			v, err := a.kv(cmd.Context(), http.MethodPost, kvURL(it.base, "/secrets/"+it.name+"/backup", nil), nil)
			if err != nil {
				return err
			}
			m, _ := v.(map[string]any)
			s, _ := m["value"].(string)
			blob, err := base64.RawURLEncoding.DecodeString(trimPad(s))
			if err != nil || len(blob) == 0 {
				return &azerr.Error{Message: "the server returned an invalid backup blob"}
			}
			// The blob is sealed by the server but still sensitive: owner-only.
			if err := os.WriteFile(file, blob, 0o600); err != nil {
				return fmt.Errorf("writing %s: %w", file, err)
			}
			return nil
		},
	}
	f.bind(cmd, false, true)
	cmd.Flags().StringVarP(&file, "file", "f", "", "Local file path in which to store secret backup.")
	return cmd
}

func trimPad(s string) string {
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	return s
}

func newSecretRestoreCmd(a *app) *cobra.Command {
	var vault, id, file string
	cmd := &cobra.Command{
		Use: "restore", Short: "Restore a backed up secret to a vault.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErrorf("the following arguments are required: --file/-f")
			}
			base, err := a.listBase(vault, id)
			if err != nil {
				return err
			}
			blob, err := readFileLimited(file, maxBackupBytes)
			if err != nil {
				return usageErrorf("argument --file/-f: %v", err)
			}
			body := map[string]any{"value": base64.RawURLEncoding.EncodeToString(blob)}
			v, err := a.kv(cmd.Context(), http.MethodPost, kvURL(base, "/secrets/restore", nil), body)
			if err != nil {
				return err
			}
			return a.print(withName(v))
		},
	}
	cmd.Flags().StringVar(&vault, "vault-name", "", "Name of the Key Vault.")
	cmd.Flags().StringVar(&id, "id", "", "Full URI of the Vault.")
	cmd.Flags().StringVarP(&file, "file", "f", "", "Local secret backup from which to restore secret.")
	return cmd
}
