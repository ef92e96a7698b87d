#!/usr/bin/env bash
# The Azure Operator Nexus guide "Set up Key Vault for Managed Credential
# Rotation" (../shared/seeds/operator-nexus-key-vault-credential-rotation.md),
# top to bottom, with `keyhaven` in place of `az`, against a fresh keyhaven
# server. Every az command of the guide runs here, in the guide's order, with
# the guide's flags (values substituted); each is printed as "$ keyhaven ..."
# under a "guide:" heading and followed by "ok:" assertions. Where the guide
# points to another section ("Refer to Grant Managed Identity Access ..."),
# that section's command runs at that point, as a reader following the link
# would; steps that cannot apply to keyhaven say why ("n/a:").
#
# At the end, rotated credentials have arrived as new secret versions in the
# customer's vault through each of the guide's four identity set-ups, and the
# vault's audit log proves WHICH identity wrote each new version (every
# identity here holds the writer role, so counting versions alone would not):
#   1. cluster manager, system-assigned identity   (secretArchive)
#   2. cluster manager, user-assigned identity     (secretArchive)
#   3. cluster, system-assigned identity           (secretArchiveSettings)
#   4. cluster, user-assigned identity             (secretArchiveSettings)
# plus the guide's warnings: the cluster identity path is refused while the
# vault firewall is on (the cluster manager path passes it with bypass
# AzureServices), cluster settings supersede the cluster manager's, and a
# user-assigned identity needs Managed Identity Operator for the platform.
#
# Usage: examples/nexus-walkthrough.sh
#   KEYHAVEN_BIN=/path/to/keyhaven selects the binary; without it the script
#   builds ./cmd/keyhaven into a temporary directory. Exits non-zero on the
#   first failed step.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill "${server_pid:-0}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

bin=${KEYHAVEN_BIN:-}
if [ -z "$bin" ]; then
  go build -o "$work/keyhaven" ./cmd/keyhaven
  bin="$work/keyhaven"
fi
keyhaven() { "$bin" "$@"; }
export KEYHAVEN_CONFIG_DIR="$work/cli"

step() { printf '\n### %s\n' "$*"; }
na() { printf 'n/a: %s\n' "$*"; }
note() { printf 'note: %s\n' "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
expect_eq() { [ "$2" = "$3" ] && ok "$1" || fail "$1: got '$2', want '$3'"; }
expect_match() { case "$2" in *"$3"*) ok "$1" ;; *) fail "$1: '$3' not in: $2" ;; esac; }
expect_no_match() { case "$2" in *"$3"*) fail "$1: '$3' unexpectedly in: $2" ;; *) ok "$1" ;; esac; }
lower() { printf '%s' "$1" | tr '[:upper:]' '[:lower:]'; }

# guide runs one command of the guide: prints it, runs it, keeps its output in
# $out (a failing command fails the walkthrough).
guide() {
  local a line='$ keyhaven'
  for a in "$@"; do
    case "$a" in
      *[!A-Za-z0-9_./:=@,+-]*) line+=" '${a//\'/\'\\\'\'}'" ;;
      *) line+=" $a" ;;
    esac
  done
  printf '%s\n' "$line"
  out=$(keyhaven "$@") || fail "the guide's command failed: keyhaven $*"
  ok "the guide's command ran"
}

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000)) # below the ephemeral range (32768+), where outgoing connections take theirs
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

step "Start a fresh keyhaven server"
port=$(free_port); miport=$(free_port)
"$bin" serve --data-dir "$work/data" --listen "127.0.0.1:$port" --mi-listen "127.0.0.1:$miport" \
  --rotation-interval 1s --log-format json >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do [ -f "$work/data/admin-credentials.json" ] && break; sleep 0.1; done
password=$(sed -n 's/.*"password": *"\([^"]*\)".*/\1/p' "$work/data/admin-credentials.json")
for _ in $(seq 1 50); do
  keyhaven login --server "https://localhost:$port" --ca-file "$work/data/tls/ca.pem" \
    --username admin@keyhaven.local --password "$password" -o none 2>/dev/null && break
  sleep 0.2
done

