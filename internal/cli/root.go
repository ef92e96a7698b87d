package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// app carries the global flags and the injectable pieces (time, sleeping,
// password prompt) one command invocation needs.
type app struct {
	output       string
	query        string
	onlyErrors   bool
	verbose      bool
	debug        bool
	subscription string

	stdout io.Writer
	stderr io.Writer
	stdin  io.Reader

	now          func() time.Time
	sleep        func(ctx context.Context, d time.Duration) error
	readPassword func(prompt string) (string, error)
	getenv       func(string) string
	pollInterval time.Duration // ARM LRO poll interval when the server sends no hint

	cfg    *Config      // loaded lazily
	client *http.Client // built lazily from cfg
}

func newApp() *app {
	return &app{
		now:          time.Now,
		sleep:        sleepCtx,
		readPassword: readPasswordTTY,
		getenv:       os.Getenv,
		pollInterval: 2 * time.Second,
		stdout:       os.Stdout,
		stderr:       os.Stderr,
		stdin:        os.Stdin,
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// NewRoot returns the root `keyhaven` command with every client command
// attached; extra commands (serve, admin) are added as given.
func NewRoot(extra ...*cobra.Command) *cobra.Command {
	return newRootWith(newApp(), extra...)
}

func newRootWith(a *app, extra ...*cobra.Command) *cobra.Command {
	root := &cobra.Command{
		Use:   "keyhaven",
		Short: "keyhaven: a self-hosted Azure Key Vault, driven with az-shaped commands",
		Long: `keyhaven is a self-hosted Azure Key Vault with an Entra-like identity service,
RBAC and an ARM control plane. The client commands below mirror the Azure CLI (az):
log in with 'keyhaven login --server https://localhost:8443 --username U', then use
'keyhaven group', 'keyhaven keyvault', 'keyhaven keyvault secret' and so on.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			a.stdout = cmd.OutOrStdout()
			a.stderr = cmd.ErrOrStderr()
			a.stdin = cmd.InOrStdin()
			switch a.output {
			case "json", "jsonc", "table", "tsv", "yaml", "yamlc", "none":
			default:
				return usageErrorf("argument --output/-o: invalid choice: %q (choose from 'json', 'jsonc', 'none', 'table', 'tsv', 'yaml', 'yamlc')", a.output)
			}
			if a.query != "" {
				if _, err := compileQuery(a.query); err != nil {
					return usageErrorf("argument --query: invalid jmespath_type value: %q", a.query)
				}
			}
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&a.output, "output", "o", "json", "Output format: json, jsonc, table, tsv, yaml, yamlc, none.")
	pf.StringVar(&a.query, "query", "", "JMESPath query string. See http://jmespath.org/ for more information and examples.")
	pf.BoolVar(&a.onlyErrors, "only-show-errors", false, "Only show errors, suppressing warnings.")
	pf.BoolVar(&a.verbose, "verbose", false, "Increase logging verbosity.")
	pf.BoolVar(&a.debug, "debug", false, "Increase logging verbosity to show all debug logs (never tokens or secret values).")
	pf.StringVar(&a.subscription, "subscription", "", "Name or ID of subscription. You can configure the default subscription using `keyhaven account set -s NAME_OR_ID`.")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err.Error()} })

	root.AddCommand(
		newLoginCmd(a), newLogoutCmd(a), newAccountCmd(a),
		newGroupCmd(a), newKeyVaultCmd(a), newIdentityCmd(a), newRoleCmd(a),
		newADCmd(a), newLockCmd(a), newResourceCmd(a),
	)
	for _, r := range registered {
		parent := root
		for _, name := range strings.Fields(r.parent) {
			parent = childGroup(parent, name)
		}
		parent.AddCommand(r.build(a))
	}
	for _, c := range extra {
		if c != nil {
			root.AddCommand(c)
		}
	}
	return root
}

// registered are commands that files add with register, so that a new noun
// (or a verb under a noun several files share, such as monitor) lives in its
// own file without editing this one.
var registered []registration

type registration struct {
	parent string // space-separated path under the root, "" for the root
	build  func(*app) *cobra.Command
}

// register adds the command built by build under parent (e.g. "monitor" or
// "keyvault secret"); missing parent groups are created. Call it from init.
func register(parent string, build func(*app) *cobra.Command) {
	registered = append(registered, registration{parent: parent, build: build})
}

// childGroup returns parent's subcommand name, creating a bare group.
func childGroup(parent *cobra.Command, name string) *cobra.Command {
	for _, c := range parent.Commands() {
		if c.Name() == name {
			return c
		}
	}
	g := &cobra.Command{Use: name, Short: "Manage " + name + ".", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	parent.AddCommand(g)
	return g
}

// usageError is a command-line mistake; Execute maps it to exit code 2 as
// az (argparse) does.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// cobra reports these through plain errors; they are usage errors too.
var cobraUsagePrefixes = []string{
	"unknown command", "unknown flag", "unknown shorthand flag", "required flag(s)",
	"accepts ", "requires at least", "requires at most", "invalid argument",
	"flag needs an argument", "if any flags in the group", "none of the others",
	"at least one of the flags",
}

// Execute runs root with the process arguments and returns the exit code:
// 0 on success, 1 for errors, 2 for usage errors.
func Execute(root *cobra.Command) int {
	return execute(root, os.Args[1:])
}

func execute(root *cobra.Command, args []string) int {
	root.SetArgs(expandNargs(args))
	start := time.Now()
	cmd, err := root.ExecuteC()
	if cmd == nil {
		cmd = root
	}
	stderr := cmd.ErrOrStderr()
	if verbose, _ := root.PersistentFlags().GetBool("verbose"); verbose && err == nil {
		fmt.Fprintf(stderr, "INFO: Command ran in %.3f seconds\n", time.Since(start).Seconds())
	}
	if err == nil {
		return 0
	}
	code, msg := classify(err)
	fmt.Fprintln(stderr, "ERROR: "+msg)
	if code == 2 && cmd != nil {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// classify maps an error to its exit code and the message az would print.
func classify(err error) (int, string) {
	var ue usageError
	if errors.As(err, &ue) {
		return 2, ue.msg
	}
	var ae *azerr.Error
	if errors.As(err, &ae) {
		if ae.Code == "" {
			return 1, ae.Message
		}
		msg := "(" + ae.Code + ") " + ae.Message
		if ae.Inner != "" {
			// As azure-core prints it, so scripts that grep for the inner
			// code (ForbiddenByFirewall, ForbiddenByRbac) work alike.
			msg += "\nInner error: {\n    \"code\": \"" + ae.Inner + "\"\n}"
		}
		return 1, msg
	}
	msg := err.Error()
	for _, p := range cobraUsagePrefixes {
		if strings.HasPrefix(msg, p) {
			return 2, msg
		}
	}
	return 1, msg
}

// multiValueFlags take several space-separated values like az's nargs='+'
// arguments (`--tags a=b c=d`); expandNargs rewrites them into repeated flags
// cobra understands (`--tags a=b --tags c=d`).
var multiValueFlags = map[string]bool{
	"--tags": true, "--ids": true, "--scopes": true, "--secret-permissions": true,
	"--key-permissions": true, "--certificate-permissions": true, "--storage-permissions": true,
	"--assignable-scopes": true,
}

// triStateFlags take an optional true/false value as the next token
// (`--disabled true`); expandNargs joins it as `--disabled=true`.
var triStateFlags = map[string]bool{
	"--enable-rbac-authorization": true, "--enable-purge-protection": true, "--disabled": true,
	"--enabled": true, "--include-managed": true, "--no-self-perms": true, "--custom-role-only": true,
	"--allow-no-subscriptions": true,
}

func expandNargs(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			return append(out, args[i:]...)
		}
		if triStateFlags[arg] && i+1 < len(args) {
			if _, err := parseBool("", args[i+1]); err == nil {
				out = append(out, arg+"="+args[i+1])
				i++
				continue
			}
		}
		name := arg
		if j := strings.IndexByte(arg, '='); j > 0 && strings.HasPrefix(arg, "--") {
			name = arg[:j]
		}
		if !multiValueFlags[name] {
			out = append(out, arg)
			continue
		}
		out = append(out, arg)
		if name == arg { // value(s) follow as separate tokens
			if i+1 < len(args) && args[i+1] != "--" {
				out = append(out, args[i+1])
				i++
			}
		}
		for i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			out = append(out, name, args[i+1])
			i++
		}
	}
	return out
}

// warn prints an az-style warning unless --only-show-errors is set.
func (a *app) warn(format string, args ...any) {
	if a.onlyErrors {
		return
	}
	fmt.Fprintf(a.stderr, "WARNING: "+format+"\n", args...)
}

// debugf prints a debug line with --debug. Callers never pass secrets.
func (a *app) debugf(format string, args ...any) {
	if a.debug {
		fmt.Fprintf(a.stderr, "DEBUG: "+format+"\n", args...)
	}
}

// newGroup returns a command group. Run bare it prints its help; with an
// unknown subcommand it is a usage error, as in az.
func newGroup(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("'%s' is misspelled or not recognized by the system.", args[0])
			}
			return cmd.Help()
		},
	}
}
