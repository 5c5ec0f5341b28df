// Command compress writes the brotli (.br) and gzip (.gz) copies of the
// dashboard's wasm that the dashboard server serves. It is a build step:
//
//	go run ./tools/compress web/app.wasm
package main

import (
	"fmt"
	"os"

	"github.com/hookpipe/hookpipe/dashboard/internal/precompress"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: compress FILE...\n\nwrites FILE.br and FILE.gz beside each FILE")
		os.Exit(2)
	}
	for _, path := range os.Args[1:] {
		info, err := os.Stat(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "compress:", err)
			os.Exit(1)
		}
		sizes, err := precompress.WriteFiles(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "compress:", err)
			os.Exit(1)
		}
		fmt.Printf("%s: %d bytes, brotli %d, gzip %d\n", path, info.Size(), sizes["br"], sizes["gzip"])
	}
}
