package status

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseControlSockets(t *testing.T) {
	// /proc/net/unix: the listening sockets (flags 00010000) of two
	// daemons, a connection accepted by one (same name, not listening),
	// and sockets of others.
	proc := `Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 31337 @floatip/eth1
0000000000000000: 00000002 00000000 00010000 0001 01 31338 @floatip/eth0
0000000000000000: 00000003 00000000 00000000 0001 03 31339 @floatip/eth0
0000000000000000: 00000003 00000000 00000000 0001 03 31340 @floatip/br-lan
0000000000000000: 00000002 00000000 00010000 0001 01 20000 /run/systemd/notify
0000000000000000: 00000002 00000000 00010000 0001 01 20001 @floatipx/eth2
0000000000000000: 00000003 00000000 00000000 0001 03 20002
`
	got := parseControlSockets(strings.NewReader(proc))
	if want := []string{"eth0", "eth1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
