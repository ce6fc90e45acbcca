package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/boomerang-loyalty/boomerang/cmd/internal/orderimport"
)

// progress tells on stderr how an import goes: on a terminal one line,
// redrawn a few times a second, with a bar; elsewhere (a log file, CI) a
// plain line every few seconds.
type progress struct {
	w     io.Writer
	mode  string // bar, lines or none
	width int
	files []*importFile
	every time.Duration

	mu      sync.Mutex
	cur     int
	drawn   string // the bar line on screen, "" when none is
	started time.Time
	events0 int64 // events before this run
}

func newProgress(w io.Writer, mode string, files []*importFile) *progress {
	p := &progress{w: w, mode: mode, files: files, width: 80, every: 5 * time.Second}
	f, isFile := w.(*os.File)
	tty := isFile && term.IsTerminal(int(f.Fd()))
	if mode == "auto" {
		p.mode = "lines"
		if tty {
			p.mode = "bar"
		}
	}
	if tty {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 20 {
			p.width = cols
		}
	}
	if p.mode == "bar" {
		p.every = 200 * time.Millisecond
	}
	return p
}

// start draws the progress of im until the returned stop is called.
func (p *progress) start(im *orderimport.Importer) (stop func()) {
	p.started = time.Now()
	_, c := im.Progress()
	p.events0 = c.Events
	if p.mode == "none" {
		return func() {}
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(p.every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.draw(im)
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.drawn != "" {
			fmt.Fprint(p.w, "\r\x1b[K")
			p.drawn = ""
		}
	}
}

// current says which file is being read.
func (p *progress) current(i int) {
	p.mu.Lock()
	p.cur = i
	p.mu.Unlock()
}

// println writes a line of its own, above the bar.
func (p *progress) println(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn != "" {
		fmt.Fprintf(p.w, "\r\x1b[K%s\n%s", s, p.drawn)
		return
	}
	fmt.Fprintln(p.w, s)
}

func (p *progress) draw(im *orderimport.Importer) {
	read, c := im.Progress()
	p.mu.Lock()
	defer p.mu.Unlock()
	// Bytes to read and read in this run, over the files not done before.
	total, done := int64(0), int64(0)
	for i, f := range p.files {
		if f.skip {
			continue
		}
		if f.size < 0 {
			total = -1
		} else if total >= 0 {
			total += f.size - f.start.Offset
		}
		switch {
		case i < p.cur:
			done += f.size - f.start.Offset
		case i == p.cur:
			done += max(0, read-f.start.Offset)
		}
	}
	elapsed := time.Since(p.started)
	rate := float64(c.Events-p.events0) / elapsed.Seconds()
	pct, eta := "", ""
	if total > 0 {
		pct = fmt.Sprintf("%3.0f%%", 100*float64(done)/float64(total))
		if done > 0 {
			left := time.Duration(float64(elapsed) * float64(total-done) / float64(done))
			eta = "ETA " + left.Round(time.Second).String()
		}
	}
	counts := fmt.Sprintf("accepted %s  duplicate %s  rejected %s", grouped(c.Accepted), grouped(c.Duplicate), grouped(c.Rejected))
	if p.mode == "lines" {
		where := fmt.Sprintf("%s read", mib(done))
		if total > 0 {
			where = fmt.Sprintf("%s (%s of %s)", strings.TrimSpace(pct), mib(done), mib(total))
		}
		fmt.Fprintf(p.w, "import: %s, %s events/s%s; %s\n", where, grouped(int64(rate)), prefixed(", ", eta), strings.ReplaceAll(counts, "  ", ", "))
		return
	}
	line := fmt.Sprintf("%s  %s events/s  %s  %s", pct, grouped(int64(rate)), eta, counts)
	if room := p.width - 1 - len(line) - 3; total > 0 && room >= 10 {
		n := min(room, 40)
		filled := int(float64(n) * float64(done) / float64(total))
		line = "[" + strings.Repeat("=", filled) + strings.Repeat(" ", n-filled) + "] " + line
	}
	if len(line) > p.width-1 {
		line = line[:p.width-1]
	}
	fmt.Fprintf(p.w, "\r\x1b[K%s", line)
	p.drawn = line
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// grouped writes n with thousands separated: 1,234,567.
func grouped(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
