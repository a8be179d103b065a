// Command bench measures every performance figure the tillkeep issues ask for, next to
// its target and, where a ratio is asked, next to a reference measured in the same run
// on the same disk. It prints one table and writes it to a JSON file so runs can be
// compared. It lives in its own module so that its extra dependencies (SQLite as the
// reference embedded store) never reach the product binary.
//
// Run it with `make bench`; `go run . -only raw,sqlite` runs a subset.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// Row is one measured figure.
type Row struct {
	Group  string  `json:"group"`
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target string  `json:"target,omitempty"`
	// Reference and Ratio are set where the target is a ratio to another figure of the
	// same run.
	Reference string  `json:"reference,omitempty"`
	Ratio     float64 `json:"ratio,omitempty"`
	// Pass is nil where there is no target.
	Pass *bool  `json:"pass,omitempty"`
	Note string `json:"note,omitempty"`
}

// Report is what the JSON file holds.
type Report struct {
	At      time.Time `json:"at"`
	Host    string    `json:"host"`
	CPUs    int       `json:"cpus"`
	GoVer   string    `json:"go"`
	Rows    []Row     `json:"rows"`
	Skipped []string  `json:"skipped,omitempty"`
}

// env is what every measurement gets: a scratch directory on the disk under test and
// the figures measured before it, for ratios.
type env struct {
	dir     string
	quick   bool
	results map[string]float64
}

type measurement struct {
	key  string
	desc string
	run  func(ctx context.Context, e *env) ([]Row, error)
}

func pass(ok bool) *bool { return &ok }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	only := flag.String("only", "", "comma-separated measurement keys to run (default all)")
	out := flag.String("out", "bench-results.json", "where to write the JSON report")
	dir := flag.String("dir", "", "scratch directory on the disk to measure (default a temp dir)")
	quick := flag.Bool("quick", false, "smaller sizes, for a smoke run")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	scratch := *dir
	if scratch == "" {
		d, err := os.MkdirTemp("", "tillkeep-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		scratch = d
	}
	e := &env{dir: scratch, quick: *quick, results: map[string]float64{}}
	want := map[string]bool{}
	for _, k := range strings.Split(*only, ",") {
		if k = strings.TrimSpace(k); k != "" {
			want[k] = true
		}
	}
	host, _ := os.Hostname()
	rep := Report{At: time.Now().UTC(), Host: host, CPUs: runtime.NumCPU(), GoVer: runtime.Version()}
	for _, m := range measurements() {
		if len(want) > 0 && !want[m.key] {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: %s: %s ...\n", m.key, m.desc)
		rows, err := m.run(ctx, e)
		if err != nil {
			msg := fmt.Sprintf("%s: %v", m.key, err)
			fmt.Fprintln(os.Stderr, "bench: skipped", msg)
			rep.Skipped = append(rep.Skipped, msg)
			continue
		}
		for _, r := range rows {
			e.results[r.Group+"/"+r.Name] = r.Value
		}
		rep.Rows = append(rep.Rows, rows...)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	printTable(rep)
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	fmt.Printf("\nwritten to %s\n", *out)
	return nil
}

func printTable(rep Report) {
	fmt.Printf("tillkeep bench — %s, %d CPUs, %s, %s\n\n", rep.Host, rep.CPUs, rep.GoVer, rep.At.Format(time.RFC3339))
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tFIGURE\tVALUE\tTARGET\tREFERENCE / RATIO\tOK")
	for _, r := range rep.Rows {
		ok := "-"
		if r.Pass != nil {
			ok = map[bool]string{true: "yes", false: "NO"}[*r.Pass]
		}
		ref := r.Reference
		if r.Ratio != 0 {
			ref = fmt.Sprintf("%.2fx %s", r.Ratio, r.Reference)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\t%s\n", r.Group, r.Name, formatValue(r.Value), r.Unit, r.Target, ref, ok)
	}
	tw.Flush()
	for _, s := range rep.Skipped {
		fmt.Println("skipped:", s)
	}
}

func formatValue(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.4f", v)
	}
}
