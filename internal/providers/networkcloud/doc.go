// Package networkcloud is the Microsoft.NetworkCloud resource provider as
// the Operator Nexus credential-rotation guide uses it: clusterManagers,
// clusters (with their legacy secretArchive and their secretArchiveSettings),
// and the bareMetalMachines and storageAppliances a cluster deployment
// creates. Field names and enum values follow the public networkcloud API
// spec; api-versions are listed in APIVersions.
//
// Identities (the `identity` block of managers and clusters) live in the
// identity service (identity.SetResourceIdentity / GetResourceIdentity /
// RemoveResource); a request's identity block replaces the whole set, as ARM
// does. Credentials are owned by the rotation engine (internal/rotation):
// the provider registers targets with rotation.Engine and answers the
// engine's questions as its rotation.ArchiveResolver.
//
// Life of a cluster:
//
//   - PUT/PATCH validates everything (400s name the property in target). The
//     BMC and storage-administrator passwords of the rack definitions are
//     write-only: they are handed to the engine as rotation.Target.Initial
//     (the engine seals them) and never stored or rendered here. While the
//     cluster is undeployed, every rack-definition write replaces the
//     cluster's target set (Engine.RemoveCluster, then UpsertTargets);
//     rack definitions cannot change once the cluster is deployed.
//   - POST .../deploy (long-running) creates one bareMetalMachines resource
//     per machine and one storageAppliances resource per appliance, in the
//     cluster's resource group, registers the platform-held credentials
//     (ConsoleUser per machine, LocalPathStorageKey per cluster) and asks the
//     engine to rotate everything ("rotated at deployment").
//   - POST .../rotateCredential {"credentials":["BMCCredential",...]}
//     (long-running) requests an on-demand rotation; it fails with the
//     ResolveArchive code when no archive is usable.
//   - DELETE (long-running) stops the engine managing the cluster, then
//     removes its machines, appliances and identities.
//
// Machines support POST .../cordon and .../uncordon; OwnerState reports a
// cordoned machine as "Cordoned" and the engine never rotates it.
//
// A cluster belongs to a cluster manager through its extendedLocation: the
// manager's managerExtendedLocation (a custom location ID keyhaven derives
// from the manager), or — keyhaven shortcuts — the manager's resource ID as
// extendedLocation.name, or properties.clusterManagerId on create.
//
// keyhaven extensions (documented, not in Azure's spec):
//
//   - bareMetalMachineConfigurationData[].bmcConnectionString (read-only in
//     Azure) is accepted on input (alias bmcEndpoint) and names the
//     machine's Redfish service, "redfish+https://host:port" or
//     "redfish+http://host:port"; without it the BMC credential is
//     platform-held.
//   - storageApplianceConfigurationData[].adminEndpoint names where the
//     appliance administrator credential lives: "redfish+https://..." or
//     "postgres://host:port/db" (a PostgreSQL role named by
//     adminCredentials.username).
//   - properties.encryptionPublicKey (cluster-wide, both archive paths) next
//     to the spec's secretArchiveSettings.encryptionPublicKey: an RSA public
//     key (PEM, 3072 to 16384 bits) archived values are encrypted to.
//   - properties.secretRotationStatus on a deployed cluster, for the
//     cluster-wide credentials (LocalPathStorageKey).
//
// Store prefix: rp/networkcloud/
//
//	rp/networkcloud/{type}/{sub}/{rg}/{name}   one record per resource (lower case)
package networkcloud
