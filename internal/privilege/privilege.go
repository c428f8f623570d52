// Package privilege checks that the process holds the capabilities floatip
// needs (CAP_NET_ADMIN, CAP_NET_RAW) and turns a bare EPERM into an error
// that says which ones are missing.
//
// It must not know about anything floatip does with them.
package privilege

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// missingCapabilities names the capabilities floatip needs but lacks.
func missingCapabilities() ([]string, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil, fmt.Errorf("read capabilities: %w", err)
	}
	var missing []string
	for _, c := range []struct {
		bit  uint
		name string
	}{{unix.CAP_NET_ADMIN, "CAP_NET_ADMIN"}, {unix.CAP_NET_RAW, "CAP_NET_RAW"}} {
		if data[c.bit/32].Effective&(1<<(c.bit%32)) == 0 {
			missing = append(missing, c.name)
		}
	}
	return missing, nil
}

// Check fails, saying what to do, when the process lacks CAP_NET_ADMIN or
// CAP_NET_RAW.
func Check() error {
	missing, err := missingCapabilities()
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: floatip needs CAP_NET_ADMIN (to add the address) and CAP_NET_RAW (to send ARP and neighbour discovery); run it as root or grant them (systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW)", strings.Join(missing, " and "))
	}
	return nil
}

// Hint turns a bare EPERM into a message that names what is missing.
func Hint(err error) error {
	if strings.Contains(err.Error(), "IPv6 is disabled") {
		return err // the kernel's EPERM for an interface without IPv6
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w (floatip needs CAP_NET_RAW and CAP_NET_ADMIN: run it as root or grant those capabilities)", err)
	}
	return err
}