step "guide: Prerequisites"
na "'Install the latest version of the appropriate CLI extensions': networkcloud is built into keyhaven; there is no extension to install."
subscriptionId=$(keyhaven account show --query id -o tsv) || fail "could not log in to the server (see $work/server.log)"
[ -n "$subscriptionId" ] && ok "logged in; the Subscription ID is $subscriptionId" || fail "no subscription"
rg=nexus-rg
keyhaven group create --name "$rg" --location local -o none
vaultId=$(keyhaven keyvault create --name custvault --resource-group "$rg" --location local --enable-rbac-authorization true --query id -o tsv)
vaultUri=$(keyhaven keyvault show --name custvault --resource-group "$rg" --query properties.vaultUri -o tsv)
expect_eq "the customer's key vault uses the Azure RBAC permission model" "$(keyhaven keyvault show --name custvault --query properties.enableRbacAuthorization -o tsv)" "True"
note "vault URIs: the guide's https://<key vault name>.vault.azure.net/ is $vaultUri on this keyhaven server."
# The user-assigned identities the guide's commands name ("myUAI"): one for the
# cluster manager and another for the cluster, so that the audit log can tell
# the two user-assigned paths apart.
uai=$(keyhaven identity create --name myUAI --resource-group "$rg" --location local --query id -o tsv)
uaiPrincipal=$(keyhaven identity show --ids "$uai" --query principalId -o tsv)
clusterUai=$(keyhaven identity create --name clusterUAI --resource-group "$rg" --location local --query id -o tsv)
clusterUaiPrincipal=$(keyhaven identity show --ids "$clusterUai" --query principalId -o tsv)
[ -n "$uaiPrincipal" ] && [ -n "$clusterUaiPrincipal" ] && [ "$uaiPrincipal" != "$clusterUaiPrincipal" ] &&
  ok "user-assigned identities myUAI ($uaiPrincipal) and clusterUAI ($clusterUaiPrincipal)" || fail "user-assigned identities"
platformApp=$(keyhaven ad sp list --display-name keyhaven-platform --query '[0].id' -o tsv)
[ -n "$platformApp" ] && ok "the platform application (the guide's AFOI-NC-MGMT-PME-PROD) is keyhaven-platform, $platformApp" || fail "no platform application"

law="/subscriptions/$subscriptionId/resourceGroups/$rg/providers/microsoft.operationalInsights/workspaces/logAnalyticsWorkspaceName"
nfc="/subscriptions/$subscriptionId/resourceGroups/$rg/providers/Microsoft.ManagedNetworkFabric/networkFabricControllers/fabricControllerName"
cmName=clusterManagerName
cmId="/subscriptions/$subscriptionId/resourceGroups/$rg/providers/Microsoft.NetworkCloud/clusterManagers/$cmName"
writerRole=44f0a1a8-6fea-4b35-980a-8ff50c487c97

cm_identity() { keyhaven networkcloud clustermanager show --ids "$cmId" --query "$1" -o tsv; }
cm_uai_principal() { cm_identity "identity.userAssignedIdentities.*.principalId | [0]"; }

# ---------------------------------------------------------------------------
step "guide: Configure Key Vault Using Managed Identity for Cluster Manager — Create or update Cluster Manager with system-assigned identity"
guide networkcloud clustermanager create --name "$cmName" --location "local" \
  --analytics-workspace-id "$law" \
  --fabric-controller-id "$nfc" \
  --managed-resource-group-configuration name="my-managed-rg" --tags key1="myvalue1" key2="myvalue2" --resource-group "$rg" --mi-system-assigned
expect_match "the response shows the system-assigned identity" "$out" '"type": "SystemAssigned"'
expect_eq "identity type" "$(cm_identity identity.type)" "SystemAssigned"
cmPrincipal1=$(cm_identity identity.principalId)
[ -n "$cmPrincipal1" ] && ok "a system-assigned principal $cmPrincipal1" || fail "no principalId"
expect_eq "tags" "$(cm_identity 'join(`","`, [tags.key1, tags.key2])')" "myvalue1,myvalue2"
expect_eq "managed resource group" "$(cm_identity managedResourceGroupConfiguration.name)" "my-managed-rg"
expect_eq "analytics workspace" "$(lower "$(cm_identity analyticsWorkspaceId)")" "$(lower "$law")"
expect_eq "fabric controller" "$(lower "$(cm_identity fabricControllerId)")" "$(lower "$nfc")"

