// SPDX-License-Identifier: Apache-2.0

// Command lbd is the lbd node daemon and its diagnostics:
//
//	lbd run      run the node daemon
//	lbd status   show what the local daemon does
//	lbd flows    stream its datapath's flow events
//	lbd version  print the version
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "status":
		err = statusCmd(os.Args[2:])
	case "flows":
		err = flowsCmd(os.Args[2:])
	case "version":
		fmt.Println("lbd", version)
	case "-h", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "lbd: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lbd:", err)
		if e, ok := err.(exitError); ok {
			os.Exit(e.code)
		}
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: lbd <command> [flags]

commands:
  run       run the node daemon (lbd run -h for flags)
  status    show pools, VIPs, owners, backends and counters of the local daemon
  flows     stream the datapath's flow events (new flows, drops, affinity hits)
  version   print the version
`)
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }
