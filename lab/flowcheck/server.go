package main

// The server: UDP and TCP on one port, answering with its name.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"floatip/lab/labnet"
)

func serve(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "", "address:port to listen on, UDP and TCP (required)")
	host, _ := os.Hostname()
	name := fs.String("name", host, "name put in front of every answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *listen == "" || *name == "" || strings.ContainsAny(*name, " \n") {
		fmt.Fprintln(os.Stderr, "flowcheck serve: -listen is required and -name must be one word")
		return 2
	}
	ln, pc, err := listenBoth(ctx, *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "flowcheck serve: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "flowcheck: %s serving on %s (udp and tcp)\n", *name, ln.Addr())
	runServer(ctx, ln, pc, *name)
	return 0
}

// listenBoth binds TCP on addr, then UDP on the TCP listener's address (so
// port 0 picks one free port for both), both with IP_FREEBIND.
func listenBoth(ctx context.Context, addr string) (net.Listener, net.PacketConn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, nil, err
	}
	v := "4"
	if ap.Addr().Unmap().Is6() {
		v = "6"
	}
	lc := net.ListenConfig{Control: labnet.Freebind}
	ln, err := lc.Listen(ctx, "tcp"+v, addr)
	if err != nil {
		return nil, nil, err
	}
	pc, err := lc.ListenPacket(ctx, "udp"+v, ln.Addr().String())
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	return ln, pc, nil
}

// runServer answers on ln and pc until ctx ends, then closes them and every
// connection, and returns when all are done.
func runServer(ctx context.Context, ln net.Listener, pc net.PacketConn, name string) {
	defer context.AfterFunc(ctx, func() { ln.Close(); pc.Close() })()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 64*1024)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
					return
				}
				time.Sleep(time.Millisecond) // ICMP errors and the like
				continue
			}
			_, _ = pc.WriteTo(append([]byte(name+" "), buf[:n]...), from)
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			defer context.AfterFunc(ctx, func() { c.Close() })()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if _, err := io.WriteString(c, name+" "+line); err != nil {
					return
				}
			}
		}()
	}
	ln.Close()
	pc.Close()
	wg.Wait()
}
