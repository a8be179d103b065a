package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tillkeep/tillkeep/platform/codegen"
)

// The code generation row (issue #3): the time and peak memory to generate 30M unique
// codes of one series. Generation runs in a child process (this binary, re-executed
// with a hidden first argument), so that its peak resident memory is its own and not
// the bench's, which holds the other measurements' data.

// codegenChildArg, as the first argument, turns this binary into the generating child:
// `bench -codegen-child COUNT PATH` writes COUNT codes to PATH and prints a
// codegenChildResult as JSON. It is checked before main parses flags, and is not a
// flag of the bench.
const codegenChildArg = "-codegen-child"

// codegenLength is the codes' length: ten characters of the 31-letter alphabet hold
// 8.2e14 codes, so 30M leave a guess a 1-in-27-million chance.
const codegenLength = 10

func init() {
	if len(os.Args) > 1 && os.Args[1] == codegenChildArg {
		os.Exit(codegenChild(os.Args[2:]))
	}
}

type codegenChildResult struct {
	Codes   int64   `json:"codes"`
	Seconds float64 `json:"seconds"`
	// PeakRSSKB is VmHWM from /proc/self/status, read after generating.
	PeakRSSKB int64 `json:"peak_rss_kb"`
}

func codegenChild(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: bench -codegen-child COUNT PATH")
		return 2
	}
	count, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || count <= 0 {
		fmt.Fprintf(os.Stderr, "codegen child: bad count %q\n", args[0])
		return 2
	}
	res, err := generateCodes(count, args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "codegen child:", err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "codegen child:", err)
		return 1
	}
	return 0
}

// generateCodes writes count codes of a new series to path, durably, and reports how
// long that took and the process's peak resident memory.
func generateCodes(count int64, path string) (codegenChildResult, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return codegenChildResult{}, err
	}
	defer f.Close()
	spec := codegen.Spec{Count: count, Length: codegenLength, Charset: codegen.CharsetAlphanumeric}
	start := time.Now()
	if err := codegen.GenerateTo(context.Background(), spec, f, nil); err != nil {
		return codegenChildResult{}, fmt.Errorf("generate %d codes: %w", count, err)
	}
	if err := f.Sync(); err != nil {
		return codegenChildResult{}, fmt.Errorf("sync %s: %w", path, err)
	}
	elapsed := time.Since(start)
	if err := f.Close(); err != nil {
		return codegenChildResult{}, fmt.Errorf("close %s: %w", path, err)
	}
	hwm, err := selfPeakRSSKB()
	if err != nil {
		return codegenChildResult{}, err
	}
	return codegenChildResult{Codes: count, Seconds: elapsed.Seconds(), PeakRSSKB: hwm}, nil
}

// selfPeakRSSKB reads the process's peak resident set size (VmHWM) in kB.
func selfPeakRSSKB() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read peak memory: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmHWM %q: %w", line, err)
			}
			return kb, nil
		}
	}
	return 0, errors.New("no VmHWM line in /proc/self/status")
}

func measureCodegen(ctx context.Context, e *env) ([]Row, error) {
	count := int64(30_000_000)
	label := "30M"
	if e.quick {
		count, label = 1_000_000, "1M"
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the bench binary to run the generating child: %w", err)
	}
	path := filepath.Join(e.dir, "codes.txt")
	defer os.Remove(path)

	loadBefore := loadAverage()
	cmd := exec.CommandContext(ctx, self, codegenChildArg, strconv.FormatInt(count, 10), path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("generating child: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var res codegenChildResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("read the generating child's answer %q: %w", stdout.String(), err)
	}
	stepf("codegen: %d codes in %.1f s, peak RSS %d kB; checking them", res.Codes, res.Seconds, res.PeakRSSKB)

	// The figure counts only if the file holds count distinct codes of the series'
	// shape; checking takes longer than generating and is not timed.
	if err := checkCodesFile(path, count); err != nil {
		return nil, err
	}

	timeRow := Row{Group: "platform", Name: fmt.Sprintf("generate %s unique codes", label), Value: res.Seconds, Unit: "s",
		Target: "<= 180 s for 30M",
		Note: fmt.Sprintf("platform/codegen GenerateTo, %d-character alphanumeric codes written to a file on the disk under test and fsynced; %.0f codes/s; uniqueness checked",
			codegenLength, float64(count)/res.Seconds) + loadNote(loadBefore)}
	memRow := Row{Group: "platform", Name: fmt.Sprintf("peak memory generating %s codes", label), Value: float64(res.PeakRSSKB) / 1024, Unit: "MiB",
		Note: "VmHWM of the generating child process (the bench's own memory is not counted)"}
	if e.quick {
		note := "; -quick: 1M codes, not comparable with the 30M target"
		timeRow.Note += note
		memRow.Note += note
	} else {
		timeRow.Pass = pass(res.Seconds <= 180)
	}
	return []Row{timeRow, memRow}, nil
}

// checkCodesFile checks that path holds want codes of codegenLength characters of the
// alphanumeric alphabet, all different: each code is read as a base-31 number, the
// numbers are sorted, and neighbours must differ.
func checkCodesFile(path string, want int64) error {
	alphabet, _ := codegen.Alphabet(codegen.CharsetAlphanumeric)
	var digit [256]int8
	for i := range digit {
		digit[i] = -1
	}
	for i := 0; i < len(alphabet); i++ {
		digit[alphabet[i]] = int8(i)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("check generated codes: %w", err)
	}
	defer f.Close()
	values := make([]uint64, 0, want)
	sc := bufio.NewScanner(bufio.NewReaderSize(f, 1<<20))
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) != codegenLength {
			return fmt.Errorf("check generated codes: line %d is %q, not %d characters", len(values)+1, line, codegenLength)
		}
		var v uint64
		for _, c := range line {
			d := digit[c]
			if d < 0 {
				return fmt.Errorf("check generated codes: line %d (%q) has a character outside the alphabet", len(values)+1, line)
			}
			v = v*uint64(len(alphabet)) + uint64(d)
		}
		values = append(values, v)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("check generated codes: %w", err)
	}
	if int64(len(values)) != want {
		return fmt.Errorf("check generated codes: the file holds %d codes, not %d", len(values), want)
	}
	slices.Sort(values)
	for i := 1; i < len(values); i++ {
		if values[i] == values[i-1] {
			return fmt.Errorf("check generated codes: a code appears twice (value %d)", values[i])
		}
	}
	return nil
}
