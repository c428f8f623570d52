package operator

import (
	"slices"
	"testing"
)

func TestSplitCommand(t *testing.T) {
	cases := []struct {
		in   string
		want []string
		err  bool
	}{
		{"systemctl is-active --quiet nginx", []string{"systemctl", "is-active", "--quiet", "nginx"}, false},
		{`sh -c 'curl -fsS http://127.0.0.1:8080/health | grep -q ok'`, []string{"sh", "-c", "curl -fsS http://127.0.0.1:8080/health | grep -q ok"}, false},
		{`/usr/local/bin/notify "VIP moved" now`, []string{"/usr/local/bin/notify", "VIP moved", "now"}, false},
		{`echo "a \"b\" \$HOME \n"`, []string{"echo", `a "b" $HOME \n`}, false},
		{`a\ b c''d ""`, []string{"a b", "cd", ""}, false},
		{"  spaced\tout  ", []string{"spaced", "out"}, false},
		{"", nil, false},
		{`sh -c 'unterminated`, nil, true},
		{`trailing\`, nil, true},
	}
	for _, tc := range cases {
		got, err := SplitCommand(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("splitCommand(%q) error %v, want error=%v", tc.in, err, tc.err)
			continue
		}
		if !tc.err && !slices.Equal(got, tc.want) {
			t.Errorf("splitCommand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
