package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// RootKeySize is the size of a root key in bytes (AES-256).
const RootKeySize = 32

// EnvRootKey names the environment variable that may carry the root key
// (standard base64 of RootKeySize bytes) instead of a keyring file.
const EnvRootKey = "KEYHAVEN_ROOT_KEY"

const (
	keyringFormat   = "keyhaven-root-keyring"
	keyringVersion  = 1
	maxKeyringBytes = 64 << 10
	// maxRootVersions bounds the keyring; a finished rotation leaves one
	// version, so more than a handful means something is wrong.
	maxRootVersions = 32
)

var (
	// ErrInsecureKeyFile: the keyring file is readable or writable by group
	// or others; keyhaven refuses to use it.
	ErrInsecureKeyFile = errors.New("seal: root keyring file is accessible by group or others")
	// ErrRotateUnsupported: the root key came from the environment or from
	// bytes, so there is no keyring keyhaven could add a version to.
	ErrRotateUnsupported = errors.New("seal: root key rotation needs a keyring file; a root key supplied via " + EnvRootKey + " cannot be rotated by keyhaven")
)

// Root is the root keyring: one or more versioned root keys, one of them
// active. New data keys are wrapped under the active version; older versions
// stay until a rotation has re-wrapped every data key.
//
// Root never prints key material: String and GoString describe versions only.
type Root struct {
	mu     sync.RWMutex
	path   string // "" when the key came from the environment or bytes
	keys   map[uint32]cipher.AEAD
	raw    map[uint32][]byte
	active uint32
	stat   os.FileInfo // of the keyring file as last read or written

	// fileMu serialises keyring file writes and reloads within the process.
	fileMu sync.Mutex
}

// keyringFile is the on-disk JSON form.
type keyringFile struct {
	Format  string       `json:"format"`
	Version int          `json:"v"`
	Active  uint32       `json:"active"`
	Keys    []keyringKey `json:"keys"`
}

type keyringKey struct {
	Version uint32 `json:"version"`
	Key     string `json:"key"` // standard base64
}

// LoadOrCreateRoot loads the keyring at path, or creates it with one fresh
// random root key (version 1) when the file does not exist. created reports
// whether this call created it. A file readable or writable by group or others
// is refused with ErrInsecureKeyFile.
func LoadOrCreateRoot(path string) (r *Root, created bool, err error) {
	if path == "" {
		return nil, false, errors.New("seal: empty root keyring path")
	}
	r, err = loadRootFile(path)
	if err == nil {
		return r, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("seal: create keyring directory: %w", err)
	}
	key := make([]byte, RootKeySize)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return nil, false, fmt.Errorf("seal: generate root key: %w", err)
	}
	kf := keyringFile{Format: keyringFormat, Version: keyringVersion, Active: 1,
		Keys: []keyringKey{{Version: 1, Key: base64.StdEncoding.EncodeToString(key)}}}
	data, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return nil, false, err
	}
	// Never replace an existing file here: two processes starting at once
	// must end up with the same root key, not each with its own.
	switch err := writeFileAtomic(path, data, false); {
	case errors.Is(err, os.ErrExist):
		r, err := loadRootFile(path)
		return r, false, err
	case err != nil:
		return nil, false, err
	}
	r, err = loadRootFile(path)
	if err != nil {
		return nil, false, err
	}
	return r, true, nil
}

// RootFromEnv reads the root key from the KEYHAVEN_ROOT_KEY environment
// variable. ok is false (and err nil) when the variable is unset or empty.
// Such a root has a single version (1) and cannot be rotated by keyhaven.
func RootFromEnv() (r *Root, ok bool, err error) {
	v := strings.TrimSpace(os.Getenv(EnvRootKey))
	if v == "" {
		return nil, false, nil
	}
	key, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		// The decoder's error would quote an offset only, but stay generic anyway.
		return nil, false, fmt.Errorf("seal: %s is not valid standard base64", EnvRootKey)
	}
	r, err = RootFromBytes(key)
	if err != nil {
		return nil, false, fmt.Errorf("seal: %s: %w", EnvRootKey, err)
	}
	return r, true, nil
}