step "guide: Create or update Cluster Manager with user-assigned identity"
guide networkcloud clustermanager create --name "$cmName" --location "local" \
  --analytics-workspace-id "$law" \
  --fabric-controller-id "$nfc" \
  --managed-resource-group-configuration name="my-managed-rg" --tags key1="myvalue1" key2="myvalue2" \
  --resource-group "$rg" --mi-user-assigned "$uai"
expect_eq "identity type (create or update: the identity set is replaced)" "$(cm_identity identity.type)" "UserAssigned"
expect_eq "the user-assigned identity's principal" "$(cm_uai_principal)" "$uaiPrincipal"
expect_eq "no system-assigned principal any more" "$(cm_identity 'identity.principalId || `"none"`')" "none"

step "guide: Add system-assigned identity to Cluster Manager"
guide networkcloud clustermanager update --name "$cmName" --resource-group "$rg" --mi-system-assigned
expect_eq "identity type" "$(cm_identity identity.type)" "SystemAssigned"
[ -n "$(cm_identity identity.principalId)" ] && ok "a system-assigned principal" || fail "no principalId"

step "guide: Add user-assigned identity to Cluster Manager"
guide networkcloud clustermanager update --name "$cmName" --resource-group "$rg" \
  --mi-user-assigned "$uai"
expect_eq "identity type" "$(cm_identity identity.type)" "UserAssigned"
expect_eq "the user-assigned identity's principal" "$(cm_uai_principal)" "$uaiPrincipal"

# ---------------------------------------------------------------------------
step "The Nexus cluster (the guide assumes one exists): two bare-metal machines and a storage appliance"
rackOf() { # rackOf RACK MACHINE... (machines named MACHINE, a storage appliance when STORAGE is set)
  local rack=$1 m i=0 machines=""
  shift
  for m in "$@"; do
    i=$((i + 1))
    machines+="${machines:+,}{bmcCredentials:{username:root,password:'Initial-bmc-$m'},bmcMacAddress:'AA:BB:CC:DD:$(printf '%02X' $((RANDOM % 256))):0$i',bootMacAddress:'AA:BB:CC:F8:$(printf '%02X' $((RANDOM % 256))):0$i',machineName:$m,rackSlot:$i,serialNumber:SN-$m}"
  done
  local storage=""
  [ -n "${STORAGE:-}" ] && storage=",storageApplianceConfigurationData:[{adminCredentials:{username:admin,password:'Initial-storage'},rackSlot:$((i + 1)),serialNumber:ST-$STORAGE,storageApplianceName:$STORAGE}]"
  printf "{networkRackId:'/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ManagedNetworkFabric/networkRacks/%s',rackSkuId:'/subscriptions/%s/providers/Microsoft.NetworkCloud/rackSkus/sku1',rackSerialNumber:%s,bareMetalMachineConfigurationData:[%s]%s}" \
    "$subscriptionId" "$rg" "$rack" "$subscriptionId" "$rack" "$machines" "$storage"
}
fabric="/subscriptions/$subscriptionId/resourceGroups/$rg/providers/Microsoft.ManagedNetworkFabric/networkFabrics/fabric1"
keyhaven networkcloud cluster create --name nexus-cluster --resource-group "$rg" --location local \
  --extended-location name="$cmId" type=CustomLocation --cluster-type SingleRack --cluster-version 3.10.0 \
  --network-fabric-id "$fabric" --aggregator-or-single-rack-definition "$(STORAGE=storage01 rackOf rack1 compute01 compute02)" -o none
clusterId="/subscriptions/$subscriptionId/resourceGroups/$rg/providers/Microsoft.NetworkCloud/clusters/nexus-cluster"
expect_eq "cluster created" "$(keyhaven networkcloud cluster show --ids "$clusterId" --query provisioningState -o tsv)" "Succeeded"

