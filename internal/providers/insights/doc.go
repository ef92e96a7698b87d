// Package insights is the Microsoft.Insights resource provider's
// diagnostic settings: an extension resource at
//
//	{resourceId}/providers/Microsoft.Insights/diagnosticSettings/{name}
//
// (PUT, GET, DELETE, and GET of the collection to list a resource's
// settings), and the delivery of a resource's audit events to the storage
// accounts its settings name, as Azure Monitor does: the audit log
// (internal/audit) calls Ship for each stored event and Ship appends it, as
// one JSON line, to the append blob
//
//	container insights-logs-{category, lower case}
//	blob      resourceId={RESOURCE ID IN UPPER CASE}/y=YYYY/m=MM/d=DD/h=HH/m=00/PT1H.json
//
// of every destination whose setting enables that category (UTC hour
// partitions). A resource without a setting ships nothing.
//
// Log categories are known per resource type (Options.ResourceTypes; by
// default Microsoft.KeyVault/vaults: AuditEvent and
// AzurePolicyEvaluationDetails, category groups "audit" and "allLogs", and
// the metric category AllMetrics); a setting on another type is refused.
// Only storage account destinations are delivered to: workspaceId,
// eventHubAuthorizationRuleId and marketplacePartnerId are validated,
// stored and returned but nothing is sent there. Metrics settings are
// stored, not delivered.
//
// Validation follows Azure: at most 5 settings per resource, a destination
// is required, the storage account must exist (400 otherwise), and one
// category may not be sent to the same storage account by two settings of
// one resource. With Options.Decider set, the caller must also be allowed
// Microsoft.Storage/storageAccounts/listKeys/action on the storage account
// (Azure's linked authorization; 403 LinkedAuthorizationFailed otherwise),
// so write access to a vault does not let anyone fill another team's
// storage account.
//
// retentionPolicy {enabled, days > 0} of a log category becomes a retention
// rule on the destination account (storage.SetRetention, scoped to the
// category's container and the resource's blob prefix); the storage
// provider's PruneBlobs enforces it. Deleting or replacing the setting
// removes its rules. Like Azure, settings outlive the resource they are on
// (and apply again if a resource of the same ID is created).
//
// Store prefix: rp/insights/
//
//	rp/insights/settings/{resource id, lower case}/#/{setting name, lower case}
package insights
