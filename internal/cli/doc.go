// Package cli implements keyhaven's az-shaped command line client.
//
// The CLI is purely an HTTPS client of a keyhaven server: it speaks the same
// public Azure REST shapes the server exposes (ARM control plane, Key Vault
// data plane, the OAuth2 token endpoint and the Graph-like /v1.0 API) and
// never imports server-side packages. It owns:
//
//   - the root command, global flags (--output, --query, --debug, ...) and
//     az-style output formatting (json, jsonc, table, tsv, yaml, none);
//   - the per-user config file ($KEYHAVEN_CONFIG_DIR/config.json, default
//     ~/.keyhaven/config.json) holding the server endpoints, the login and a
//     per-audience access-token cache;
//   - the HTTP client: trust of the configured CA, dialling vault hosts
//     (*.vault.localhost does not resolve) to the server, client request ids,
//     429 retries and ARM long-running-operation polling;
//   - one file per command noun (group, keyvault, keyvault secret, identity,
//     role, ad, lock, resource, account, login/logout).
//
// The serve and admin commands belong to other packages and are attached by
// main through NewRoot's extra argument.
package cli
