package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// The audit API lives on the server's main host, beside ARM, and takes an
// ARM-audience token (see internal/audit Handler).

func init() { register("", newAuditCmd) }

const maxHashValue = 64 << 10

func newAuditCmd(a *app) *cobra.Command {
	cmd := newGroup("audit", "Verify keyhaven's tamper-evident audit log and compute audit HMACs.")
	cmd.AddCommand(newAuditVerifyCmd(a), newAuditHashCmd(a))
	return cmd
}

// auditURL is {server}/audit{path}?{q} and the token audience to send.
func (a *app) auditURL(path string, q url.Values) (string, string, error) {
	base, aud, err := a.armBase()
	if err != nil {
		return "", "", err
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", "", err
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/audit" + path
	u.RawQuery = q.Encode()
	return u.String(), aud, nil
}

// auditCall sends one audit API request and decodes the JSON answer.
func (a *app) auditCall(ctx context.Context, method, path string, q url.Values, body any) (any, error) {
	u, aud, err := a.auditURL(path, q)
	if err != nil {
		return nil, err
	}
	resp, err := a.send(ctx, request{method: method, url: u, body: body, audience: aud})
	if err != nil {
		return nil, err
	}
	return decodeBody(resp.body)
}

// auditTarget resolves --resource-id/--resource, or --vault-name with or
// without -g, to a resource ID ("" when none is given).
type auditTarget struct {
	resource, vault, rg string
}

func (t *auditTarget) bind(c *cobra.Command, resourceFlag string) {
	c.Flags().StringVar(&t.resource, resourceFlag, "", "ID of the resource (e.g. a vault) whose audit events to use.")
	c.Flags().StringVar(&t.vault, "vault-name", "", "Name of the Vault whose audit events to use (found in the subscription when -g is omitted).")
	c.Flags().StringVarP(&t.rg, "resource-group", "g", "", "Resource group of --vault-name.")
}

func (t *auditTarget) resolve(ctx context.Context, a *app, resourceFlag string) (string, error) {
	switch {
	case t.resource != "" && (t.vault != "" || t.rg != ""):
		return "", usageErrorf("usage error: --%s cannot be combined with --vault-name or --resource-group", resourceFlag)
	case t.resource != "":
		r, err := parseResourceID(t.resource)
		if err != nil {
			return "", err
		}
		return r.Raw, nil
	case t.vault != "" && t.rg != "":
		return a.resourcePath(t.rg, "Microsoft.KeyVault", "vaults", t.vault)
	case t.vault != "":
		return a.findVaultByName(ctx, t.vault)
	case t.rg != "":
		return "", usageErrorf("usage error: --resource-group needs --vault-name")
	}
	return "", nil
}

func newAuditVerifyCmd(a *app) *cobra.Command {
	var t auditTarget
	var stream string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit log's hash chains: report removed, edited or reordered events.",
		Long: `Walks the hash chain of a resource's audit stream (or of every stream when no
resource is given) and reports, by stream and sequence number, every event
that was removed, edited or reordered. Exits with status 1 when the log does
not verify.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rid, err := t.resolve(cmd.Context(), a, "resource-id")
			if err != nil {
				return err
			}
			q := url.Values{}
			switch {
			case stream != "" && rid != "":
				return usageErrorf("usage error: --stream cannot be combined with a resource")
			case stream != "":
				if len(stream) > 64 {
					return usageErrorf("argument --stream: invalid stream name")
				}
				q.Set("stream", stream)
			case rid != "":
				q.Set("resourceId", rid)
			}
			rep, err := a.auditCall(cmd.Context(), http.MethodGet, "/verify", q, nil)
			if err != nil {
				return err
			}
			if err := a.print(rep); err != nil {
				return err
			}
			m, _ := rep.(map[string]any)
			if ok, _ := m["ok"].(bool); !ok {
				problems, _ := m["problems"].([]any)
				return &azerr.Error{Message: fmt.Sprintf("The audit log did not verify: %d problem(s) found.", len(problems))}
			}
			return nil
		},
	}
	t.bind(cmd, "resource-id")
	cmd.Flags().StringVar(&stream, "stream", "", "Name of one stream to verify (as 'audit verify' reports them; 'global' for requests that name no resource).")
	return cmd
}

func newAuditHashCmd(a *app) *cobra.Command {
	var value string
	cmd := &cobra.Command{
		Use:   "hash",
		Short: "Compute the audit HMAC of a value, to compare with the HMACs in audit events.",
		Long: `Asks the server for the HMAC of a value under this deployment's audit key
("hmac-sha256:..."), the form in which audit events identify values. Use
--value @FILE to read the value from a file instead of the command line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("value") {
				return usageErrorf("the following arguments are required: --value")
			}
			v := value
			if strings.HasPrefix(v, "@") {
				b, err := readFileLimited(v[1:], maxHashValue)
				if err != nil {
					return usageErrorf("argument --value: %v", err)
				}
				v = string(b)
			}
			if len(v) > maxHashValue {
				return usageErrorf("argument --value: longer than %d bytes", maxHashValue)
			}
			out, err := a.auditCall(cmd.Context(), http.MethodPost, "/hash", nil, map[string]string{"value": v})
			if err != nil {
				return err
			}
			return a.print(out)
		},
	}
	cmd.Flags().StringVar(&value, "value", "", "The value to hash, or @FILE.")
	return cmd
}
