package vault

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"strings"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// parseSubject reads a distinguished name as Key Vault takes it:
// "CN=name, O=org, OU=unit, L=city, ST=state, C=country, E=mail",
// separated by commas or semicolons. Escaped separators are not supported.
func parseSubject(s string) (pkix.Name, *azerr.Error) {
	var n pkix.Name
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' })
	if len(parts) == 0 || len(parts) > 32 {
		return n, azerr.BadParameter("The subject '%s' is not a valid distinguished name (e.g. CN=example.com, O=Contoso).", clip(s, 64))
	}
	for _, p := range parts {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		k, v = strings.ToUpper(strings.TrimSpace(k)), strings.TrimSpace(v)
		if !ok || v == "" || len(v) > 256 {
			return n, azerr.BadParameter("The subject '%s' is not a valid distinguished name (e.g. CN=example.com, O=Contoso).", clip(s, 64))
		}
		switch k {
		case "CN":
			n.CommonName = v
		case "O":
			n.Organization = append(n.Organization, v)
		case "OU":
			n.OrganizationalUnit = append(n.OrganizationalUnit, v)
		case "L":
			n.Locality = append(n.Locality, v)
		case "ST", "S":
			n.Province = append(n.Province, v)
		case "C":
			n.Country = append(n.Country, v)
		case "STREET":
			n.StreetAddress = append(n.StreetAddress, v)
		case "POSTALCODE":
			n.PostalCode = append(n.PostalCode, v)
		case "SERIALNUMBER":
			n.SerialNumber = v
		case "E", "EMAIL", "EMAILADDRESS":
			n.ExtraNames = append(n.ExtraNames, pkix.AttributeTypeAndValue{Type: oidEmailAddress, Value: v})
		default:
			return n, azerr.BadParameter("Attribute '%s' of the subject is not supported; use CN, O, OU, L, ST, C, STREET, POSTALCODE, SERIALNUMBER or E.", clip(k, 32))
		}
	}
	return n, nil
}

var oidEmailAddress = []int{1, 2, 840, 113549, 1, 9, 1}

var keyUsageBits = map[string]x509.KeyUsage{
	"digitalSignature": x509.KeyUsageDigitalSignature, "nonRepudiation": x509.KeyUsageContentCommitment,
	"keyEncipherment": x509.KeyUsageKeyEncipherment, "dataEncipherment": x509.KeyUsageDataEncipherment,
	"keyAgreement": x509.KeyUsageKeyAgreement, "keyCertSign": x509.KeyUsageCertSign, "cRLSign": x509.KeyUsageCRLSign,
	"encipherOnly": x509.KeyUsageEncipherOnly, "decipherOnly": x509.KeyUsageDecipherOnly,
}

// certTemplate is the template (or CSR content) a validated policy names.
func certTemplate(rnd io.Reader, p *certPolicy, now time.Time) (*x509.Certificate, error) {
	x := p.X509Props
	subj := pkix.Name{}
	if x.Subject != "" {
		var e *azerr.Error
		if subj, e = parseSubject(x.Subject); e != nil {
			return nil, e
		}
	}
	serial, err := rand128(rnd)
	if err != nil {
		return nil, err
	}
	t := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subj,
		NotBefore:             now.Add(-5 * time.Minute).Truncate(time.Second),
		NotAfter:              now.AddDate(0, x.ValidityMonths, 0).Truncate(time.Second),
		BasicConstraintsValid: true,
	}
	for _, u := range x.KeyUsage {
		t.KeyUsage |= keyUsageBits[u]
	}
	for _, o := range x.Ekus {
		oid, _ := parseOID(o)
		t.UnknownExtKeyUsage = append(t.UnknownExtKeyUsage, oid)
	}
	if s := x.SANs; s != nil {
		t.DNSNames = s.DNSNames
		t.EmailAddresses = s.Emails
		for _, ip := range s.IPAddresses {
			t.IPAddresses = append(t.IPAddresses, net.ParseIP(ip))
		}
		for _, u := range s.URIs {
			pu, _ := url.Parse(u)
			t.URIs = append(t.URIs, pu)
		}
	}
	return t, nil
}

func rand128(rnd io.Reader) (*big.Int, error) {
	var b [16]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return nil, fmt.Errorf("vault: serial number: %w", err)
	}
	b[0] &= 0x7f
	b[0] |= 0x40 // positive and full length
	return new(big.Int).SetBytes(b[:]), nil
}

