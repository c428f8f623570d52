package main

// `floatip status`: ask the daemons running in this network namespace over
// their control sockets, and print what they see (internal/status).

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"floatip/internal/status"
)

type statusCmd struct {
	Interface string `short:"i" placeholder:"IFACE" help:"Ask the daemon of this interface only (default: every floatip daemon in this network namespace)."`
	JSON      bool   `name:"json" help:"Print the daemons' reports as JSON, an array with one object per interface, instead of a table."`
}

// run asks the daemons and prints their reports. A daemon that does not
// answer is an error (exit 2) after the others' reports are printed.
func (c *statusCmd) run(e *env) error {
	names := []string{c.Interface}
	if c.Interface != "" {
		if err := validInterfaceName(c.Interface); err != nil {
			return err
		}
	} else {
		names = status.ControlInterfaces()
		if len(names) == 0 {
			return errors.New("no floatip daemon in this network namespace")
		}
	}
	reports := []status.Report{} // JSON: [] rather than null
	var errs []error
	for _, name := range names {
		r, err := status.Fetch(e.ctx, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		reports = append(reports, r)
	}
	var err error
	if c.JSON {
		var out []byte
		if out, err = json.MarshalIndent(reports, "", "  "); err == nil {
			_, err = fmt.Fprintf(e.stdout, "%s\n", out)
		}
	} else if len(reports) > 0 {
		err = status.WriteTable(e.stdout, reports, time.Local)
	}
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; ")) // run's one line on stderr
}
