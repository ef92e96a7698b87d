package cli

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

const (
	storageAccountType = "Microsoft.Storage/storageAccounts"
	apiStorage         = "2023-01-01"
	// maxDownloadChunks bounds a blob download loop (the server returns at
	// most 4 MiB per request; this allows blobs of several GiB).
	maxDownloadChunks = 4096
)

func init() {
	apiVersionByType["microsoft.storage/storageaccounts"] = apiStorage
	register("", newStorageCmd)
}

func newStorageCmd(a *app) *cobra.Command {
	cmd := newGroup("storage", "Manage storage accounts and read their blobs (the audit log sink).")
	cmd.AddCommand(newStorageAccountCmd(a), newStorageBlobCmd(a))
	return cmd
}

func newStorageAccountCmd(a *app) *cobra.Command {
	cmd := newGroup("account", "Manage storage accounts.")
	var name, rg, location, sku, kind string
	var ids, tags, userIDs []string
	var yes, assignIdentity bool
	var identityType string
	target := func(c *cobra.Command, withIDs bool) {
		c.Flags().StringVarP(&name, "name", "n", "", "The storage account name.")
		c.Flags().StringVarP(&rg, "resource-group", "g", "", "Name of the resource group.")
		if withIDs {
			c.Flags().StringArrayVar(&ids, "ids", nil, "One or more resource IDs (space-delimited).")
		}
	}

	create := &cobra.Command{
		Use: "create", Short: "Create a storage account.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || rg == "" {
				return usageErrorf("the following arguments are required: --name/-n, --resource-group/-g")
			}
			p, err := a.resourcePath(rg, "Microsoft.Storage", "storageAccounts", name)
			if err != nil {
				return err
			}
			if location == "" {
				if location, err = a.groupLocation(cmd.Context(), rg); err != nil {
					return err
				}
			}
			body := map[string]any{"location": location, "sku": map[string]any{"name": sku}, "kind": kind}
			if cmd.Flags().Changed("tags") {
				t, err := parseTags(tags)
				if err != nil {
					return err
				}
				body["tags"] = t
			}
			if ident, err := storageIdentity(assignIdentity, identityType, userIDs); err != nil {
				return err
			} else if ident != nil {
				body["identity"] = ident
			}
			v, err := a.arm(cmd.Context(), armCall{method: http.MethodPut, path: p, apiVersion: apiStorage, body: body})
			if err != nil {
				return err
			}
			return a.print(v)
		},
	}
	target(create, false)
	create.Flags().StringVarP(&location, "location", "l", "", "Location (default: the resource group's).")
	create.Flags().StringVar(&sku, "sku", "Standard_RAGRS", "The storage account SKU: Standard_LRS, Standard_ZRS, Standard_GRS, Standard_RAGRS, Premium_LRS, ...")
	create.Flags().StringVar(&kind, "kind", "StorageV2", "Indicate the type of storage account.")
	create.Flags().StringArrayVar(&tags, "tags", nil, "Space-separated tags: key[=value] [key[=value] ...].")
	create.Flags().BoolVar(&assignIdentity, "assign-identity", false, "Generate and assign a system-assigned identity for this storage account.")
	create.Flags().StringVar(&identityType, "identity-type", "", "The identity type: None, SystemAssigned, UserAssigned, 'SystemAssigned,UserAssigned'.")
	create.Flags().StringArrayVar(&userIDs, "user-identity-id", nil, "The resource ID of a user-assigned identity to assign (needs Managed Identity Operator on it).")

	show := &cobra.Command{
		Use: "show", Short: "Show storage account properties.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			paths, err := a.targets(ids, rg, name, storageAccountType)
			if err != nil {
				return err
			}
			v, err := eachTarget(paths, func(p string) (any, error) { return a.armGet(cmd.Context(), p, apiStorage) })
			if err != nil {
				return err
			}
			return a.print(v)
		},
	}
	target(show, true)

	list := &cobra.Command{
		Use: "list", Short: "List storage accounts.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			scope, err := a.scopePath(rg)
			if err != nil {
				return err
			}
			items, err := a.armList(cmd.Context(), scope+"/providers/"+storageAccountType, apiStorage, nil)
			if err != nil {
				return err
			}
			return a.print(items)
		},
	}
	list.Flags().StringVarP(&rg, "resource-group", "g", "", "Name of the resource group.")

	del := &cobra.Command{
		Use: "delete", Short: "Delete a storage account and all its blobs.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			paths, err := a.targets(ids, rg, name, storageAccountType)
			if err != nil {
				return err
			}
			_, err = eachTarget(paths, func(p string) (any, error) {
				return a.arm(cmd.Context(), armCall{method: http.MethodDelete, path: p, apiVersion: apiStorage})
			})
			return err
		},
	}
	target(del, true)
	// az asks for confirmation without --yes; keyhaven never prompts, so
	// the flag is accepted for script compatibility.
	del.Flags().BoolVarP(&yes, "yes", "y", false, "Do not prompt for confirmation.")

	cmd.AddCommand(create, show, list, del)
	return cmd
}