step "guide: Configure Nexus Cluster Secret Archive — set and enable Customer Key Vault on Nexus cluster"
guide networkcloud cluster update --ids "$clusterId" --secret-archive "{key-vault-id:$vaultId,use-key-vault:true}"
expect_match "the response carries secretArchive" "$out" "secretArchive"

step "guide: Show Customer Key Vault setting (secretArchive) on the Nexus cluster"
guide networkcloud cluster show --ids "$clusterId" --query secretArchive
echo "$out"
expect_eq "secretArchive.keyVaultId" "$(keyhaven networkcloud cluster show --ids "$clusterId" --query secretArchive.keyVaultId -o tsv)" "$vaultId"
expect_eq "secretArchive.useKeyVault" "$(keyhaven networkcloud cluster show --ids "$clusterId" --query secretArchive.useKeyVault -o tsv)" "True"

step "guide: For more help (az networkcloud cluster update --secret-archive ?? --help)"
# Quoted: an unquoted ?? is a shell glob that would match any two-character file name.
guide networkcloud cluster update --secret-archive '??' --help
expect_match "help explains key-vault-id" "$out" "key-vault-id"
expect_match "help explains use-key-vault" "$out" "use-key-vault"

step "guide: Get the Principal ID for the Cluster Manager Managed Identity"
guide networkcloud clustermanager show --ids "$cmId"
keyhaven networkcloud clustermanager show --ids "$cmId" --query identity
expect_match "the output has the user-assigned identity example's shape" "$out" '"userAssignedIdentities"'
expect_match "the output names myUAI" "$(lower "$out")" "$(lower "$uai")"
expect_match "the output gives its principalId" "$out" "\"principalId\": \"$uaiPrincipal\""

step "guide: (Refer to) Grant Managed Identity Access to a Key Vault for Credential Rotation — the cluster manager's myUAI"
guide role assignment create --assignee "$uaiPrincipal" --role "$writerRole" --scope "$vaultId"
expect_match "the role assignment names the writer role" "$out" "$writerRole"
expect_eq "myUAI holds the Operator Nexus Key Vault Writer Service Role on the vault" \
  "$(keyhaven role assignment list --scope "$vaultId" --assignee "$uaiPrincipal" --query '[].roleDefinitionName' -o tsv)" "Operator Nexus Key Vault Writer Service Role (Preview)"

