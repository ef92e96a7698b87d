package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/keyhaven/keyhaven/internal/clock"
)

// File names inside the directory given to EnsureServerTLS.
const (
	CACertFile     = "ca.pem"
	CAKeyFile      = "ca-key.pem"
	ServerCertFile = "server.pem"
	ServerKeyFile  = "server-key.pem"
)

// Certificate parameters.
const (
	CAName         = "keyhaven local CA"
	CAValidity     = 10 * 365 * 24 * time.Hour
	ServerValidity = 365 * 24 * time.Hour
	// RenewBefore: a certificate expiring sooner than this is replaced.
	RenewBefore = 30 * 24 * time.Hour
	// backdate tolerates clients whose clocks run a little behind.
	backdate = time.Hour

	maxPEMBytes = 1 << 20
)

// ErrInsecureKeyFile: a private key file is accessible by group or others.
var ErrInsecureKeyFile = errors.New("pki: private key file is accessible by group or others")

// Material is the TLS material a server listens with.
type Material struct {
	// Certificate is the server certificate (Leaf set) and its key.
	Certificate tls.Certificate
	// CACertFile is the path of the PEM CA certificate clients should trust;
	// "" for LoadServerTLS material.
	CACertFile string
	// CAPool holds the CA for clients; for LoadServerTLS it holds a
	// self-signed CA found at the end of the certificate file, else it is nil
	// (clients then use the system roots).
	CAPool *x509.CertPool
	// CACreated and Issued report what this call generated.
	CACreated bool
	Issued    bool
}

// ServerConfig returns a TLS server configuration (TLS 1.2 or later).
func (m *Material) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{m.Certificate},
	}
}

// ClientConfig returns a TLS client configuration trusting CAPool (system
// roots when CAPool is nil).
func (m *Material) ClientConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: m.CAPool}
}

// EnsureServerTLS returns the CA and server certificate kept in dir, creating
// or re-issuing them as needed (see the package doc). hosts are DNS names
// (wildcards like "*.vault.localhost" allowed) and IP addresses; empty means
// DefaultHosts. Time comes from clk.
func EnsureServerTLS(dir string, hosts []string, clk clock.Clock) (*Material, error) {
	want, err := parseHosts(hosts)
	if err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, errors.New("pki: empty TLS directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: create TLS directory: %w", err)
	}
	now := clk.Now()
	m := &Material{CACertFile: filepath.Join(dir, CACertFile)}

	caCert, caKey, err := loadCA(dir, now)
	if err != nil {
		return nil, err
	}
	if caCert == nil {
		if caCert, caKey, err = createCA(dir, now); err != nil {
			return nil, err
		}
		m.CACreated = true
	}
	m.CAPool = x509.NewCertPool()
	m.CAPool.AddCert(caCert)

	cert, ok, err := loadServer(dir, want, m.CAPool, now)
	if err != nil {
		return nil, err
	}
	if !ok {
		if cert, err = issueServer(dir, want, caCert, caKey, now); err != nil {
			return nil, err
		}
		m.Issued = true
	}
	m.Certificate = cert
	return m, nil
}

