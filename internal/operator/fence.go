package operator

import (
	"context"
	"fmt"
	"time"
)

// RunFence runs the fencing command (STONITH: power off or isolate the
// silent holder) before a standby claims its address. It returns nil only
// if the command exited 0: anything else means the old holder may still be
// serving, and claiming would risk two holders. env is added to the
// daemon's environment (ChangeEnv builds the FLOATIP_* variables). The
// error says what happened — not found, exit status, signal, timeout or
// interrupted by ctx — with the tail of the command's output; it wraps
// exec.ErrNotFound, *exec.ExitError or context.DeadlineExceeded as the case
// may be.
func RunFence(ctx context.Context, argv []string, env []string, timeout time.Duration) error {
	res := runCommand(ctx, argv, env, timeout)
	if res.err == nil {
		return nil
	}
	if res.output == "" {
		return fmt.Errorf("fence: %w (no output)", res.err)
	}
	return fmt.Errorf("fence: %w; output: %q", res.err, res.output)
}