// RootFromBytes builds a single-version (version 1) root from a raw 32-byte
// key. The key is copied. Such a root cannot be rotated by keyhaven.
func RootFromBytes(key []byte) (*Root, error) {
	if len(key) != RootKeySize {
		return nil, fmt.Errorf("seal: root key must be %d bytes, got %d", RootKeySize, len(key))
	}
	r := &Root{}
	if err := r.setKeys(map[uint32][]byte{1: slices.Clone(key)}, 1); err != nil {
		return nil, err
	}
	return r, nil
}

// ActiveVersion is the root key version new data keys are wrapped under.
func (r *Root) ActiveVersion() uint32 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.active
}

// Versions lists the root key versions present, ascending.
func (r *Root) Versions() []uint32 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	vs := make([]uint32, 0, len(r.keys))
	for v := range r.keys {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

// Path is the keyring file, or "" for a root from the environment or bytes.
func (r *Root) Path() string { return r.path }

// String describes the keyring without key material.
func (r *Root) String() string {
	src := "env/bytes"
	if r.path != "" {
		src = r.path
	}
	return fmt.Sprintf("seal.Root{source: %s, active: %d, versions: %v}", src, r.ActiveVersion(), r.Versions())
}

// GoString keeps %#v from printing key material.
func (r *Root) GoString() string { return r.String() }

// aead returns the cipher of root key version v.
func (r *Root) aead(v uint32) (cipher.AEAD, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	a, ok := r.keys[v]
	return a, ok
}

// activeAEAD returns the active version and its cipher.
func (r *Root) activeAEAD() (uint32, cipher.AEAD) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.active, r.keys[r.active]
}

func (r *Root) setKeys(raw map[uint32][]byte, active uint32) error {
	if len(raw) == 0 || len(raw) > maxRootVersions {
		return fmt.Errorf("seal: keyring must hold 1 to %d root keys, has %d", maxRootVersions, len(raw))
	}
	if _, ok := raw[active]; !ok {
		return fmt.Errorf("seal: keyring's active version %d is not in the keyring", active)
	}
	keys := make(map[uint32]cipher.AEAD, len(raw))
	for v, k := range raw {
		if v == 0 {
			return errors.New("seal: keyring holds root key version 0 (versions start at 1)")
		}
		if len(k) != RootKeySize {
			return fmt.Errorf("seal: root key version %d must be %d bytes", v, RootKeySize)
		}
		a, err := newAEAD(k)
		if err != nil {
			return err
		}
		keys[v] = a
	}
	r.mu.Lock()
	r.keys, r.raw, r.active = keys, raw, active
	r.mu.Unlock()
	return nil
}

// newAEAD builds AES-256-GCM with a random 96-bit nonce generated by the
// standard library and prepended to each ciphertext.
func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: aes: %w", err)
	}
	return cipher.NewGCMWithRandomNonce(block)
}

// loadRootFile reads and validates a keyring file.
func loadRootFile(path string) (*Root, error) {
	r := &Root{path: path}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

// load (re)reads r.path into r. Callers hold fileMu or own r exclusively.
func (r *Root) load() error {
	f, err := os.Open(r.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return err
		}
		return fmt.Errorf("seal: open root keyring: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("seal: stat root keyring: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("seal: root keyring %s is not a regular file", r.path)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; restrict it with chmod 600 %s",
			ErrInsecureKeyFile, r.path, fi.Mode().Perm(), r.path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyringBytes+1))
	if err != nil {
		return fmt.Errorf("seal: read root keyring: %w", err)
	}
	if len(data) > maxKeyringBytes {
		return fmt.Errorf("seal: root keyring %s is larger than %d bytes", r.path, maxKeyringBytes)
	}
	var kf keyringFile
	if err := json.Unmarshal(data, &kf); err != nil {
		// json errors may quote input; the input is key material.
		return fmt.Errorf("seal: root keyring %s is not valid JSON", r.path)
	}
	if kf.Format != keyringFormat || kf.Version != keyringVersion {
		return fmt.Errorf("seal: root keyring %s has unknown format %q v%d", r.path, kf.Format, kf.Version)
	}
	raw := make(map[uint32][]byte, len(kf.Keys))
	for _, k := range kf.Keys {
		if _, dup := raw[k.Version]; dup {
			return fmt.Errorf("seal: root keyring %s lists version %d twice", r.path, k.Version)
		}
		b, err := base64.StdEncoding.DecodeString(k.Key)
		if err != nil {
			return fmt.Errorf("seal: root keyring %s: version %d is not valid base64", r.path, k.Version)
		}
		raw[k.Version] = b
	}
	if err := r.setKeys(raw, kf.Active); err != nil {
		return fmt.Errorf("%w (in %s)", err, r.path)
	}
	r.mu.Lock()
	r.stat = fi
	r.mu.Unlock()
	return nil
}

