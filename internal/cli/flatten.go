package cli

// flattenProps shows ARM resources as az does for the commands whose
// output az flattens (identity, role assignment): the fields of
// "properties" beside id, name and type, plus the resource group of the ID,
// so az's --query idioms (e.g. --query principalId) work unchanged. A list
// is flattened item by item; anything else is returned as is.
func flattenProps(v any) any {
	switch t := v.(type) {
	case []any:
		out := make([]any, len(t))
		for i, it := range t {
			out[i] = flattenProps(it)
		}
		return out
	case map[string]any:
		props, ok := t["properties"].(map[string]any)
		if !ok {
			return t
		}
		out := make(map[string]any, len(t)+len(props))
		for k, val := range t {
			if k != "properties" {
				out[k] = val
			}
		}
		for k, val := range props {
			if _, taken := out[k]; !taken {
				out[k] = val
			}
		}
		if id, ok := t["id"].(string); ok {
			if r, err := parseResourceID(id); err == nil && r.ResourceGroup != "" {
				if _, taken := out["resourceGroup"]; !taken {
					out["resourceGroup"] = r.ResourceGroup
				}
			}
		}
		return out
	}
	return v
}