// storageAccountID resolves an account name to its ID by listing the
// subscription's accounts (names are globally unique). An ID is returned
// as given, after checking its type.
func (a *app) storageAccountID(ctx context.Context, flag, nameOrID string) (string, error) {
	if strings.HasPrefix(nameOrID, "/") {
		r, err := parseResourceID(nameOrID)
		if err != nil {
			return "", err
		}
		if !strings.EqualFold(r.FullType(), storageAccountType) {
			return "", usageErrorf("argument %s: %q is not a storage account ID", flag, nameOrID)
		}
		return r.Raw, nil
	}
	if err := checkName(flag, nameOrID); err != nil {
		return "", err
	}
	scope, err := a.scopePath("")
	if err != nil {
		return "", err
	}
	items, err := a.armList(ctx, scope+"/providers/"+storageAccountType, apiStorage, nil)
	if err != nil {
		return "", err
	}
	for _, it := range items {
		m, _ := it.(map[string]any)
		if n, _ := m["name"].(string); strings.EqualFold(n, nameOrID) {
			if id, _ := m["id"].(string); id != "" {
				return id, nil
			}
		}
	}
	return "", &azerr.Error{Status: http.StatusNotFound, Code: "StorageAccountNotFound",
		Message: fmt.Sprintf("The storage account '%s' was not found in the current subscription.", nameOrID)}
}

func newStorageBlobCmd(a *app) *cobra.Command {
	cmd := newGroup("blob", "Read blobs (append-only; written by diagnostic settings).")
	var account, container, prefix, name, file string
	var num int
	bind := func(c *cobra.Command) {
		c.Flags().StringVar(&account, "account-name", "", "Storage account name (or ID).")
		c.Flags().StringVarP(&container, "container-name", "c", "", "The container name.")
	}
	need := func() error {
		if account == "" || container == "" {
			return usageErrorf("the following arguments are required: --account-name, --container-name/-c")
		}
		return checkName("--container-name/-c", container)
	}

	list := &cobra.Command{
		Use: "list", Short: "List blobs in a container.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(); err != nil {
				return err
			}
			items, err := a.listBlobs(cmd.Context(), account, container, prefix, num)
			if err != nil {
				return err
			}
			return a.print(items)
		},
	}
	bind(list)
	list.Flags().StringVar(&prefix, "prefix", "", "Filter the results to return only blobs whose name begins with the specified prefix.")
	list.Flags().IntVar(&num, "num-results", 5000, "Specify the maximum number to return; '*' is not supported, use a large number.")

	download := &cobra.Command{
		Use: "download", Short: "Download a blob to a file (or standard output).", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(); err != nil {
				return err
			}
			if name == "" {
				return usageErrorf("the following arguments are required: --name/-n")
			}
			blob, err := a.findBlob(cmd.Context(), account, container, name)
			if err != nil {
				return err
			}
			id, _ := blob["id"].(string)
			if file == "" {
				return a.downloadBlob(cmd.Context(), id, a.stdout)
			}
			f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			if err := a.downloadBlob(cmd.Context(), id, f); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			return a.print(blob)
		},
	}
	bind(download)
	download.Flags().StringVarP(&name, "name", "n", "", "The blob name.")
	download.Flags().StringVarP(&file, "file", "f", "", "Path of file to write out to (default: standard output).")

	cmd.AddCommand(list, download)
	return cmd
}

