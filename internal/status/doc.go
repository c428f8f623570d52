// Package status is what floatip shows people and monitoring: the status
// board (per VIP its state, holder and assignee: the SIGUSR1 lines and
// systemd's STATUS=), the report that `floatip status` prints, the control
// socket @floatip/IFACE that serves it, and the Prometheus metrics.
//
// It must not know how decisions are made or how frames travel: it learns
// of changes as an event.Observer and reads the group only as engine.Facts,
// handed to it by the interface's loop.
package status
