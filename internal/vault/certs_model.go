package vault

import (
	"encoding/asn1"
	"net"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// Certificate limits. Key Vault documents few of them; these bound every
// input so a request cannot make the server do unbounded work.
const (
	maxCertBodyBytes     = 256 << 10 // create, import, update and policy bodies
	maxCertImportBytes   = 128 << 10 // the 'value' of an import (base64 PFX or PEM)
	maxCertChain         = 10        // certificates in an imported chain
	maxCertSANs          = 100       // subject alternative names, all kinds together
	maxCertSANLen        = 255
	maxCertSubjectLen    = 1024
	maxCertEKUs          = 20
	maxCertValidityMonth = 1200
	maxCertPasswordLen   = 1024
	maxLifetimeActions   = 1

	issuerSelf    = "Self"
	issuerUnknown = "Unknown"

	ctPKCS12 = "application/x-pkcs12"
	ctPEM    = "application/x-pem-file"
)

// keyUsageNames are X.509 key usages in Key Vault's spelling.
var keyUsageNames = []string{"digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment",
	"keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}

// defaultEKUs are server and client authentication, Key Vault's default.
var defaultEKUs = []string{"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"}

// certKeyProps is KeyProperties (key_props).
type certKeyProps struct {
	Exportable *bool  `json:"exportable,omitempty"`
	Kty        string `json:"kty,omitempty"`
	KeySize    int    `json:"key_size,omitempty"`
	ReuseKey   *bool  `json:"reuse_key,omitempty"`
	Crv        string `json:"crv,omitempty"`
}

type certSecretProps struct {
	ContentType string `json:"contentType,omitempty"`
}

// certSANs is SubjectAlternativeNames.
type certSANs struct {
	Emails      []string `json:"emails,omitempty"`
	DNSNames    []string `json:"dns_names,omitempty"`
	UPNs        []string `json:"upns,omitempty"`
	URIs        []string `json:"uris,omitempty"`
	IPAddresses []string `json:"ipAddresses,omitempty"`
}

func (s *certSANs) count() int {
	if s == nil {
		return 0
	}
	return len(s.Emails) + len(s.DNSNames) + len(s.UPNs) + len(s.URIs) + len(s.IPAddresses)
}

// certX509Props is X509CertificateProperties (x509_props).
type certX509Props struct {
	Subject        string    `json:"subject,omitempty"`
	Ekus           []string  `json:"ekus,omitempty"`
	SANs           *certSANs `json:"sans,omitempty"`
	KeyUsage       []string  `json:"key_usage,omitempty"`
	ValidityMonths int       `json:"validity_months,omitempty"`
}

type certTrigger struct {
	LifetimePercentage *int `json:"lifetime_percentage,omitempty"`
	DaysBeforeExpiry   *int `json:"days_before_expiry,omitempty"`
}

type certAction struct {
	ActionType string `json:"action_type,omitempty"`
}

type certLifetimeAction struct {
	Trigger *certTrigger `json:"trigger,omitempty"`
	Action  *certAction  `json:"action,omitempty"`
}

// certIssuer is IssuerParameters.
type certIssuer struct {
	Name             string `json:"name,omitempty"`
	Cty              string `json:"cty,omitempty"`
	CertTransparency *bool  `json:"cert_transparency,omitempty"`
}

type certPolicyAttrs struct {
	Enabled *bool  `json:"enabled,omitempty"`
	Created *int64 `json:"created,omitempty"`
	Updated *int64 `json:"updated,omitempty"`
}

// certPolicy is CertificatePolicy on the wire and in storage (without id;
// created/updated are kept in the attributes).
type certPolicy struct {
	ID              string               `json:"id,omitempty"`
	KeyProps        *certKeyProps        `json:"key_props,omitempty"`
	SecretProps     *certSecretProps     `json:"secret_props,omitempty"`
	X509Props       *certX509Props       `json:"x509_props,omitempty"`
	LifetimeActions []certLifetimeAction `json:"lifetime_actions,omitempty"`
	Issuer          *certIssuer          `json:"issuer,omitempty"`
	Attributes      *certPolicyAttrs     `json:"attributes,omitempty"`
}

// certMeta is a certificate version's metadata and its DER certificate.
// Nothing of it is secret.
type certMeta struct {
	Name        string            `json:"n"`
	Version     string            `json:"v"`
	Enabled     bool              `json:"e"`
	NotBefore   int64             `json:"nbf"`
	Expires     int64             `json:"exp"`
	Created     int64             `json:"c"`
	Updated     int64             `json:"u"`
	Tags        map[string]string `json:"t,omitempty"`
	ContentType string            `json:"ct"`
	DER         []byte            `json:"der"`
	X5t         []byte            `json:"x5t"` // SHA-1 of DER
}

type certHeadRec struct {
	Meta certMeta `json:"m"`
}

type certDeletedRec struct {
	Meta        certMeta `json:"m"`
	DeletedDate int64    `json:"dd"`
	PurgeAt     int64    `json:"pa"`
}

// certOpRec is the certificate operation of the latest create.
type certOpRec struct {
	Name          string            `json:"n"`
	Issuer        certIssuer        `json:"i"`
	CSR           []byte            `json:"csr,omitempty"`
	Status        string            `json:"s"`
	StatusDetails string            `json:"sd,omitempty"`
	Cancel        bool              `json:"cr,omitempty"`
	RequestID     string            `json:"rid"`
	Error         *certOpErr        `json:"err,omitempty"`
	Policy        *certPolicy       `json:"p,omitempty"` // Unknown issuer: the policy to complete with
	Tags          map[string]string `json:"t,omitempty"`
	Enabled       *bool             `json:"e,omitempty"`
}

type certOpErr struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Wire shapes.

// certWire is CertificateBundle, CertificateItem, DeletedCertificateBundle
// and DeletedCertificateItem in one.
type certWire struct {
	ID           string            `json:"id"`
	Kid          string            `json:"kid,omitempty"`
	Sid          string            `json:"sid,omitempty"`
	X5t          string            `json:"x5t,omitempty"`
	Cer          string            `json:"cer,omitempty"`
	ContentType  string            `json:"contentType,omitempty"`
	Attributes   attributesWire    `json:"attributes"`
	Tags         map[string]string `json:"tags,omitempty"`
	Policy       *certPolicy       `json:"policy,omitempty"`
	Pending      *certPendingRef   `json:"pending,omitempty"`
	deletionWire                   // set for deleted objects only
}

// certPendingRef names the operation of a certificate not yet issued.
type certPendingRef struct {
	ID string `json:"id"`
}

type certOpWire struct {
	ID            string      `json:"id"`
	Issuer        *certIssuer `json:"issuer,omitempty"`
	CSR           string      `json:"csr,omitempty"`
	Cancel        bool        `json:"cancellation_requested"`
	Status        string      `json:"status"`
	StatusDetails string      `json:"status_details,omitempty"`
	Error         *certOpErr  `json:"error,omitempty"`
	Target        string      `json:"target,omitempty"`
	RequestID     string      `json:"request_id,omitempty"`
}

// certIn is the body of create, import and update.
type certIn struct {
	Value             *string            `json:"value"`
	Pwd               *string            `json:"pwd"`
	Policy            *certPolicy        `json:"policy"`
	Attributes        *attributesIn      `json:"attributes"`
	Tags              map[string]*string `json:"tags"`
	PreserveCertOrder *bool              `json:"preserveCertOrder"`
}

type certOpIn struct {
	Cancel *bool `json:"cancellation_requested"`
}

type certMergeIn struct {
	X5c        []string           `json:"x5c"`
	Attributes *attributesIn      `json:"attributes"`
	Tags       map[string]*string `json:"tags"`
}

// certRequest is a validated create, import or update.
type certRequest struct {
	Policy  *certPolicy
	Value   string
	Pwd     string
	Enabled *bool
	Tags    map[string]string
	TagsSet bool
	// renews is set by automatic renewal: the version being renewed, which
	// must still be the latest when the new one is written (another
	// replica may have renewed it first).
	renews string
}

func parseCertBody(body []byte) (*certIn, *certRequest, *azerr.Error) {
	var in certIn
	if e := decodeJSON(body, &in); e != nil {
		return nil, nil, e
	}
	req := &certRequest{Policy: in.Policy}
	if in.Attributes != nil {
		req.Enabled = in.Attributes.Enabled
	}
	if in.Tags != nil {
		tags, e := parseTags(in.Tags)
		if e != nil {
			return nil, nil, e
		}
		req.Tags, req.TagsSet = tags, true
	}
	if in.Pwd != nil {
		if len(*in.Pwd) > maxCertPasswordLen {
			return nil, nil, azerr.BadParameter("Property 'pwd' exceeds the maximum length of %d characters.", maxCertPasswordLen)
		}
		req.Pwd = *in.Pwd
	}
	if in.Value != nil {
		if len(*in.Value) > maxCertImportBytes {
			return nil, nil, azerr.BadParameter("The certificate to import exceeds the maximum size of %d bytes.", maxCertImportBytes)
		}
		req.Value = *in.Value
	}
	return &in, req, nil
}

// normalizePolicy validates p and fills its defaults. A create needs an
// issuer and a subject or SANs; an import's policy may leave the X.509
// properties to the imported certificate.
func normalizePolicy(p *certPolicy, forCreate bool) *azerr.Error {
	if p.Issuer == nil {
		p.Issuer = &certIssuer{}
	}
	switch strings.ToLower(p.Issuer.Name) {
	case "self":
		p.Issuer.Name = issuerSelf
	case "unknown":
		p.Issuer.Name = issuerUnknown
	case "":
		if forCreate {
			return azerr.BadParameter("Property 'policy.issuer.name' is required: use 'Self' for a self-signed certificate or 'Unknown' to merge a certificate signed elsewhere.")
		}
		p.Issuer.Name = issuerUnknown
	default:
		return azerr.BadParameter("Issuer '%s' is not supported: keyhaven has no certificate authority integration. Use 'Self' (self-signed) or 'Unknown' (sign the pending operation's CSR elsewhere and merge the result).", clip(p.Issuer.Name, 64))
	}
	if len(p.Issuer.Cty) > 64 {
		return azerr.BadParameter("Property 'policy.issuer.cty' is too long.")
	}
	if p.KeyProps == nil {
		p.KeyProps = &certKeyProps{}
	}
	kp := p.KeyProps
	switch kp.Kty {
	case "", ktyRSA:
		if kp.Crv != "" && kp.Kty == "" {
			kp.Kty = ktyEC
		} else {
			kp.Kty = ktyRSA
		}
	case ktyEC:
	case "RSA-HSM", "EC-HSM", "oct-HSM":
		return errHSMUnsupported()
	default:
		return azerr.BadParameter("Key type '%s' is not supported for certificates; use RSA or EC.", clip(kp.Kty, 20))
	}
	if kp.Kty == ktyRSA {
		if kp.Crv != "" {
			return azerr.BadParameter("Property 'crv' does not apply to RSA keys.")
		}
		if kp.KeySize == 0 {
			kp.KeySize = 2048
		}
		if kp.KeySize != 2048 && kp.KeySize != 3072 && kp.KeySize != 4096 {
			return azerr.BadParameter("RSA key size must be 2048, 3072 or 4096 bits.")
		}
	} else {
		if kp.KeySize != 0 {
			return azerr.BadParameter("Property 'key_size' does not apply to EC keys; name the curve with 'crv'.")
		}
		if kp.Crv == "" {
			kp.Crv = "P-256"
		}
		crv, e := parseCurve(kp.Crv)
		if e != nil {
			return e
		}
		kp.Crv = crv
	}
	if kp.Exportable == nil {
		t := true
		kp.Exportable = &t
	}
	if kp.ReuseKey == nil {
		f := false
		kp.ReuseKey = &f
	}
	if p.SecretProps == nil {
		p.SecretProps = &certSecretProps{}
	}
	switch strings.ToLower(p.SecretProps.ContentType) {
	case "", ctPKCS12:
		p.SecretProps.ContentType = ctPKCS12
	case ctPEM:
		p.SecretProps.ContentType = ctPEM
	default:
		return azerr.BadParameter("Secret content type '%s' is not supported; use %s or %s.", clip(p.SecretProps.ContentType, 64), ctPKCS12, ctPEM)
	}
	if p.X509Props == nil {
		p.X509Props = &certX509Props{}
	}
	if e := normalizeX509(p.X509Props, kp.Kty, forCreate); e != nil {
		return e
	}
	if len(p.LifetimeActions) > maxLifetimeActions {
		return azerr.BadParameter("A policy has at most %d lifetime action.", maxLifetimeActions)
	}
	for _, la := range p.LifetimeActions {
		if la.Action == nil || (la.Action.ActionType != "AutoRenew" && la.Action.ActionType != "EmailContacts") {
			return azerr.BadParameter("A lifetime action's 'action_type' must be AutoRenew or EmailContacts.")
		}
		if la.Trigger == nil || (la.Trigger.LifetimePercentage == nil) == (la.Trigger.DaysBeforeExpiry == nil) {
			return azerr.BadParameter("A lifetime action's trigger names exactly one of 'lifetime_percentage' and 'days_before_expiry'.")
		}
		if v := la.Trigger.LifetimePercentage; v != nil && (*v < 1 || *v > 99) {
			return azerr.BadParameter("Property 'lifetime_percentage' must be between 1 and 99.")
		}
		// As Key Vault: at most 27 days per month of validity, so the
		// trigger always falls inside a certificate's lifetime.
		if v, m := la.Trigger.DaysBeforeExpiry, p.X509Props.ValidityMonths; v != nil && m > 0 && (*v < 1 || *v > 27*m) {
			return azerr.BadParameter("Property 'days_before_expiry' must be between 1 and %d (27 days for each of the %d months of validity_months).", 27*m, m)
		}
		if v := la.Trigger.DaysBeforeExpiry; v != nil && (*v < 1 || *v > 36500) {
			return azerr.BadParameter("Property 'days_before_expiry' must be between 1 and 36500.")
		}
	}
	return nil
}

func normalizeX509(x *certX509Props, kty string, forCreate bool) *azerr.Error {
	if len(x.Subject) > maxCertSubjectLen {
		return azerr.BadParameter("The subject exceeds the maximum length of %d characters.", maxCertSubjectLen)
	}
	if x.Subject != "" {
		if _, e := parseSubject(x.Subject); e != nil {
			return e
		}
	}
	if x.SANs.count() > maxCertSANs {
		return azerr.BadParameter("A certificate has at most %d subject alternative names.", maxCertSANs)
	}
	if forCreate && x.Subject == "" && x.SANs.count() == 0 {
		return azerr.BadParameter("The policy must name a subject ('x509_props.subject') or subject alternative names.")
	}
	if x.SANs != nil {
		if e := checkSANs(x.SANs); e != nil {
			return e
		}
	}
	if x.ValidityMonths == 0 && forCreate {
		x.ValidityMonths = 12
	}
	if x.ValidityMonths < 0 || x.ValidityMonths > maxCertValidityMonth {
		return azerr.BadParameter("Property 'validity_months' must be between 1 and %d.", maxCertValidityMonth)
	}
	if len(x.KeyUsage) > len(keyUsageNames) {
		return azerr.BadParameter("Too many key usages.")
	}
	var ku []string
	for _, u := range x.KeyUsage {
		if !slices.Contains(keyUsageNames, u) {
			return azerr.BadParameter("Key usage '%s' is invalid; valid key usages: %s.", clip(u, 32), strings.Join(keyUsageNames, ", "))
		}
		if !slices.Contains(ku, u) {
			ku = append(ku, u)
		}
	}
	x.KeyUsage = ku
	if x.KeyUsage == nil && forCreate {
		if kty == ktyEC {
			x.KeyUsage = []string{"digitalSignature"}
		} else {
			x.KeyUsage = []string{"digitalSignature", "keyEncipherment"}
		}
	}
	if len(x.Ekus) > maxCertEKUs {
		return azerr.BadParameter("A certificate has at most %d enhanced key usages.", maxCertEKUs)
	}
	for _, o := range x.Ekus {
		if _, ok := parseOID(o); !ok {
			return azerr.BadParameter("Enhanced key usage '%s' is not an object identifier (e.g. 1.3.6.1.5.5.7.3.1).", clip(o, 64))
		}
	}
	if x.Ekus == nil && forCreate {
		x.Ekus = slices.Clone(defaultEKUs)
	}
	return nil
}

func checkSANs(s *certSANs) *azerr.Error {
	for _, v := range slices.Concat(s.Emails, s.DNSNames, s.UPNs, s.URIs, s.IPAddresses) {
		if v == "" || len(v) > maxCertSANLen {
			return azerr.BadParameter("Subject alternative names must be 1 to %d characters long.", maxCertSANLen)
		}
	}
	for _, d := range s.DNSNames {
		if !validDNSName(d) {
			return azerr.BadParameter("'%s' is not a valid DNS name.", clip(d, 64))
		}
	}
	for _, e := range s.Emails {
		if a, err := mail.ParseAddress(e); err != nil || a.Address != e {
			return azerr.BadParameter("'%s' is not a valid e-mail address.", clip(e, 64))
		}
	}
	for _, ip := range s.IPAddresses {
		if net.ParseIP(ip) == nil {
			return azerr.BadParameter("'%s' is not a valid IP address.", clip(ip, 64))
		}
	}
	for _, u := range s.URIs {
		if p, err := url.Parse(u); err != nil || p.Scheme == "" {
			return azerr.BadParameter("'%s' is not a valid absolute URI.", clip(u, 64))
		}
	}
	if len(s.UPNs) > 0 {
		return azerr.BadParameter("User principal names ('upns') in subject alternative names are not supported by keyhaven; use emails, dns_names, ipAddresses or uris.")
	}
	return nil
}

func validDNSName(d string) bool {
	d = strings.TrimPrefix(d, "*.")
	if d == "" || len(d) > 253 {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func parseOID(s string) (asn1.ObjectIdentifier, bool) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 32 {
		return nil, false
	}
	oid := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || (p != "0" && p[0] == '0') {
			return nil, false
		}
		oid[i] = n
	}
	if oid[0] > 2 || (oid[0] < 2 && oid[1] > 39) {
		return nil, false
	}
	return oid, true
}

// mergePolicy applies the fields of upd that were sent onto p (PATCH
// /policy).
func mergePolicy(p, upd *certPolicy) {
	if upd.KeyProps != nil {
		p.KeyProps = upd.KeyProps
	}
	if upd.SecretProps != nil {
		p.SecretProps = upd.SecretProps
	}
	if upd.X509Props != nil {
		x := p.X509Props
		if x == nil {
			x = &certX509Props{}
		}
		u := upd.X509Props
		if u.Subject != "" {
			x.Subject = u.Subject
		}
		if u.SANs != nil {
			x.SANs = u.SANs
		}
		if u.Ekus != nil {
			x.Ekus = u.Ekus
		}
		if u.KeyUsage != nil {
			x.KeyUsage = u.KeyUsage
		}
		if u.ValidityMonths != 0 {
			x.ValidityMonths = u.ValidityMonths
		}
		p.X509Props = x
	}
	if upd.LifetimeActions != nil {
		p.LifetimeActions = upd.LifetimeActions
	}
	if upd.Issuer != nil {
		p.Issuer = upd.Issuer
	}
	if upd.Attributes != nil && upd.Attributes.Enabled != nil {
		if p.Attributes == nil {
			p.Attributes = &certPolicyAttrs{}
		}
		p.Attributes.Enabled = upd.Attributes.Enabled
	}
}
