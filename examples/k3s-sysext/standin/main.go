// A stand-in for the k3s binary, for demos and tests that cannot download k3s: it behaves like
// `k3s server` where systemd can see it. It tells systemd it is ready (Type=notify, as k3s.service
// expects), listens on k3s' API port and answers every connection with one line.
package main

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// A var, so a build can stamp another release into it (-ldflags -X main.version=…), as update tests do.
var version = "v1.31.2+k3s1 (pulumi-kairos stand-in)"

func main() {
	args := os.Args[1:]
	switch {
	case len(args) == 1 && (args[0] == "--version" || args[0] == "-v" || args[0] == "version"):
		fmt.Printf("k3s version %s\n", version)
	case len(args) >= 1 && args[0] == "server":
		if err := serve(":6443"); err != nil {
			fmt.Fprintln(os.Stderr, "k3s:", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintf(os.Stderr, "usage: k3s server | k3s --version\n")
		os.Exit(2)
	}
}

func serve(addr string) error {
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if err := notify("READY=1\nSTATUS=stand-in API listening on " + addr); err != nil {
		return fmt.Errorf("telling systemd we are ready: %w", err)
	}
	fmt.Printf("k3s %s: listening on %s\n", version, addr)
	for {
		conn, err := listener.Accept()
		if err != nil {
			return err
		}
		go func(c net.Conn) {
			defer c.Close()
			fmt.Fprintf(c, "k3s %s\n", version)
		}(conn)
	}
}

// notify speaks sd_notify(3): one datagram to $NOTIFY_SOCKET ("@" means the abstract namespace).
func notify(state string) error {
	socket := os.Getenv("NOTIFY_SOCKET")
	if socket == "" {
		return nil
	}
	if strings.HasPrefix(socket, "@") {
		socket = "\x00" + socket[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}
