// SPDX-License-Identifier: Apache-2.0

package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lbd-project/lbd/test/bench"
)

// rulesCmd writes the generated iptables-restore and nft inputs for n
// filler services into a directory, to inspect them or time the tools by
// hand (in a throwaway namespace: ip netns add x; ip netns exec x nft -f ...).
func rulesCmd(args []string) error {
	fs := flag.NewFlagSet("rules", flag.ExitOnError)
	n := fs.Int("n", 1000, "services")
	dir := fs.String("o", ".", "output directory")
	fs.Parse(args)
	svcs, err := bench.Fillers(*n, []string{"node1", "node2", "node3"})
	if err != nil {
		return err
	}
	for name, text := range map[string]string{
		fmt.Sprintf("iptables-%d.rules", *n): bench.IptablesRestore(svcs),
		fmt.Sprintf("nft-%d.nft", *n):        bench.Nft(svcs),
	} {
		if err := os.WriteFile(filepath.Join(*dir, name), []byte(text), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	for i, text := range bench.NftChunks(svcs, bench.NftChunkSize) {
		name := fmt.Sprintf("nft-%d.chunk%03d.nft", *n, i)
		if err := os.WriteFile(filepath.Join(*dir, name), []byte(text), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}
