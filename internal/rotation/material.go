package rotation

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"golang.org/x/crypto/ssh"
)

// material is a credential value. Which fields are set depends on the kind.
type material struct {
	Password      string `json:"password,omitempty"`
	SSHPrivateKey string `json:"sshPrivateKey,omitempty"` // OpenSSH PEM
	SSHPublicKey  string `json:"sshPublicKey,omitempty"`  // authorized_keys line
	Key           string `json:"key,omitempty"`           // base64 of 32 random bytes
}

func initialMaterial(kind Kind, b []byte) material {
	if kind == KindLocalPathStorage {
		return material{Key: string(b)}
	}
	return material{Password: string(b)}
}

// loginSecret is what the driver authenticates with.
func (m material) loginSecret(kind Kind) []byte {
	if kind == KindLocalPathStorage {
		return []byte(m.Key)
	}
	return []byte(m.Password)
}

// archiveValue is the secret value delivered to the customer vault.
func (m material) archiveValue(kind Kind) (value, contentType string, err error) {
	switch kind {
	case KindConsoleUser:
		b, err := json.Marshal(m)
		return string(b), "application/json", err
	case KindLocalPathStorage:
		return m.Key, "application/octet-stream;base64", nil
	}
	return m.Password, "text/plain", nil
}

const (
	pwUpper   = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	pwLower   = "abcdefghijkmnopqrstuvwxyz"
	pwDigits  = "23456789"
	pwSymbols = "!#%+-.:=?@^_~" // no quotes, backslash, '$', '&', '<', '>', '`', ';' or '|'
)

func randIndex(n int) (int, error) {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		return 0, err
	}
	return int(v.Int64()), nil
}

// newPassword returns 16–20 characters holding every class.
func newPassword() (string, error) {
	extra, err := randIndex(5)
	if err != nil {
		return "", err
	}
	n := 16 + extra
	classes := []string{pwUpper, pwLower, pwDigits, pwSymbols}
	all := strings.Join(classes, "")
	out := make([]byte, n)
	for i := range out {
		set := all
		if i < len(classes) {
			set = classes[i]
		}
		j, err := randIndex(len(set))
		if err != nil {
			return "", err
		}
		out[i] = set[j]
	}
	for i := n - 1; i > 0; i-- { // Fisher–Yates with crypto/rand
		j, err := randIndex(i + 1)
		if err != nil {
			return "", err
		}
		out[i], out[j] = out[j], out[i]
	}
	return string(out), nil
}

// generate creates a new value for kind with crypto/rand.
func generate(kind Kind, comment string) (material, error) {
	switch kind {
	case KindLocalPathStorage:
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return material{}, err
		}
		return material{Key: base64.StdEncoding.EncodeToString(b)}, nil
	case KindConsoleUser:
		pw, err := newPassword()
		if err != nil {
			return material{}, err
		}
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return material{}, err
		}
		spub, err := ssh.NewPublicKey(pub)
		if err != nil {
			return material{}, err
		}
		blk, err := ssh.MarshalPrivateKey(priv, comment)
		if err != nil {
			return material{}, err
		}
		return material{Password: pw, SSHPrivateKey: string(pem.EncodeToMemory(blk)),
			SSHPublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(spub))) + " " + comment}, nil
	}
	pw, err := newPassword()
	return material{Password: pw}, err
}

func valueAAD(credID, valueID string) []byte { return []byte("rotation|" + credID + "|" + valueID) }

func (e *Service) sealValue(ctx context.Context, credID string, m material) (*sealedValue, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	id := newAlertID(e.clk.Now()) // time-ordered and random; only needs uniqueness
	sealed, err := e.cfg.Sealer.Seal(ctx, sealScope, b, valueAAD(credID, id))
	if err != nil {
		return nil, fmt.Errorf("rotation: seal value: %w", err)
	}
	return &sealedValue{ID: id, Sealed: sealed}, nil
}

func (e *Service) openValue(ctx context.Context, credID string, sv *sealedValue) (material, error) {
	if sv == nil {
		return material{}, nil
	}
	b, err := e.cfg.Sealer.Open(ctx, sealScope, sv.Sealed, valueAAD(credID, sv.ID))
	if err != nil {
		return material{}, fmt.Errorf("rotation: open value: %w", err)
	}
	var m material
	if err := json.Unmarshal(b, &m); err != nil {
		return material{}, errors.New("rotation: sealed value is malformed")
	}
	return m, nil
}

// ---- secret names ----

// MaxSecretNameLen is Key Vault's limit on secret names.
const MaxSecretNameLen = 127

// SecretName is the deterministic name of a credential's secret in the
// customer vault: "{cluster}-{owner}-{kind}-{hash}", where cluster is the
// last segment of the cluster ID, each part is reduced to [0-9A-Za-z-]
// (runs of other characters become one '-'), the prefix is cut so the whole
// fits 127 characters, and hash is the first 10 hex digits of SHA-256 over
// the lower-cased cluster ID, owner ID and kind (NUL-separated). The hash
// keeps names unique across resource groups, subscriptions and truncation,
// so one vault serves any number of clusters.
func SecretName(clusterID, ownerID, ownerName string, kind Kind) string {
	h := hashID(clusterID, ownerID, string(kind))[:10]
	if ownerName == "" {
		ownerName = lastSegment(ownerID)
	}
	prefix := sanitize(lastSegment(clusterID)) + "-" + sanitize(ownerName) + "-" + sanitize(string(kind))
	prefix = strings.Trim(prefix, "-")
	if max := MaxSecretNameLen - 1 - len(h); len(prefix) > max {
		prefix = strings.TrimRight(prefix[:max], "-")
	}
	if prefix == "" {
		return h
	}
	return prefix + "-" + h
}

func sanitize(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range s {
		ok := c < 128 && (c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z')
		if ok {
			b.WriteRune(c)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(b.String(), "-")
}

// ---- customer encryption ----

// EnvelopeContentType is the contentType of an encrypted archive value.
const EnvelopeContentType = "application/vnd.keyhaven.envelope+json"

// EncryptedValue is the archive value when the cluster has an
// encryptionPublicKey: the credential (the same text that would otherwise be
// archived) encrypted with a fresh AES-256-GCM key, that key wrapped with
// RSA-OAEP (SHA-256, empty label) to the customer's public key. Byte fields
// are standard base64 with padding; Ciphertext is the GCM output including
// its 16-byte tag; no additional authenticated data is used.
type EncryptedValue struct {
	Alg          string `json:"alg"`          // "RSA-OAEP-256+A256GCM"
	KeyID        string `json:"kid"`          // base64url(SHA-256(SubjectPublicKeyInfo DER)), no padding
	ContentType  string `json:"cty"`          // contentType of the plaintext
	EncryptedKey string `json:"encryptedKey"` // RSA-OAEP-SHA256(AES key)
	IV           string `json:"iv"`           // 12-byte GCM nonce
	Ciphertext   string `json:"ciphertext"`   // AES-256-GCM(plaintext) || tag
}

// MinEncryptionKeyBits is the smallest accepted customer RSA key.
const MinEncryptionKeyBits = 3072

// ParseEncryptionKey reads an RSA public key (PEM "PUBLIC KEY" or "RSA
// PUBLIC KEY") of at least 3072 bits.
func ParseEncryptionKey(pemText string) (*rsa.PublicKey, error) {
	if len(pemText) > 16<<10 {
		return nil, errors.New("the encryption public key is too large")
	}
	blk, _ := pem.Decode([]byte(pemText))
	if blk == nil {
		return nil, errors.New("the encryption public key is not PEM")
	}
	var pub *rsa.PublicKey
	switch blk.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, errors.New("the encryption public key is malformed")
		}
		var ok bool
		if pub, ok = k.(*rsa.PublicKey); !ok {
			return nil, errors.New("the encryption public key is not an RSA key")
		}
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(blk.Bytes)
		if err != nil {
			return nil, errors.New("the encryption public key is malformed")
		}
		pub = k
	default:
		return nil, fmt.Errorf("unexpected PEM block %q", clipStr(blk.Type, 40))
	}
	if pub.N.BitLen() < MinEncryptionKeyBits {
		return nil, fmt.Errorf("the encryption public key has %d bits; at least %d are required", pub.N.BitLen(), MinEncryptionKeyBits)
	}
	return pub, nil
}

func encryptTo(pub *rsa.PublicKey, plaintext, contentType string) (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", err
	}
	iv := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(iv); err != nil {
		return "", err
	}
	ct := gcm.Seal(nil, iv, []byte(plaintext), nil)
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, key, nil)
	if err != nil {
		return "", err
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	kid := sha256.Sum256(spki)
	b64 := base64.StdEncoding.EncodeToString
	out, err := json.Marshal(EncryptedValue{Alg: "RSA-OAEP-256+A256GCM", KeyID: base64.RawURLEncoding.EncodeToString(kid[:]),
		ContentType: contentType, EncryptedKey: b64(wrapped), IV: b64(iv), Ciphertext: b64(ct)})
	return string(out), err
}
