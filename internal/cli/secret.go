package cli

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"

	"github.com/spf13/cobra"
)

const (
	maxSecretBytes = 25 * 1024 // Key Vault's limit on a secret value
	maxBackupBytes = 1 << 20
	maxResultsPage = 25 // Key Vault's maxresults ceiling
)

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
	if err := fillWindow(s.expires, s.notBefore, attrs); err != nil {
		return err
	}
	return fillTags(c, secretObject, s.tags, body)
}

// fillWindow puts --expires and --not-before into attrs.
func fillWindow(expires, notBefore string, attrs map[string]any) error {
	if expires != "" {
		t, err := parseTime("--expires", expires)
		if err != nil {
			return err
		}
		attrs["exp"] = t
	}
	if notBefore != "" {
		t, err := parseTime("--not-before", notBefore)
		if err != nil {
			return err
		}
		attrs["nbf"] = t
	}
	return nil
}

// fillTags puts --tags, when given, into body.
func fillTags(c *cobra.Command, o *kvObject, tags []string, body map[string]any) error {
	if !c.Flags().Changed("tags") {
		return nil
	}
	t, err := parseTags(tags)
	if err != nil {
		return err
	}
	if len(t) > 15 { // Key Vault allows 15 tags per object
		return usageErrorf("argument --tags: at most 15 tags are allowed on a %s", o.noun)
	}
	body["tags"] = t
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
	var f objFlags
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
			it, err := a.item(secretObject, &f)
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
	f.bind(cmd, secretObject, false, false)
	attrs.bind(cmd)
	cmd.Flags().StringVar(&value, "value", "", "Plain text secret value. Cannot be used with --file.")
	cmd.Flags().StringVarP(&file, "file", "f", "", "Source file for the secret. Use in conjunction with --encoding.")
	cmd.Flags().StringVarP(&encoding, "encoding", "e", "utf-8", "Source file encoding: ascii, base64, hex, utf-8.")
	cmd.Flags().Var(&disabled, "disabled", "Create secret in disabled state.")
	cmd.Flags().Lookup("disabled").NoOptDefVal = "true"
	return cmd
}

func newSecretShowCmd(a *app) *cobra.Command {
	return objCallCmd(a, secretObject, "show", "Get a specified secret from a given key vault.", true, http.MethodGet, "secrets", "")
}

func newSecretListCmd(a *app) *cobra.Command {
	return managedListCmd(a, secretObject, "list", "List secrets in a specified key vault.", "/secrets", true)
}

func newSecretListVersionsCmd(a *app) *cobra.Command {
	return listVersionsCmd(a, secretObject, "List all versions of the specified secret.")
}

func newSecretSetAttributesCmd(a *app) *cobra.Command {
	var attrs secretAttrs
	return setAttributesCmd(a, secretObject, "Update a secret's attributes (not its value).", attrs.bind,
		func(cmd *cobra.Command, body, attr map[string]any) error { return attrs.fill(cmd, body, attr) })
}

func newSecretDeleteCmd(a *app) *cobra.Command {
	return objCallCmd(a, secretObject, "delete", "Delete all versions of a secret (recoverable while soft-deleted).", false, http.MethodDelete, "secrets", "")
}

func newSecretShowDeletedCmd(a *app) *cobra.Command {
	return objCallCmd(a, secretObject, "show-deleted", "Get the specified deleted secret.", false, http.MethodGet, "deletedsecrets", "", "deletedsecrets")
}

func newSecretListDeletedCmd(a *app) *cobra.Command {
	return vaultListCmd(a, "list-deleted", "Lists deleted secrets for the specified vault.", vaultIDHelp, "/deletedsecrets", false)
}

func newSecretRecoverCmd(a *app) *cobra.Command {
	return objCallCmd(a, secretObject, "recover", "Recover a deleted secret to its latest version.", false, http.MethodPost, "deletedsecrets", "/recover", "deletedsecrets", "secrets")
}

func newSecretPurgeCmd(a *app) *cobra.Command {
	return objCallCmd(a, secretObject, "purge", "Permanently delete the specified deleted secret.", false, http.MethodDelete, "deletedsecrets", "", "deletedsecrets", "secrets")
}

func newSecretBackupCmd(a *app) *cobra.Command {
	return backupCmd(a, secretObject, "Back up the specified secret (all versions) to a file.")
}

func newSecretRestoreCmd(a *app) *cobra.Command {
	return restoreCmd(a, secretObject, "Restore a backed up secret to a vault.")
}
