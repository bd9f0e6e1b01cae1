// The peer the benchmark compares the UKI initrd compression against: AuroraBoot's build-uki encoder,
// klauspost/compress zstd at SpeedBestCompression with every other option at its default (AuroraBoot
// pkg/uki/uki.go ZstdFile sets only WithEncoderLevel), streamed the same way (io.Copy into the encoder).
//
// usage: klauspost-zstd IN OUT — silent on success; on failure a message on stderr, no OUT, exit 1.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: klauspost-zstd IN OUT")
		os.Exit(2)
	}
	if err := compress(os.Args[1], os.Args[2]); err != nil {
		os.Remove(os.Args[2]) // a truncated frame must not pass for an output
		fmt.Fprintf(os.Stderr, "klauspost-zstd: %v\n", err)
		os.Exit(1)
	}
}

func compress(in, out string) error {
	src, err := os.Open(in)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(out)
	if err != nil {
		return err
	}
	defer dst.Close()
	enc, err := zstd.NewWriter(dst, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		return err
	}
	if _, err := io.Copy(enc, src); err != nil {
		enc.Close()
		return fmt.Errorf("compressing %s: %w", in, err)
	}
	// AuroraBoot drops the errors of both closes; here they fail the run, since Close writes the last block.
	if err := enc.Close(); err != nil {
		return fmt.Errorf("finishing %s: %w", out, err)
	}
	return dst.Close()
}
