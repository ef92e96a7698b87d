package cli

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"

	"github.com/spf13/cobra"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// kvObject is one kind of vault object (secret, key, certificate) for the
// commands and verbs the three share: addressing flags, --id parsing and
// delete/recover/purge/show-deleted/list-versions/backup/restore.
type kvObject struct {
	noun       string // in help and errors: "secret"
	coll       string // the collection: "secrets"
	raw        bool   // print the server's object as sent (keys); otherwise add az's "name"
	restoreMax int64  // the largest backup file restore reads
	// nameFirst rejects an invalid --name before asking for --vault-name
	// (keys and certificates); secrets ask for the missing flags first.
	nameFirst bool
}

var (
	secretObject = &kvObject{noun: "secret", coll: "secrets", restoreMax: maxBackupBytes}
	keyObject    = &kvObject{noun: "key", coll: "keys", raw: true, restoreMax: 8 * maxBackupBytes, nameFirst: true}
	certObject   = &kvObject{noun: "certificate", coll: "certificates", restoreMax: 8 * maxBackupBytes, nameFirst: true}
)

// out is what the commands print for one object from the server.
func (o *kvObject) out(v any) any {
	if o.raw {
		return v
	}
	return withName(v)
}

// objFlags are the addressing flags of one object: --vault-name/--name
// [/--version] or --id.
type objFlags struct {
	vault, name, version, id string
}

func (f *objFlags) bind(c *cobra.Command, o *kvObject, withVersion, withID bool) {
	c.Flags().StringVar(&f.vault, "vault-name", "", "Name of the Key Vault.")
	c.Flags().StringVarP(&f.name, "name", "n", "", "Name of the "+o.noun+".")
	if withVersion {
		c.Flags().StringVarP(&f.version, "version", "v", "", "The "+o.noun+" version. If omitted, uses the latest version.")
	}
	if withID {
		c.Flags().StringVar(&f.id, "id", "", "Id of the "+o.noun+". If specified all other 'Id' arguments should be omitted.")
	}
}

// item resolves the flags to an object; collections are the id path
// collections accepted for --id (default: the object's own).
func (a *app) item(o *kvObject, f *objFlags, collections ...string) (*kvItem, error) {
	invalidName := func() error {
		return usageErrorf("argument --name/-n: invalid %s name %q (1-127 letters, digits and hyphens)", o.noun, f.name)
	}
	if o.nameFirst && f.id == "" && f.name != "" && !objectNameRE.MatchString(f.name) {
		return nil, invalidName()
	}
	if len(collections) == 0 {
		collections = []string{o.coll}
	}
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
		return nil, invalidName()
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

// objCall runs one request against the object the flags name and prints
// the result. A GET of the object itself carries the version; version ""
// gives /{coll}/{name}/, as the SDKs send.
func (a *app) objCall(cmd *cobra.Command, o *kvObject, f *objFlags, method, coll, suffix string, collections ...string) error {
	it, err := a.item(o, f, collections...)
	if err != nil {
		return err
	}
	path := "/" + coll + "/" + it.name + suffix
	if suffix == "" && coll == o.coll && method == http.MethodGet {
		path += "/" + it.version
	}
	v, err := a.kv(cmd.Context(), method, kvURL(it.base, path, nil), nil)
	if err != nil {
		return err
	}
	return a.print(o.out(v))
}

// objCallCmd is a verb that is one objCall on the object the flags name;
// withVersion adds --version.
func objCallCmd(a *app, o *kvObject, use, short string, withVersion bool, method, coll, suffix string, collections ...string) *cobra.Command {
	var f objFlags
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.objCall(cmd, o, &f, method, coll, suffix, collections...)
		},
	}
	f.bind(cmd, o, withVersion, true)
	return cmd
}

// setAttributesCmd is set-attributes of secrets and keys: what fill writes
// (from the flags bind adds) and --enabled go to the version the flags name.
func setAttributesCmd(a *app, o *kvObject, short string, bind func(*cobra.Command), fill func(cmd *cobra.Command, body, attr map[string]any) error) *cobra.Command {
	var f objFlags
	var enabled triBool
	cmd := &cobra.Command{
		Use: "set-attributes", Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			it, err := a.item(o, &f)
			if err != nil {
				return err
			}
			body := map[string]any{}
			attr := map[string]any{}
			if err := fill(cmd, body, attr); err != nil {
				return err
			}
			if enabled.set {
				attr["enabled"] = enabled.val
			}
			if len(attr) > 0 {
				body["attributes"] = attr
			}
			v, err := a.kv(cmd.Context(), http.MethodPatch, kvURL(it.base, "/"+o.coll+"/"+it.name+"/"+it.version, nil), body)
			if err != nil {
				return err
			}
			return a.print(o.out(v))
		},
	}
	f.bind(cmd, o, true, true)
	bind(cmd)
	cmd.Flags().Var(&enabled, "enabled", "Enable the "+o.noun+".")
	cmd.Flags().Lookup("enabled").NoOptDefVal = "true"
	return cmd
}

// listFlags address a vault collection: --vault-name or a vault URL in
// --id, and --maxresults.
type listFlags struct {
	vault, id string
	max       int
}

func (v *listFlags) bind(c *cobra.Command, idHelp string) {
	c.Flags().StringVar(&v.vault, "vault-name", "", "Name of the Key Vault.")
	c.Flags().StringVar(&v.id, "id", "", idHelp)
	c.Flags().IntVar(&v.max, "maxresults", 0, "Maximum number of results to return.")
}

