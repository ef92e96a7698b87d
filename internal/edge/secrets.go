package edge

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"strings"
)

// Device secret names (the databoxedge spec's DeviceSecretName values) the
// agent holds.
const (
	SecretBitLockerRecoveryKey = "SystemVolumeBitLockerRecoveryKey"
	SecretBMCPassword          = "BMCDefaultUserPassword"
)

// generateSecrets makes the device secrets of a new device.
func generateSecrets(r io.Reader) (map[string]string, error) {
	bl, err := bitLockerRecoveryKey(r)
	if err != nil {
		return nil, err
	}
	bmc, err := bmcPassword(r, 24)
	if err != nil {
		return nil, err
	}
	return map[string]string{SecretBitLockerRecoveryKey: bl, SecretBMCPassword: bmc}, nil
}

// bitLockerRecoveryKey is a 48-digit recovery password in BitLocker's
// format: eight groups of six digits, each a 16-bit value times 11.
func bitLockerRecoveryKey(r io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("edge: random: %w", err)
	}
	groups := make([]string, 8)
	for i := range groups {
		groups[i] = fmt.Sprintf("%06d", int(binary.BigEndian.Uint16(b[2*i:]))*11)
	}
	return strings.Join(groups, "-"), nil
}

const (
	lowerChars  = "abcdefghijkmnopqrstuvwxyz"
	upperChars  = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	digitChars  = "23456789"
	symbolChars = "!#%+-=@^_~"
)

// bmcPassword is n characters with at least one of each class, uniformly
// drawn and shuffled.
func bmcPassword(r io.Reader, n int) (string, error) {
	classes := []string{lowerChars, upperChars, digitChars, symbolChars}
	all := strings.Join(classes, "")
	pick := func(set string) (byte, error) {
		i, err := rand.Int(r, big.NewInt(int64(len(set))))
		if err != nil {
			return 0, fmt.Errorf("edge: random: %w", err)
		}
		return set[i.Int64()], nil
	}
	out := make([]byte, n)
	for i := range out {
		set := all
		if i < len(classes) {
			set = classes[i]
		}
		c, err := pick(set)
		if err != nil {
			return "", err
		}
		out[i] = c
	}
	for i := n - 1; i > 0; i-- {
		j, err := rand.Int(r, big.NewInt(int64(i+1)))
		if err != nil {
			return "", fmt.Errorf("edge: random: %w", err)
		}
		out[i], out[j.Int64()] = out[j.Int64()], out[i]
	}
	return string(out), nil
}