// refresh reloads the keyring file if it changed on disk since it was last
// read or written (another process rotated the root). A root without a file
// never changes.
func (r *Root) refresh() error {
	if r.path == "" {
		return nil
	}
	r.fileMu.Lock()
	defer r.fileMu.Unlock()
	fi, err := os.Stat(r.path)
	if err != nil {
		return fmt.Errorf("seal: stat root keyring: %w", err)
	}
	r.mu.RLock()
	old := r.stat
	r.mu.RUnlock()
	if old != nil && os.SameFile(old, fi) && old.ModTime().Equal(fi.ModTime()) && old.Size() == fi.Size() {
		return nil
	}
	return r.load()
}

// save writes the keyring with the given versions and active version, then
// makes it the in-memory state. Callers hold fileMu.
func (r *Root) save(raw map[uint32][]byte, active uint32) error {
	kf := keyringFile{Format: keyringFormat, Version: keyringVersion, Active: active}
	vs := make([]uint32, 0, len(raw))
	for v := range raw {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	for _, v := range vs {
		kf.Keys = append(kf.Keys, keyringKey{Version: v, Key: base64.StdEncoding.EncodeToString(raw[v])})
	}
	data, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(r.path, data, true); err != nil {
		return err
	}
	// Read back what is now on disk so memory matches the file exactly.
	return r.load()
}

// addVersion appends a fresh random root key and makes it active, persisting
// the keyring before anything is wrapped under the new key.
func (r *Root) addVersion() (uint32, error) {
	if r.path == "" {
		return 0, ErrRotateUnsupported
	}
	r.fileMu.Lock()
	defer r.fileMu.Unlock()
	// Start from the file, not memory, in case another process changed it.
	if err := r.load(); err != nil {
		return 0, err
	}
	r.mu.RLock()
	raw := make(map[uint32][]byte, len(r.raw)+1)
	var next uint32
	for v, k := range r.raw {
		raw[v] = k
		next = max(next, v)
	}
	r.mu.RUnlock()
	if len(raw) >= maxRootVersions {
		return 0, fmt.Errorf("seal: root keyring already holds %d versions; finish or repair earlier rotations first", len(raw))
	}
	next++
	key := make([]byte, RootKeySize)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return 0, fmt.Errorf("seal: generate root key: %w", err)
	}
	raw[next] = key
	if err := r.save(raw, next); err != nil {
		return 0, err
	}
	return next, nil
}

// retire removes the given non-active versions from the keyring file.
func (r *Root) retire(versions []uint32) error {
	if len(versions) == 0 {
		return nil
	}
	r.fileMu.Lock()
	defer r.fileMu.Unlock()
	if err := r.load(); err != nil {
		return err
	}
	r.mu.RLock()
	active := r.active
	raw := make(map[uint32][]byte, len(r.raw))
	for v, k := range r.raw {
		raw[v] = k
	}
	r.mu.RUnlock()
	for _, v := range versions {
		if v == active {
			return fmt.Errorf("seal: refusing to retire the active root key version %d", v)
		}
		delete(raw, v)
	}
	return r.save(raw, active)
}

// writeFileAtomic writes data to path with mode 0600 via a temporary file in
// the same directory, fsyncing the file and the directory. With replace false
// an existing path is left alone and os.ErrExist returned.
func writeFileAtomic(path string, data []byte, replace bool) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".keyhaven-keyring-*.tmp")
	if err != nil {
		return fmt.Errorf("seal: create temporary keyring file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("seal: chmod temporary keyring file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("seal: write temporary keyring file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("seal: fsync temporary keyring file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("seal: close temporary keyring file: %w", err)
	}
	if replace {
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("seal: install keyring file: %w", err)
		}
	} else {
		// link fails if path exists, unlike rename, so a concurrent creator's
		// key is never overwritten.
		if err := os.Link(tmp, path); err != nil {
			if errors.Is(err, os.ErrExist) {
				return os.ErrExist
			}
			return fmt.Errorf("seal: install keyring file: %w", err)
		}
		os.Remove(tmp)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("seal: open keyring directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("seal: fsync keyring directory: %w", err)
	}
	return nil
}
