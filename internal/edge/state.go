package edge

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names in the state directory.
const (
	KeyFile   = "device.key"
	StateFile = "device.json"
	CAFile    = "ca.pem"

	keySize      = 32
	stateVersion = 1
	sealPrefix   = "khedge1:"
)

// Sealed field names (part of each value's additional data).
const (
	fieldIdentityHeader = "identityHeader"
	fieldDeviceSecrets  = "deviceSecrets"
	fieldCIK            = "channelIntegrityKey"
)

// State is device.json: the device's configuration, and its secrets sealed.
type State struct {
	Version          int               `json:"version"`
	Server           string            `json:"server"`
	DeviceID         string            `json:"deviceId"`
	TenantID         string            `json:"tenantId"`
	ClientID         string            `json:"clientId"`
	PrincipalID      string            `json:"principalId"`
	ResourceManager  string            `json:"resourceManager"`
	IdentityEndpoint string            `json:"identityEndpoint"`
	VaultAudience    string            `json:"vaultAudience"`
	KeyVaultID       string            `json:"keyVaultId"`
	KeyVaultURI      string            `json:"keyVaultUri"`
	CIKName          string            `json:"channelIntegrityKeyName"`
	CIKVersion       string            `json:"channelIntegrityKeyVersion,omitempty"`
	SecretNames      map[string]string `json:"deviceSecretNames"`
	ActivatedAt      time.Time         `json:"activatedAt"`
	Sealed           sealedFields      `json:"sealed"`
	LastSync         *SyncRecord       `json:"lastSync,omitempty"`
}

// sealedFields hold "khedge1:" + base64(nonce || AES-256-GCM ciphertext).
type sealedFields struct {
	IdentityHeader      string `json:"identityHeader"`
	DeviceSecrets       string `json:"deviceSecrets"`
	ChannelIntegrityKey string `json:"channelIntegrityKey,omitempty"`
}

// SyncRecord is the outcome of the last pass that pushed or checked.
type SyncRecord struct {
	Time        time.Time         `json:"time"`
	Status      string            `json:"status"`
	Reason      string            `json:"reason,omitempty"`
	KeyVaultURI string            `json:"keyVaultUri"`
	SecretIDs   map[string]string `json:"secretIds,omitempty"`
}

// sealer seals the state's secret fields under the device key.
type sealer struct {
	aead     cipher.AEAD
	deviceID string
}

func newSealer(key []byte, deviceID string) (*sealer, error) {
	if len(key) != keySize {
		return nil, fmt.Errorf("edge: the device key must be %d bytes", keySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, deviceID: strings.ToLower(deviceID)}, nil
}

func (s *sealer) aad(field string) []byte {
	return []byte("keyhaven-edge/v1\x00" + field + "\x00" + s.deviceID)
}

func (s *sealer) seal(field string, plaintext []byte) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return "", err
	}
	out := s.aead.Seal(nonce, nonce, plaintext, s.aad(field))
	return sealPrefix + base64.StdEncoding.EncodeToString(out), nil
}

var errOpen = errors.New("edge: a sealed value of the state file does not open with the device key (wrong key, or the file was altered)")

func (s *sealer) open(field, sealed string) ([]byte, error) {
	raw, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return nil, errOpen
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(b) < s.aead.NonceSize()+s.aead.Overhead() {
		return nil, errOpen
	}
	n := s.aead.NonceSize()
	pt, err := s.aead.Open(nil, b[:n], b[n:], s.aad(field))
	if err != nil {
		return nil, errOpen
	}
	return pt, nil
}

func (s *sealer) sealJSON(field string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return s.seal(field, b)
}

func (s *sealer) openJSON(field, sealed string, v any) error {
	b, err := s.open(field, sealed)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// checkPrivate refuses a file or directory group or others may access.
func checkPrivate(path string, fi fs.FileInfo) error {
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("edge: %s is accessible by group or others (mode %v); it must be private to the agent's user (chmod go-rwx)", path, fi.Mode().Perm())
	}
	return nil
}

// readPrivate reads a file after checking its mode.
func readPrivate(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := checkPrivate(path, fi); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

// writePrivate writes data to path (mode 0600) through a temporary file
// and a rename, syncing both.
func writePrivate(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		_ = f.Close()
		return err
	}
	if _, err = f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// store is an open state directory.
type store struct {
	dir   string
	state *State
	seal  *sealer
}

// openStore reads the state directory.
func openStore(dir string) (*store, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("edge: no device state in %s: activate the device first (keyhaven edge activate)", dir)
		}
		return nil, err
	}
	if err := checkPrivate(dir, fi); err != nil {
		return nil, err
	}
	key, err := readPrivate(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("edge: device key: %w", err)
	}
	b, err := readPrivate(filepath.Join(dir, StateFile))
	if err != nil {
		return nil, fmt.Errorf("edge: device state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("edge: %s is not a device state file: %w", StateFile, err)
	}
	if st.Version != stateVersion || st.DeviceID == "" {
		return nil, fmt.Errorf("edge: %s has an unsupported version %d", StateFile, st.Version)
	}
	s, err := newSealer(key, st.DeviceID)
	if err != nil {
		return nil, err
	}
	return &store{dir: dir, state: &st, seal: s}, nil
}

func (s *store) save() error {
	b, err := json.MarshalIndent(s.state, "", "  ")
	if err != nil {
		return err
	}
	return writePrivate(filepath.Join(s.dir, StateFile), append(b, '\n'))
}

// deviceSecrets opens the device secrets (name → value).
func (s *store) deviceSecrets() (map[string]string, error) {
	var m map[string]string
	if err := s.seal.openJSON(fieldDeviceSecrets, s.state.Sealed.DeviceSecrets, &m); err != nil {
		return nil, err
	}
	return m, nil
}

func (s *store) identityHeader() (string, error) {
	b, err := s.seal.open(fieldIdentityHeader, s.state.Sealed.IdentityHeader)
	return string(b), err
}

func (s *store) setCIK(value, version string) error {
	sealed, err := s.seal.seal(fieldCIK, []byte(value))
	if err != nil {
		return err
	}
	s.state.Sealed.ChannelIntegrityKey, s.state.CIKVersion = sealed, version
	return nil
}

// CIK opens the Channel Integrity Key the agent keeps ("" before the first
// pass read it).
func (a *Agent) CIK() (string, error) {
	if a.st.state.Sealed.ChannelIntegrityKey == "" {
		return "", nil
	}
	b, err := a.st.seal.open(fieldCIK, a.st.state.Sealed.ChannelIntegrityKey)
	return string(b), err
}