// base checks --maxresults and resolves the vault.
func (a *app) vaultBase(v *listFlags) (string, error) {
	if err := checkMaxResults(v.max); err != nil {
		return "", err
	}
	return a.listBase(v.vault, v.id)
}

const (
	vaultIDHelp     = "Full URI of the Vault."
	vaultIDOnlyHelp = "Full URI of the Vault. If specified all other 'Id' arguments should be omitted."
)

// vaultListCmd lists a vault collection page by page up to --maxresults;
// withPending adds certificates' --include-pending.
func vaultListCmd(a *app, use, short, idHelp, path string, withPending bool) *cobra.Command {
	var vf listFlags
	var includePending triBool
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			base, err := a.vaultBase(&vf)
			if err != nil {
				return err
			}
			q := pageQuery(vf.max)
			if includePending.set {
				q.Set("includePending", fmt.Sprint(includePending.val))
			}
			items, err := a.kvList(cmd.Context(), kvURL(base, path, q), vf.max)
			if err != nil {
				return err
			}
			return a.print(withNames(items))
		},
	}
	vf.bind(cmd, idHelp)
	if withPending {
		cmd.Flags().Var(&includePending, "include-pending", "Specifies whether to include certificates which are not completely provisioned.")
		cmd.Flags().Lookup("include-pending").NoOptDefVal = "true"
	}
	return cmd
}

// managedListCmd lists a vault collection whole and leaves out managed
// objects unless --include-managed (withManaged) asks for them.
func managedListCmd(a *app, o *kvObject, use, short, path string, withManaged bool) *cobra.Command {
	var vf listFlags
	var includeManaged triBool
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			base, err := a.vaultBase(&vf)
			if err != nil {
				return err
			}
			items, err := a.kvList(cmd.Context(), kvURL(base, path, pageQuery(vf.max)), 0)
			if err != nil {
				return err
			}
			out := []any{}
			for _, it := range items {
				m, _ := it.(map[string]any)
				if managed, _ := m["managed"].(bool); managed && withManaged && !(includeManaged.set && includeManaged.val) {
					continue
				}
				out = append(out, withName(it))
				if vf.max > 0 && len(out) >= vf.max {
					break
				}
			}
			return a.print(out)
		},
	}
	vf.bind(cmd, vaultIDOnlyHelp)
	if withManaged {
		cmd.Flags().Var(&includeManaged, "include-managed", "Include managed "+o.noun+"s.")
		cmd.Flags().Lookup("include-managed").NoOptDefVal = "true"
	}
	return cmd
}

// listVersionsCmd lists the versions of one object.
func listVersionsCmd(a *app, o *kvObject, short string) *cobra.Command {
	var f objFlags
	var max int
	cmd := &cobra.Command{
		Use: "list-versions", Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkMaxResults(max); err != nil {
				return err
			}
			it, err := a.item(o, &f)
			if err != nil {
				return err
			}
			items, err := a.kvList(cmd.Context(), kvURL(it.base, "/"+o.coll+"/"+it.name+"/versions", pageQuery(max)), max)
			if err != nil {
				return err
			}
			return a.print(withNames(items))
		},
	}
	f.bind(cmd, o, false, true)
	cmd.Flags().IntVar(&max, "maxresults", 0, "Maximum number of results to return.")
	return cmd
}

// backupCmd writes an object's backup blob (all versions) to --file.
func backupCmd(a *app, o *kvObject, short string) *cobra.Command {
	var f objFlags
	var file string
	cmd := &cobra.Command{
		Use: "backup", Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErrorf("the following arguments are required: --file/-f")
			}
			it, err := a.item(o, &f)
			if err != nil {
				return err
			}
			v, err := a.kv(cmd.Context(), http.MethodPost, kvURL(it.base, "/"+o.coll+"/"+it.name+"/backup", nil), nil)
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
			return writeLocalFile(file, blob, 0o600)
		},
	}
	f.bind(cmd, o, false, true)
	cmd.Flags().StringVarP(&file, "file", "f", "", "Local file path in which to store "+o.noun+" backup.")
	return cmd
}

// restoreCmd sends a backup blob from --file to a vault.
func restoreCmd(a *app, o *kvObject, short string) *cobra.Command {
	var vault, id, file string
	cmd := &cobra.Command{
		Use: "restore", Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErrorf("the following arguments are required: --file/-f")
			}
			base, err := a.listBase(vault, id)
			if err != nil {
				return err
			}
			blob, err := readFileLimited(file, o.restoreMax)
			if err != nil {
				return usageErrorf("argument --file/-f: %v", err)
			}
			body := map[string]any{"value": base64.RawURLEncoding.EncodeToString(blob)}
			v, err := a.kv(cmd.Context(), http.MethodPost, kvURL(base, "/"+o.coll+"/restore", nil), body)
			if err != nil {
				return err
			}
			return a.print(o.out(v))
		},
	}
	cmd.Flags().StringVar(&vault, "vault-name", "", "Name of the Key Vault.")
	cmd.Flags().StringVar(&id, "id", "", vaultIDHelp)
	cmd.Flags().StringVarP(&file, "file", "f", "", "Local "+o.noun+" backup from which to restore "+o.noun+".")
	return cmd
}

// writeLocalFile writes a file the user asked for.
func writeLocalFile(path string, b []byte, perm os.FileMode) error {
	if err := os.WriteFile(path, b, perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func trimPad(s string) string {
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	return s
}