func sigAlgOf(k crypto.Signer) x509.SignatureAlgorithm {
	if ek, ok := k.Public().(*ecdsa.PublicKey); ok {
		switch ek.Curve {
		case elliptic.P384():
			return x509.ECDSAWithSHA384
		case elliptic.P521():
			return x509.ECDSAWithSHA512
		}
		return x509.ECDSAWithSHA256
	}
	return x509.SHA256WithRSA
}

// selfSign issues the self-signed certificate a policy describes.
func selfSign(rnd io.Reader, k crypto.Signer, p *certPolicy, now time.Time) ([]byte, error) {
	t, err := certTemplate(rnd, p, now)
	if err != nil {
		return nil, err
	}
	t.SignatureAlgorithm = sigAlgOf(k)
	return x509.CreateCertificate(rnd, t, t, k.Public(), k)
}

// makeCSR builds the PKCS #10 request of a certificate operation.
func makeCSR(rnd io.Reader, k crypto.Signer, p *certPolicy, now time.Time) ([]byte, error) {
	t, err := certTemplate(rnd, p, now)
	if err != nil {
		return nil, err
	}
	return x509.CreateCertificateRequest(rnd, &x509.CertificateRequest{
		Subject: t.Subject, DNSNames: t.DNSNames, EmailAddresses: t.EmailAddresses,
		IPAddresses: t.IPAddresses, URIs: t.URIs, SignatureAlgorithm: sigAlgOf(k),
	}, k)
}

func x5tOf(der []byte) []byte { s := sha1.Sum(der); return s[:] }

// secretValue renders the backing secret: the certificate chain with the
// private key (when exportable) as PKCS #12 (base64, no password, as Key
// Vault exports it) or PEM (key first).
func secretValue(rnd io.Reader, contentType string, k crypto.Signer, chain []*x509.Certificate, exportable bool) (string, error) {
	if contentType == ctPEM {
		var b bytes.Buffer
		if exportable {
			der, err := x509.MarshalPKCS8PrivateKey(k)
			if err != nil {
				return "", err
			}
			_ = pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
			clear(der)
		}
		for _, c := range chain {
			_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		}
		return b.String(), nil
	}
	enc := pkcs12.Modern.WithRand(rnd)
	var pfx []byte
	var err error
	if exportable {
		pfx, err = enc.Encode(k, chain[0], chain[1:], "")
	} else {
		pfx, err = enc.EncodeTrustStore(chain, "")
	}
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(pfx), nil
}

// convertOut answers a secret GET's outContentType: a certificate's secret
// stored as PKCS #12 can be read as PEM (key first, then the chain, as
// secretValue writes PEM); asking for the stored format changes nothing, and
// every other request is refused. It returns the value and its content type.
func convertOut(m *meta, plain []byte, want string) (string, string, *azerr.Error) {
	if want == "" || (m.Managed && want == m.ContentType) {
		return string(plain), m.ContentType, nil
	}
	if want != ctPEM && want != ctPKCS12 {
		return "", "", azerr.BadParameter("The outContentType '%s' is not supported; use %s or %s.", clip(want, 60), ctPKCS12, ctPEM)
	}
	if !m.Managed {
		return "", "", azerr.BadParameter("outContentType applies only to the secret of a certificate.")
	}
	if m.ContentType != ctPKCS12 || want != ctPEM {
		return "", "", azerr.BadParameter("Only a certificate stored as %s can be converted, and only to %s.", ctPKCS12, ctPEM)
	}
	raw, err := base64.StdEncoding.DecodeString(string(plain))
	if err != nil {
		return "", "", azerr.Internal(fmt.Errorf("certificate secret %s/%s is not base64 PKCS #12", m.Name, m.Version))
	}
	defer clear(raw)
	var b bytes.Buffer
	k, leaf, cas, err := pkcs12.DecodeChain(raw, "")
	if err == nil {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return "", "", azerr.Internal(err)
		}
		_ = pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
		clear(der)
		cas = append([]*x509.Certificate{leaf}, cas...)
	} else if cas, err = pkcs12.DecodeTrustStore(raw, ""); err != nil { // a non-exportable key: the chain only
		return "", "", azerr.Internal(fmt.Errorf("certificate secret %s/%s cannot be decoded as PKCS #12", m.Name, m.Version))
	}
	for _, c := range cas {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.String(), ctPEM, nil
}

func errBadCertImport(format string, args ...any) *azerr.Error {
	return azerr.BadParameter(format, args...)
}

