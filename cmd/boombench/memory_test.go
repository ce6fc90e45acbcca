package main

import (
	"os"
	"strings"
	"testing"
)

func TestParseProcStatus(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  string
		rss     uint64
		hwm     uint64
		files   uint64
		wantErr bool
	}{
		{"both", "Name:\tboombench\nVmPeak:\t 2048000 kB\nVmHWM:\t  731136 kB\nVmRSS:\t  524288 kB\nThreads:\t12\n", 524288 * 1024, 731136 * 1024, 0, false},
		{"with files", "VmHWM:\t  731136 kB\nVmRSS:\t  524288 kB\nRssAnon:\t  480000 kB\nRssFile:\t   44000 kB\nRssShmem:\t     288 kB\n", 524288 * 1024, 731136 * 1024, 44288 * 1024, false},
		{"no VmHWM", "VmRSS:\t  1024 kB\n", 0, 0, 0, true},
		{"not kB", "VmHWM:\t  1 MB\nVmRSS:\t  1 MB\n", 0, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStatus(strings.NewReader(tc.status))
			if (err != nil) != tc.wantErr {
				t.Fatalf("error: got %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if got.rss != tc.rss || got.hwm != tc.hwm || got.files != tc.files {
				t.Fatalf("got rss %d hwm %d files %d, want rss %d hwm %d files %d", got.rss, got.hwm, got.files, tc.rss, tc.hwm, tc.files)
			}
		})
	}
}

// The resident size read for this process grows by what the process
// touches: 64 MB more of touched memory shows in VmRSS and VmHWM.
func TestReadProcMemorySeesTouchedMemory(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc on this system")
	}
	before, err := readProcMemory()
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	b := make([]byte, size)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	after, err := readProcMemory()
	if err != nil {
		t.Fatal(err)
	}
	if grew := int64(after.rss) - int64(before.rss); grew < size*9/10 {
		t.Fatalf("VmRSS grew by %d bytes after touching %d, want at least %d", grew, size, size*9/10)
	}
	if after.hwm < after.rss {
		t.Fatalf("VmHWM %d below VmRSS %d", after.hwm, after.rss)
	}
	_ = b[len(b)-1]
}