func (a *app) blobsPath(ctx context.Context, account, container string) (string, error) {
	id, err := a.storageAccountID(ctx, "--account-name", account)
	if err != nil {
		return "", err
	}
	return id + "/blobServices/default/containers/" + container + "/blobs", nil
}

func (a *app) listBlobs(ctx context.Context, account, container, prefix string, max int) ([]any, error) {
	p, err := a.blobsPath(ctx, account, container)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	u, aud, err := a.armURL(p, apiStorage, q)
	if err != nil {
		return nil, err
	}
	return a.listPages(ctx, u, aud, max)
}

// findBlob finds a blob by its exact name (the routes address blobs by id).
func (a *app) findBlob(ctx context.Context, account, container, name string) (map[string]any, error) {
	items, err := a.listBlobs(ctx, account, container, name, 0)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		m, _ := it.(map[string]any)
		if n, _ := m["name"].(string); n == name {
			return m, nil
		}
	}
	return nil, &azerr.Error{Status: http.StatusNotFound, Code: "BlobNotFound", Message: "The specified blob does not exist."}
}

// downloadBlob copies a blob to w, range by range.
func (a *app) downloadBlob(ctx context.Context, id string, w io.Writer) error {
	if id == "" {
		return &azerr.Error{Message: "the server listed a blob without an id"}
	}
	var offset int64
	for range maxDownloadChunks {
		v, err := a.arm(ctx, armCall{method: http.MethodGet, path: id, apiVersion: apiStorage,
			query: url.Values{"offset": {fmt.Sprint(offset)}}})
		if err != nil {
			return err
		}
		m, _ := v.(map[string]any)
		props, _ := m["properties"].(map[string]any)
		total, _ := props["contentLength"].(float64)
		content, _ := m["content"].(map[string]any)
		enc, _ := content["data"].(string)
		data, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return &azerr.Error{Message: "the server returned blob content that is not base64"}
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
		offset += int64(len(data))
		if offset >= int64(total) {
			return nil
		}
		if len(data) == 0 {
			return &azerr.Error{Message: "the blob download made no progress"}
		}
	}
	return &azerr.Error{Message: "the blob is too large to download"}
}

// storageIdentity is the identity block az's storage account flags give, or
// nil when none was given. --assign-identity alone is SystemAssigned, a
// user identity alone UserAssigned, both together both.
func storageIdentity(assign bool, typ string, userIDs []string) (map[string]any, error) {
	if typ == "" {
		switch {
		case assign && len(userIDs) > 0:
			typ = "SystemAssigned,UserAssigned"
		case assign:
			typ = "SystemAssigned"
		case len(userIDs) > 0:
			typ = "UserAssigned"
		default:
			return nil, nil
		}
	}
	blk := map[string]any{"type": typ}
	if len(userIDs) > 0 {
		u := map[string]any{}
		for _, id := range userIDs {
			r, err := parseResourceID(id)
			if err != nil || !strings.EqualFold(r.FullType(), "Microsoft.ManagedIdentity/userAssignedIdentities") {
				return nil, usageErrorf("argument --user-identity-id: %q is not a user-assigned identity resource ID", clipText(id, 200))
			}
			u[id] = map[string]any{}
		}
		blk["userAssignedIdentities"] = u
	}
	return blk, nil
}