// parseCertImport reads an import's value: PEM (certificates and an
// unencrypted private key, in any order) or base64 PKCS #12 with an optional
// password. It returns the private key, the chain with the certificate of
// that key first, and the content type of the format. It never echoes the
// value or the password.
func parseCertImport(value, pwd string) (crypto.Signer, []*x509.Certificate, string, *azerr.Error) {
	if len(value) > maxCertImportBytes {
		return nil, nil, "", errBadCertImport("The certificate to import exceeds the maximum size of %d bytes.", maxCertImportBytes)
	}
	trimmed := strings.TrimSpace(value)
	if trimmed == "" {
		return nil, nil, "", errBadCertImport("Property 'value' (the certificate to import) is required.")
	}
	var key any
	var certs []*x509.Certificate
	ct := ctPKCS12
	// PEM may carry text around its blocks (openssl's "Bag Attributes").
	if strings.Contains(trimmed, "-----BEGIN") {
		ct = ctPEM
		rest := []byte(trimmed)
		for n := 0; ; n++ {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if n > maxCertChain+1 {
				return nil, nil, "", errBadCertImport("The PEM content holds too many blocks (at most %d certificates and one key).", maxCertChain)
			}
			switch b.Type {
			case "CERTIFICATE":
				c, err := x509.ParseCertificate(b.Bytes)
				if err != nil {
					return nil, nil, "", errBadCertImport("The PEM content holds a certificate that cannot be parsed.")
				}
				certs = append(certs, c)
			case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
				if key != nil {
					return nil, nil, "", errBadCertImport("The PEM content holds more than one private key.")
				}
				k, err := parsePEMKey(b)
				if err != nil {
					return nil, nil, "", errBadCertImport("The PEM private key cannot be parsed.")
				}
				key = k
			case "ENCRYPTED PRIVATE KEY":
				return nil, nil, "", errBadCertImport("Encrypted PEM private keys are not supported; import a PKCS #12 (PFX) file with its password, or an unencrypted PEM key.")
			default:
				return nil, nil, "", errBadCertImport("PEM block type '%s' is not expected in a certificate import.", clip(b.Type, 40))
			}
		}
		if strings.TrimSpace(string(rest)) != "" {
			return nil, nil, "", errBadCertImport("The PEM content could not be read to its end.")
		}
	} else {
		raw, err := base64.StdEncoding.DecodeString(trimmed)
		if err != nil {
			raw, err = decodeBase64URL(trimmed)
		}
		if err != nil {
			return nil, nil, "", errBadCertImport("The certificate to import is neither PEM nor base64-encoded PKCS #12 (PFX).")
		}
		k, leaf, cas, err := pkcs12.DecodeChain(raw, pwd)
		if errors.Is(err, pkcs12.ErrIncorrectPassword) {
			return nil, nil, "", errBadCertImport("The password of the PKCS #12 (PFX) file is incorrect.")
		}
		if err != nil {
			return nil, nil, "", errBadCertImport("The PKCS #12 (PFX) file cannot be read: it must hold one private key and its certificate.")
		}
		key = k
		certs = append([]*x509.Certificate{leaf}, cas...)
	}
	if key == nil {
		return nil, nil, "", errBadCertImport("The certificate to import has no private key.")
	}
	if len(certs) == 0 {
		return nil, nil, "", errBadCertImport("The certificate to import holds no certificate.")
	}
	if len(certs) > maxCertChain {
		return nil, nil, "", errBadCertImport("A certificate chain holds at most %d certificates.", maxCertChain)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, "", errBadCertImport("The private key type is not supported; use RSA or EC.")
	}
	if e := checkCertKey(signer); e != nil {
		return nil, nil, "", e
	}
	// The certificate of the key goes first.
	idx := -1
	for i, c := range certs {
		if pub, ok := c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); ok && pub.Equal(signer.Public()) {
			idx = i
			break
		}
	}
	if idx < 0 {
		return nil, nil, "", errBadCertImport("The private key does not match any certificate of the import.")
	}
	if idx != 0 {
		certs[0], certs[idx] = certs[idx], certs[0]
	}
	return signer, certs, ct, nil
}

func parsePEMKey(b *pem.Block) (any, error) {
	switch b.Type {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(b.Bytes)
	}
	return x509.ParsePKCS8PrivateKey(b.Bytes)
}