# --- audit-log helpers ------------------------------------------------------
# Every delivery is a SecretSet request on the customer vault's data plane; its
# audit event names the caller (identity.claim.oid and xms_mirid). seq numbers
# the vault's events in order, so "events after mark" are exactly the new ones.
secretsets() { keyhaven monitor log list --vault-name custvault --operation SecretSet --max-events 100000 "$@"; }
mark() { secretsets --query 'max([].seq) || `0`' -o tsv; }
new_sets() { secretsets --query "length([?seq > \`$1\`])" -o tsv; }
# expect_delivered LABEL MARK N PRINCIPAL MIRID CLUSTER-ID: waits for N new
# SecretSet events, then asserts every new one succeeded and was made by
# PRINCIPAL (oid) with the managed identity resource MIRID (xms_mirid).
expect_delivered() {
  local label=$1 m=$2 n=$3 pid=$4 mirid=$5 cid=$6 got=0 rows bad
  for _ in $(seq 1 150); do
    got=$(new_sets "$m")
    [ "$got" -ge "$n" ] && break
    sleep 0.2
  done
  if [ "$got" -lt "$n" ]; then
    keyhaven networkcloud cluster show --ids "$cid" --query '{status:detailedStatus,message:detailedStatusMessage}'
    fail "$label: $got of $n rotated credentials arrived"
  fi
  secretsets --query "[?seq > \`$m\`].{seq:seq,result:resultType,oid:identity.claim.oid,mirid:identity.claim.xms_mirid,secret:properties.id}" -o table
  rows=$(secretsets --query "[?seq > \`$m\`].[resultType, identity.claim.oid, identity.claim.xms_mirid]" -o tsv)
  got=$(printf '%s\n' "$rows" | grep -c .)
  ok "$label: $got new secret versions in the customer vault"
  bad=$(printf '%s\n' "$rows" | awk -F'\t' -v p="$(lower "$pid")" -v r="$(lower "$mirid")" \
    'tolower($1) != "success" || tolower($2) != p || tolower($3) != r' | head -3)
  [ -z "$bad" ] && ok "$label: every new SecretSet event succeeded as principal $pid (xms_mirid $mirid)" ||
    fail "$label: SecretSet events not made by $pid / $mirid: $bad"
  expect_eq "$label: the audit log's --caller filter finds the same $got events" \
    "$(secretsets --caller "$pid" --result Success --query "length([?seq > \`$m\`])" -o tsv)" "$got"
}
vault_secret_count() { keyhaven keyvault secret list --vault-name custvault --query "length([?tags.clusterName=='$1'])" -o tsv; }
wait_status() { # wait_status CLUSTER-ID CODE: waits until detailedStatusMessage names CODE
  local msg=""
  for _ in $(seq 1 100); do
    msg=$(keyhaven networkcloud cluster show --ids "$1" --query detailedStatusMessage -o tsv)
    case "$msg" in *"$2"*) break ;; esac
    sleep 0.2
  done
  expect_match "the cluster's status names $2" "$msg" "$2"
  expect_match "an alert says $2" "$(keyhaven networkcloud cluster alert list --ids "$1" --query '[].code' -o tsv)" "$2"
}

step "Deploy the cluster: its credentials are rotated at deployment, for delivery with the cluster manager's myUAI"
m=$(mark)
keyhaven networkcloud cluster deploy --ids "$clusterId" -o none
ok "cluster deployed"
# The guide: "If using a user-assigned managed identity, proceed to add permission
# to user-assigned identity". Until then, delivery cannot use it; keyhaven says so.
wait_status "$clusterId" MissingManagedIdentityOperator
expect_eq "nothing delivered without it" "$(new_sets "$m")" "0"

step "guide: (proceed to) Add a permission to User-assigned identity — Managed Identity Operator on myUAI for the platform application"
na "the guide's portal steps 1-6 (Access control (IAM) > Add role assignment > Managed Identity Operator > AFOI-NC-MGMT-PME-PROD) are this one command; in keyhaven's portal they are the same on the identity's page (/portal/identities/...: Access control (IAM) > Add role assignment, member keyhaven-platform; e2e TestPortalBrowser follows them), and the platform application is keyhaven-platform."
guide role assignment create --assignee "$platformApp" --role "Managed Identity Operator" --scope "$uai"
expect_eq "the platform holds Managed Identity Operator on myUAI" \
  "$(keyhaven role assignment list --scope "$uai" --assignee "$platformApp" --query '[].roleDefinitionName' -o tsv)" "Managed Identity Operator"
keyhaven networkcloud cluster rotate-credential --ids "$clusterId" --credentials BMCCredential ConsoleUser StorageApplianceAdministrator LocalPathStorageKey -o none
# 2 machines x (BMC + console user) + storage appliance administrator + local path storage key
expect_delivered "path 2, cluster manager user-assigned (myUAI)" "$m" 6 "$uaiPrincipal" "$uai" "$clusterId"
expect_eq "secrets of nexus-cluster in the customer vault" "$(vault_secret_count nexus-cluster)" "6"
keyhaven keyvault secret list --vault-name custvault --query '[].{name:name,type:tags.credentialType}' -o table
bmm=$(keyhaven networkcloud baremetalmachine list --resource-group "$rg" --query "[?name=='compute01'].id | [0]" -o tsv)
expect_match "secretRotationStatus points at the vault" "$(keyhaven networkcloud baremetalmachine show --ids "$bmm" --query secretRotationStatus)" "custvault"

step "Path 1: the cluster manager's system-assigned identity (the guide's Add system-assigned identity, Get the Principal ID and Grant again), through the vault firewall (bypass AzureServices)"
guide networkcloud clustermanager update --name "$cmName" --resource-group "$rg" --mi-system-assigned
guide networkcloud clustermanager show --ids "$cmId"
cmPrincipal=$(cm_identity identity.principalId)
expect_match "the output gives the system-assigned principalId" "$out" "\"principalId\": \"$cmPrincipal\""
guide role assignment create --assignee "$cmPrincipal" --role "$writerRole" --scope "$vaultId"
# The guide: "If your environment requires the key vault firewall be enabled,
# use the existing Cluster Manager identity method."
keyhaven keyvault update --name custvault --default-action Deny --bypass AzureServices -o none
expect_eq "the vault firewall is on, trusted services allowed" "$(keyhaven keyvault show --name custvault --query 'join(`","`, [properties.networkAcls.defaultAction, properties.networkAcls.bypass])' -o tsv)" "Deny,AzureServices"
m=$(mark)
keyhaven networkcloud cluster rotate-credential --ids "$clusterId" --credentials BMCCredential ConsoleUser StorageApplianceAdministrator LocalPathStorageKey -o none
expect_delivered "path 1, cluster manager system-assigned" "$m" 6 "$cmPrincipal" "$cmId" "$clusterId"

# ---------------------------------------------------------------------------
step "guide: Configure Key Vault Using Managed Identity for Cluster — Create Nexus Cluster with system-assigned identity"
note "the guide's '...' stands for the cluster's other create arguments; keyhaven needs the extended location, type, version, fabric and rack definition."
guide networkcloud cluster create --name "cluster-sa" \
  --resource-group "$rg" \
  --location local --extended-location name="$cmId" type=CustomLocation --cluster-type SingleRack --cluster-version 3.10.0 \
  --network-fabric-id "$fabric" --aggregator-or-single-rack-definition "$(rackOf rack2 compute11)" \
  --mi-system-assigned \
  --secret-archive-settings identity-type="SystemAssignedIdentity" vault-uri="$vaultUri" \
  --subscription "$subscriptionId"
clusterSa="/subscriptions/$subscriptionId/resourceGroups/$rg/providers/Microsoft.NetworkCloud/clusters/cluster-sa"
expect_eq "identity type" "$(keyhaven networkcloud cluster show --ids "$clusterSa" --query identity.type -o tsv)" "SystemAssigned"
expect_eq "secretArchiveSettings" "$(keyhaven networkcloud cluster show --ids "$clusterSa" --query 'join(`","`, [secretArchiveSettings.associatedIdentity.identityType, secretArchiveSettings.vaultUri])' -o tsv)" "SystemAssignedIdentity,$vaultUri"
clusterSaPrincipal=$(keyhaven networkcloud cluster show --ids "$clusterSa" --query identity.principalId -o tsv)
[ -n "$clusterSaPrincipal" ] && ok "a system-assigned principal $clusterSaPrincipal" || fail "no principalId"
# The guide: "A system-assigned identity must be granted access to the key vault
# after cluster creation but before deployment."
guide role assignment create --assignee "$clusterSaPrincipal" --role "$writerRole" --scope "$vaultId"
# The guide: "This method can only be used with key vaults that do not have
# firewall enabled." The firewall is still on from path 1.
m=$(mark)
keyhaven networkcloud cluster deploy --ids "$clusterSa" -o none
wait_status "$clusterSa" VaultFirewallEnabled
expect_eq "nothing delivered with the cluster's identity through the firewall" "$(new_sets "$m")" "0"
keyhaven keyvault update --name custvault --default-action Allow -o none
expect_eq "the vault firewall is off" "$(keyhaven keyvault show --name custvault --query properties.networkAcls.defaultAction -o tsv)" "Allow"
keyhaven networkcloud cluster rotate-credential --ids "$clusterSa" --credentials BMCCredential ConsoleUser LocalPathStorageKey -o none
# 1 machine x (BMC + console user) + local path storage key
expect_delivered "path 3, cluster system-assigned (cluster-sa)" "$m" 3 "$clusterSaPrincipal" "$clusterSa" "$clusterSa"

step "guide: Create Nexus Cluster with user-assigned identity"
# The guide: "A user-assigned managed identity may be created and assigned access
# to the key vault before the Nexus Cluster is created and prior to deployment."
guide role assignment create --assignee "$clusterUaiPrincipal" --role "$writerRole" --scope "$vaultId"
guide role assignment create --assignee "$platformApp" --role "Managed Identity Operator" --scope "$clusterUai"
guide networkcloud cluster create --name "cluster-uai" \
  --resource-group "$rg" \
  --location local --extended-location name="$cmId" type=CustomLocation --cluster-type SingleRack --cluster-version 3.10.0 \
  --network-fabric-id "$fabric" --aggregator-or-single-rack-definition "$(rackOf rack3 compute21)" \
  --mi-user-assigned "$clusterUai" \
  --secret-archive-settings identity-type="UserAssignedIdentity" identity-resource-id="$clusterUai" vault-uri="$vaultUri" \
  --subscription "$subscriptionId"
clusterUa="/subscriptions/$subscriptionId/resourceGroups/$rg/providers/Microsoft.NetworkCloud/clusters/cluster-uai"
expect_eq "identity type" "$(keyhaven networkcloud cluster show --ids "$clusterUa" --query identity.type -o tsv)" "UserAssigned"
expect_eq "secretArchiveSettings" "$(lower "$(keyhaven networkcloud cluster show --ids "$clusterUa" --query 'join(`","`, [secretArchiveSettings.associatedIdentity.identityType, secretArchiveSettings.associatedIdentity.userAssignedIdentityResourceId, secretArchiveSettings.vaultUri])' -o tsv)")" "$(lower "UserAssignedIdentity,$clusterUai,$vaultUri")"
m=$(mark)
keyhaven networkcloud cluster deploy --ids "$clusterUa" -o none
expect_delivered "path 4, cluster user-assigned (cluster-uai, clusterUAI)" "$m" 3 "$clusterUaiPrincipal" "$clusterUai" "$clusterUa"

step "guide: Update existing Nexus Cluster with system-assigned identity (nexus-cluster: supersedes its cluster manager's identity)"
guide networkcloud cluster update --ids "$clusterId" \
  --mi-system-assigned \
  --secret-archive-settings identity-type="SystemAssignedIdentity" vault-uri="$vaultUri"
expect_eq "identity type" "$(keyhaven networkcloud cluster show --ids "$clusterId" --query identity.type -o tsv)" "SystemAssigned"
expect_eq "secretArchiveSettings identity" "$(keyhaven networkcloud cluster show --ids "$clusterId" --query secretArchiveSettings.associatedIdentity.identityType -o tsv)" "SystemAssignedIdentity"
expect_eq "secretArchive is kept (superseded, not removed)" "$(keyhaven networkcloud cluster show --ids "$clusterId" --query secretArchive.keyVaultId -o tsv)" "$vaultId"
clusterPrincipal=$(keyhaven networkcloud cluster show --ids "$clusterId" --query identity.principalId -o tsv)
guide role assignment create --assignee "$clusterPrincipal" --role "$writerRole" --scope "$vaultId"
m=$(mark)
keyhaven networkcloud cluster rotate-credential --ids "$clusterId" --credentials BMCCredential ConsoleUser StorageApplianceAdministrator LocalPathStorageKey -o none
expect_delivered "path 3, cluster system-assigned (nexus-cluster; not its cluster manager's $cmPrincipal)" "$m" 6 "$clusterPrincipal" "$clusterId" "$clusterId"

step "guide: Update existing Nexus Cluster with user-assigned identity"
guide networkcloud cluster update --ids "$clusterId" \
  --mi-user-assigned "$clusterUai" \
  --secret-archive-settings identity-type="UserAssignedIdentity" identity-resource-id="$clusterUai" vault-uri="$vaultUri"
expect_eq "identity type" "$(keyhaven networkcloud cluster show --ids "$clusterId" --query identity.type -o tsv)" "UserAssigned"
expect_eq "secretArchiveSettings identity" "$(lower "$(keyhaven networkcloud cluster show --ids "$clusterId" --query 'join(`","`, [secretArchiveSettings.associatedIdentity.identityType, secretArchiveSettings.associatedIdentity.userAssignedIdentityResourceId])' -o tsv)")" "$(lower "UserAssignedIdentity,$clusterUai")"
m=$(mark)
keyhaven networkcloud cluster rotate-credential --ids "$clusterId" --credentials BMCCredential ConsoleUser StorageApplianceAdministrator LocalPathStorageKey -o none
expect_delivered "path 4, cluster user-assigned (nexus-cluster, clusterUAI; not the cluster manager's myUAI)" "$m" 6 "$clusterUaiPrincipal" "$clusterUai" "$clusterId"

step "guide: For more help (az networkcloud cluster update --secret-archive-settings '??' --help)"
guide networkcloud cluster update --secret-archive-settings '??' --help
for k in identity-type identity-resource-id vault-uri SystemAssignedIdentity UserAssignedIdentity; do
  expect_match "help explains $k" "$out" "$k"
done

step "guide: Get the Principal ID for the Cluster Managed Identity"
guide networkcloud cluster show --ids "$clusterId"
keyhaven networkcloud cluster show --ids "$clusterId" --query identity
expect_match "the output has the user-assigned identity example's shape" "$out" '"userAssignedIdentities"'
expect_match "the output gives clusterUAI's principalId" "$out" "\"principalId\": \"$clusterUaiPrincipal\""

step "guide: Grant Managed Identity Access to a Key Vault for Credential Rotation"
na "the guide's 'Access configuration' portal view: the vault's permission model is Azure RBAC (enableRbacAuthorization true, checked above)."
note "every identity above was granted with the guide's command where its section referred here; the vault's assignments now:"
keyhaven role assignment list --scope "$vaultId" --role "$writerRole" --query "[].{principal:principalId,role:roleDefinitionName}" -o table
writers=$(keyhaven role assignment list --scope "$vaultId" --role "$writerRole" --query "[].principalId" -o tsv)
for p in "$uaiPrincipal" "$cmPrincipal" "$clusterSaPrincipal" "$clusterUaiPrincipal" "$clusterPrincipal"; do
  expect_match "writer role for $p" "$writers" "$p"
done

step "guide: Add a permission to User-assigned identity"
for id in "$uai" "$clusterUai"; do
  expect_eq "the platform holds Managed Identity Operator on ${id##*/}" \
    "$(keyhaven role assignment list --scope "$id" --assignee "$platformApp" --query '[].roleDefinitionName' -o tsv)" "Managed Identity Operator"
done

# ---------------------------------------------------------------------------
step "Rotated credentials, as new secret versions in the customer vault"
name=$(keyhaven keyvault secret list --vault-name custvault --query "[?tags.clusterName=='nexus-cluster' && tags.credentialType=='BMCCredential'].name | [0]" -o tsv)
keyhaven keyvault secret list-versions --vault-name custvault --name "$name" -o table
# nexus-cluster was rotated through paths 2, 1, 3 and 4
expect_eq "$name has a version per path" "$(keyhaven keyvault secret list-versions --vault-name custvault --name "$name" --query 'length(@)' -o tsv)" "4"
expect_eq "secrets in the customer vault (6 + 3 + 3, one vault for three clusters)" "$(keyhaven keyvault secret list --vault-name custvault --query 'length(@)' -o tsv)" "12"
latest=$(keyhaven keyvault secret show --vault-name custvault --name "$name" --query id -o tsv)
status=$(keyhaven networkcloud baremetalmachine show --ids "$bmm" --query "secretRotationStatus[?secretType=='BMCCredential'] | [0].secretArchiveReference.secretVersion" -o tsv)
expect_eq "secretRotationStatus points at the newest version" "${latest##*/}" "$status"
for c in "$clusterId" "$clusterSa" "$clusterUa"; do
  expect_eq "${c##*/}: status" "$(keyhaven networkcloud cluster show --ids "$c" --query detailedStatus -o tsv)" "Running"
  expect_eq "${c##*/}: no active alerts" "$(keyhaven networkcloud cluster alert list --ids "$c" --query 'length(@)' -o tsv)" "0"
done
expect_match "nexus-cluster keeps the cleared alert" "$(keyhaven networkcloud cluster alert list --ids "$clusterId" --include-cleared --query '[].code' -o tsv)" "MissingManagedIdentityOperator"
expect_match "cluster-sa keeps the cleared alert" "$(keyhaven networkcloud cluster alert list --ids "$clusterSa" --include-cleared --query '[].code' -o tsv)" "VaultFirewallEnabled"

printf '\n1 passed, 0 failed: the Operator Nexus walkthrough\n'
