package lineprofile

import (
	"slices"
	"testing"
)

func TestCountPutsSamplesOnTheirLines(t *testing.T) {
	// Two functions: main at 0x1000-0x1100 with lines at 0x1000 and 0x1040, find at
	// 0x2000-0x2020 with one line.
	table := &Table{
		funcs: []addrRange{{0x1000, 0x1100, "main"}, {0x2000, 0x2020, "find"}},
		addrs: []uint64{0x1000, 0x1040, 0x2000},
		lines: []string{"a.c:1  parse", "a.c:2  rewrite", "b.h:7  compare"},
	}
	addrs := []uint64{
		0x1000, 0x103f, // parse
		0x1040,                 // rewrite
		0x2000, 0x2010, 0x201f, // compare
		0x0fff, 0x1100, 0x2020, 0x3000, // outside the program
	}
	p := table.Count(addrs)
	if p.Total != 6 {
		t.Fatalf("total %d, want the 6 samples inside the program", p.Total)
	}
	want := []LineCount{{"find: b.h:7  compare", 3}, {"main: a.c:1  parse", 2}, {"main: a.c:2  rewrite", 1}}
	if !slices.Equal(p.Lines, want) {
		t.Fatalf("lines %v, want %v", p.Lines, want)
	}
	top := p.Top(2)
	if len(top) != 2 || top[0] != " 50.0%  find: b.h:7  compare" || top[1] != " 33.3%  main: a.c:1  parse" {
		t.Fatalf("top two %q", top)
	}
}
