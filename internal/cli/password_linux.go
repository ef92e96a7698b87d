//go:build linux

package cli

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// readPasswordTTY prompts on stderr and reads a line from the terminal on
// stdin with echo turned off.
func readPasswordTTY(prompt string) (string, error) {
	fd := int(os.Stdin.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", &azerr.Error{Message: "No password given and stdin is not a terminal: use --password or KEYHAVEN_PASSWORD."}
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", fmt.Errorf("cannot turn off terminal echo: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old) //nolint:errcheck // best effort restore
	fmt.Fprint(os.Stderr, prompt)
	line, err := bufio.NewReaderSize(os.Stdin, 4096).ReadString('\n')
	fmt.Fprintln(os.Stderr)
	if err != nil && line == "" {
		return "", fmt.Errorf("reading password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}