// LoadServerTLS loads an operator-supplied PEM certificate (leaf first, then
// any intermediates) and private key.
func LoadServerTLS(certFile, keyFile string) (*Material, error) {
	certPEM, err := readLimited(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readLimited(keyFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The tls error names the mismatch without quoting key bytes.
		return nil, fmt.Errorf("pki: %s / %s: %w", certFile, keyFile, err)
	}
	m := &Material{Certificate: cert}
	if n := len(cert.Certificate); n > 1 {
		last, err := x509.ParseCertificate(cert.Certificate[n-1])
		if err == nil && last.IsCA && last.CheckSignatureFrom(last) == nil {
			m.CAPool = x509.NewCertPool()
			m.CAPool.AddCert(last)
		}
	}
	return m, nil
}

// loadCA reads the CA pair. (nil, nil, nil) means "create one": the
// certificate is missing (including a crash between writing key and
// certificate) or expires within RenewBefore. A certificate whose key is
// missing or does not match is an error: silently replacing a CA clients
// may trust would break them.
func loadCA(dir string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, err := readLimited(certPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %s: %w", certPath, err)
	}
	if !cert.IsCA || cert.CheckSignatureFrom(cert) != nil {
		return nil, nil, fmt.Errorf("pki: %s is not a self-signed CA certificate", certPath)
	}
	if now.Add(RenewBefore).After(cert.NotAfter) {
		return nil, nil, nil
	}
	key, err := loadKey(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (remove %s and %s to create a new CA, then re-distribute %s)", err, certPath, keyPath, CACertFile)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, nil, fmt.Errorf("pki: %s does not match %s (remove both to create a new CA)", keyPath, certPath)
	}
	return cert, key, nil
}

func createCA(dir string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: CAName, Organization: []string{"keyhaven"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	// Key first: a crash before the certificate is written leaves no ca.pem,
	// and the next start simply creates a new CA.
	if err := writeKey(filepath.Join(dir, CAKeyFile), key); err != nil {
		return nil, nil, err
	}
	if err := writeCert(filepath.Join(dir, CACertFile), der); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// loadServer returns the stored server certificate if it is still fit for
// use: it parses, matches its key, chains to the CA now, lasts longer than
// RenewBefore and names every requested host. ok false means re-issue.
func loadServer(dir string, want sans, pool *x509.CertPool, now time.Time) (tls.Certificate, bool, error) {
	certPath, keyPath := filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile)
	certPEM, err := readLimited(certPath)
	if errors.Is(err, os.ErrNotExist) {
		return tls.Certificate{}, false, nil
	}
	if err != nil {
		return tls.Certificate{}, false, err
	}
	if err := checkKeyFileMode(keyPath); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return tls.Certificate{}, false, nil
		}
		return tls.Certificate{}, false, err
	}
	keyPEM, err := readLimited(keyPath)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, false, nil // torn write or replaced file: re-issue
	}
	leaf := cert.Leaf
	if leaf == nil {
		return tls.Certificate{}, false, nil
	}
	if now.Add(RenewBefore).After(leaf.NotAfter) || !want.coveredBy(leaf.DNSNames, leaf.IPAddresses) {
		return tls.Certificate{}, false, nil
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return tls.Certificate{}, false, nil
	}
	return cert, true, nil
}

func issueServer(dir string, want sans, caCert *x509.Certificate, caKey crypto.Signer, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: generate server key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return tls.Certificate{}, err
	}
	cn := "keyhaven server"
	if len(want.dns) > 0 {
		cn = want.dns[0]
	}
	notAfter := now.Add(ServerValidity)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"keyhaven"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              want.dns,
		IPAddresses:           want.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: create server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	// Key first; a crash in between leaves a mismatched pair, which the next
	// start detects and re-issues.
	if err := writeKey(filepath.Join(dir, ServerKeyFile), key); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeCert(filepath.Join(dir, ServerCertFile), der); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: generate serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil // positive, never zero
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// loadKey reads a PKCS#8 PEM private key, refusing group/world access.
func loadKey(path string) (crypto.Signer, error) {
	if err := checkKeyFileMode(path); err != nil {
		return nil, err
	}
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("pki: %s holds no PEM PRIVATE KEY block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: malformed private key", path)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: %s: unsupported private key type", path)
	}
	return s, nil
}

func checkKeyFileMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return err
		}
		return fmt.Errorf("pki: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; restrict it with chmod 600 %s", ErrInsecureKeyFile, path, fi.Mode().Perm(), path)
	}
	return nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("pki: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPEMBytes+1))
	if err != nil {
		return nil, fmt.Errorf("pki: read %s: %w", path, err)
	}
	if len(data) > maxPEMBytes {
		return nil, fmt.Errorf("pki: %s is larger than %d bytes", path, maxPEMBytes)
	}
	return data, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("pki: encode private key: %w", err)
	}
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func writeCert(path string, der []byte) error {
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// writeFileAtomic replaces path via a temporary file in the same directory
// (created 0600, so a key is never briefly readable), fsyncing file and dir.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".keyhaven-pki-*.tmp")
	if err != nil {
		return fmt.Errorf("pki: create temporary file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err == nil {
		if err = f.Chmod(mode); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("pki: install %s: %w", path, err)
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("pki: open %s: %w", dir, err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("pki: fsync %s: %w", dir, err)
	}
	return nil
}