// checkCertKey accepts the key types the keys plane keeps.
func checkCertKey(k crypto.Signer) *azerr.Error {
	switch pk := k.(type) {
	case *rsa.PrivateKey:
		if n := pk.N.BitLen(); n != 2048 && n != 3072 && n != 4096 {
			return azerr.BadParameter("RSA certificate keys must be 2048, 3072 or 4096 bits (this one has %d).", n)
		}
		if pk.E != 65537 {
			return azerr.BadParameter("Only the public exponent 65537 is supported.")
		}
		if err := pk.Validate(); err != nil {
			return errBadRSAImport()
		}
	case *ecdsa.PrivateKey:
		switch pk.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return azerr.BadParameter("EC certificate keys must use P-256, P-384 or P-521.")
		}
	default:
		return azerr.BadParameter("The private key type is not supported; use RSA or EC.")
	}
	return nil
}

// policyFromCert describes an imported certificate as a policy (issuer
// Unknown), the policy Key Vault gives imports that send none.
func policyFromCert(c *x509.Certificate, k crypto.Signer, ct string) *certPolicy {
	t := true
	f := false
	kp := &certKeyProps{Exportable: &t, ReuseKey: &f}
	switch pk := k.(type) {
	case *rsa.PrivateKey:
		kp.Kty, kp.KeySize = ktyRSA, pk.N.BitLen()
	case *ecdsa.PrivateKey:
		kp.Kty, kp.Crv = ktyEC, pk.Curve.Params().Name
	}
	x := &certX509Props{Subject: subjectString(c.Subject)}
	months := int(c.NotAfter.Sub(c.NotBefore).Hours()/(24*30.4375) + 0.5)
	x.ValidityMonths = min(max(months, 1), maxCertValidityMonth)
	for name, bit := range keyUsageBits {
		if c.KeyUsage&bit != 0 {
			x.KeyUsage = append(x.KeyUsage, name)
		}
	}
	sortByOrder(x.KeyUsage, keyUsageNames)
	for _, u := range c.ExtKeyUsage {
		if o, ok := extKeyUsageOIDs[u]; ok {
			x.Ekus = append(x.Ekus, o)
		}
	}
	for _, o := range c.UnknownExtKeyUsage {
		x.Ekus = append(x.Ekus, o.String())
	}
	if len(c.DNSNames)+len(c.EmailAddresses)+len(c.IPAddresses)+len(c.URIs) > 0 {
		s := &certSANs{DNSNames: c.DNSNames, Emails: c.EmailAddresses}
		for _, ip := range c.IPAddresses {
			s.IPAddresses = append(s.IPAddresses, ip.String())
		}
		for _, u := range c.URIs {
			s.URIs = append(s.URIs, u.String())
		}
		x.SANs = s
	}
	pct := 80
	return &certPolicy{
		KeyProps: kp, SecretProps: &certSecretProps{ContentType: ct}, X509Props: x,
		LifetimeActions: []certLifetimeAction{{Trigger: &certTrigger{LifetimePercentage: &pct}, Action: &certAction{ActionType: "EmailContacts"}}},
		Issuer:          &certIssuer{Name: issuerUnknown},
	}
}

var extKeyUsageOIDs = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageServerAuth: "1.3.6.1.5.5.7.3.1", x509.ExtKeyUsageClientAuth: "1.3.6.1.5.5.7.3.2",
	x509.ExtKeyUsageCodeSigning: "1.3.6.1.5.5.7.3.3", x509.ExtKeyUsageEmailProtection: "1.3.6.1.5.5.7.3.4",
	x509.ExtKeyUsageTimeStamping: "1.3.6.1.5.5.7.3.8", x509.ExtKeyUsageOCSPSigning: "1.3.6.1.5.5.7.3.9",
}

func sortByOrder(s []string, order []string) {
	i := 0
	for _, o := range order {
		for j := i; j < len(s); j++ {
			if s[j] == o {
				s[i], s[j] = s[j], s[i]
				i++
				break
			}
		}
	}
}

// subjectString renders a name in Key Vault's "CN=a, O=b" order.
func subjectString(n pkix.Name) string {
	var parts []string
	add := func(k string, vs ...string) {
		for _, v := range vs {
			if v != "" && !strings.ContainsAny(v, ",;") {
				parts = append(parts, k+"="+v)
			}
		}
	}
	add("CN", n.CommonName)
	add("OU", n.OrganizationalUnit...)
	add("O", n.Organization...)
	add("L", n.Locality...)
	add("ST", n.Province...)
	add("C", n.Country...)
	return strings.Join(parts, ", ")
}
