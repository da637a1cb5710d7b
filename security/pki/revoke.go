package pki

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"strings"
	"time"
)

// ParseRevoked reads a revocation list: one serial (hex, as Serial prints
// it) per line, optionally followed by "# reason"; blank lines and lines
// starting with '#' are comments. A malformed line is an error naming it,
// so a typo never silently un-revokes anything.
func ParseRevoked(data []byte) (map[string]bool, error) {
	out := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		s, ok := normalizeSerial(line)
		if !ok {
			return nil, fmt.Errorf("line %d: %q is not a hex serial number", n, line)
		}
		out[s] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read revocation list: %w", err)
	}
	return out, nil
}

// normalizeSerial accepts "0a:1b", "0A1B" or "a1b" and returns "a1b".
func normalizeSerial(s string) (string, bool) {
	s = strings.ToLower(strings.ReplaceAll(s, ":", ""))
	v, ok := new(big.Int).SetString(s, 16)
	if !ok || v.Sign() <= 0 {
		return "", false
	}
	return v.Text(16), true
}

// Revoke adds serial to the revocation list at path (created if missing),
// with the reason and time as a comment, replacing the file atomically.
// Servers reading that file through a Reloader refuse the certificate from
// their next RPC on. Revoking a serial twice changes nothing.
func Revoke(path, serial, reason string, now time.Time) error {
	s, ok := normalizeSerial(serial)
	if !ok {
		return fmt.Errorf("revoke: %q is not a hex serial number (see `hpcd tls show FILE`)", serial)
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("revoke: %w", err)
	}
	have, err := ParseRevoked(old)
	if err != nil {
		return fmt.Errorf("revoke: %s: %w", path, err)
	}
	if have[s] {
		return nil
	}
	reason = strings.ReplaceAll(strings.TrimSpace(reason), "\n", " ")
	line := fmt.Sprintf("%s # revoked %s", s, now.UTC().Format(time.RFC3339))
	if reason != "" {
		line += ": " + reason
	}
	if len(old) > 0 && old[len(old)-1] != '\n' {
		old = append(old, '\n')
	}
	return WriteFileAtomic(path, append(old, line+"\n"...), 0o644)
}
