package main

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"time"
)

type options struct {
	Rounds   int
	Window   time.Duration
	Overload float64 // pace at this multiple of the case's capacity
	Smoke    bool
	Cases    *regexp.Regexp // nil: every case
	Log      io.Writer
	// ProfileLines runs each eipgw case and floor one more window, after the last
	// round, under perf, and logs where its program's time went by source line.
	ProfileLines bool
}

// selectCases keeps the cases whose names match (all of them for nil).
func selectCases(all []benchCase, match *regexp.Regexp) []benchCase {
	if match == nil {
		return all
	}
	var kept []benchCase
	for _, c := range all {
		if match.MatchString(c.Name) {
			kept = append(kept, c)
		}
	}
	return kept
}

// sample is one window of one case.
type sample struct {
	Round       int     `json:"round"`
	PaceMpps    float64 `json:"pace_mpps"`
	Mpps        float64 `json:"mpps"`
	Loss        float64 `json:"loss"`
	Sent        uint64  `json:"sent"`
	Delivered   uint64  `json:"delivered"`
	Wrong       uint64  `json:"wrong_class"` // arrived with the other class of source
	Checked     uint64  `json:"checksums_checked"`
	BadChecksum uint64  `json:"bad_checksums"`
}

// stat is a median with its interquartile range.
type stat struct {
	Median float64 `json:"median"`
	Q1     float64 `json:"q1"`
	Q3     float64 `json:"q3"`
}

func (s stat) String() string { return fmt.Sprintf("%.2f (IQR %.2f-%.2f)", s.Median, s.Q1, s.Q3) }

func quartiles(xs []float64) stat {
	if len(xs) == 0 {
		return stat{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	at := func(q float64) float64 {
		pos := q * float64(len(s)-1)
		lo := int(pos)
		if lo+1 >= len(s) {
			return s[lo]
		}
		return s[lo] + (pos-float64(lo))*(s[lo+1]-s[lo])
	}
	return stat{Median: at(0.5), Q1: at(0.25), Q3: at(0.75)}
}

type caseResult struct {
	Name       string   `json:"name"`
	Desc       string   `json:"description"`
	Flows      uint32   `json:"flows"`
	Translated bool     `json:"translated"`
	Inbound    bool     `json:"inbound"` // from the internet to the VPC
	Samples    []sample `json:"samples"`
	Mpps       stat     `json:"mpps"`
	Loss       stat     `json:"loss"`
	// Ratios per round to the named cases, then their median and IQR.
	VsForwarding stat   `json:"vs_kernel_forwarding"`
	VsFloor      stat   `json:"vs_xdp_floor"`
	Counterpart  string `json:"kernel_counterpart,omitempty"`
	VsKernelNAT  *stat  `json:"vs_kernel_counterpart,omitempty"`
	// GeneratorBound: above 80% of the generator's ceiling, so the rate is the
	// generator's, not the gateway's. Unsaturated: under 2% loss at its pace.
	GeneratorBound bool `json:"generator_bound"`
	Unsaturated    bool `json:"unsaturated"`
	// Unavailable says why the case was not measured on this machine.
	Unavailable string `json:"unavailable,omitempty"`
	// Live is the time spent in the gateway's program per packet, from one more
	// window with the kernel's BPF statistics on (eipgw cases and the floor) after
	// the last round; LiveFirst, from one before the first, shows how it drifts as
	// the run's state (sessions, bindings) builds up.
	Live      *liveProgram `json:"live_program,omitempty"`
	LiveFirst *liveProgram `json:"live_program_first_round,omitempty"`
}

// direction names the baselines a case compares with: inbound cases have their own.
func (c *caseResult) direction() string {
	if c.Inbound {
		return "-in"
	}
	return ""
}

// counterparts name, for each eipgw case, the kernel case that does the same job.
var counterparts = map[string]string{
	"eipgw-1to1-xdp":     "nft-stateless-1to1",
	"eipgw-1to1-tc":      "nft-stateless-1to1",
	"eipgw-snat-xdp":     "nft-snat-conntrack-many",
	"eipgw-snat-tc":      "nft-snat-conntrack-many",
	"eipgw-dnat-xdp":     "nft-dnat-conntrack",
	"eipgw-dnat-tc":      "nft-dnat-conntrack",
	"eipgw-snat-new-xdp": "nft-snat-conntrack-new",
	"eipgw-snat-new-tc":  "nft-snat-conntrack-new",
}

type rateReport struct {
	Ceiling []float64     `json:"generator_ceiling_mpps"`
	Cases   []*caseResult `json:"cases"`
}

// measureWindow runs one window of a case at pace and checks what arrived.
func (b *bed) measureWindow(c benchCase, pacePPS float64, window time.Duration) (sample, error) {
	b.capacity = c.tableCapacity()
	if err := sizeConntrack(b.capacity); err != nil {
		return sample{}, fmt.Errorf("%s: %w", c.Name, err)
	}
	teardown, err := c.Setup(b)
	if err != nil {
		return sample{}, fmt.Errorf("%s: setup: %w", c.Name, err)
	}
	if b.afterSetup != nil {
		if err := b.afterSetup(); err != nil {
			return sample{}, errors.Join(err, teardown())
		}
	}
	packets := uint64(pacePPS * window.Seconds())
	if c.Flows.Once {
		packets = min(packets, c.Flows.count())
	}
	w, genErr := b.generate(c.Flows, pacePPS, packets)
	if err := teardown(); err != nil {
		return sample{}, fmt.Errorf("%s: teardown: %w", c.Name, err)
	}
	if genErr != nil {
		return sample{}, fmt.Errorf("%s: %w", c.Name, genErr)
	}
	s := sample{PaceMpps: pacePPS / 1e6, Sent: w.Sent, Checked: w.Checked, BadChecksum: w.BadChecksum}
	if c.Translated {
		s.Delivered, s.Wrong = w.Translated, w.Untranslated
	} else {
		s.Delivered, s.Wrong = w.Untranslated, w.Translated
	}
	s.Wrong += w.Other
	s.Mpps = float64(s.Delivered) / w.Elapsed.Seconds() / 1e6
	if w.Sent > 0 {
		s.Loss = 1 - float64(s.Delivered)/float64(w.Sent)
	}
	return s, nil
}

// ceiling is how fast the generator can send when the gateway only counts and drops
// what arrives (the sink program on its interface): the generator's own limit.
func (b *bed) ceiling(window time.Duration) (float64, error) {
	l, err := b.attachXDP(b.objs.Sink, b.gwVPC)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	w, err := b.generate(manyFlows, 0, uint64(8e6*window.Seconds()))
	if err != nil {
		return 0, err
	}
	return float64(w.Sent) / w.Elapsed.Seconds() / 1e6, nil
}

// maxPace bounds the pace: asking for more than the generator's ceiling just runs it
// flat out, so a little above it is enough to find a case's limit.
func maxPace(ceilingMpps float64) float64 { return 1.5 * ceilingMpps * 1e6 }

// calibrationSteps bounds how often calibrate doubles the pace.
const calibrationSteps = 6

// calibrate finds the pace of c's first round: Overload times the most c delivered
// in short windows, the first as fast as the generator goes, then at paces doubling
// while each delivers over rampGain times the most before it (so the case was not at
// its limit). Flat out is not enough alone: a case can deliver far less flat out
// than it carries at a pace (why is not measured). On the 2-core VM the
// new-connection case at XDP delivered 0.06 Mpps flat out and 0.51 Mpps at a pace
// with 0.6% loss; started from the first figure, the rounds' pace grew 1.3x a round
// and never reached the case's limit in a run of eight. The ramp follows what is
// delivered, not the loss: a short window can lose a thousand packets at a pace far
// below the case's limit (2.8% of one at 0.10 Mpps, for a case whose rounds then
// carried 0.27 Mpps at 0.2-5% loss), which a loss threshold took for the limit.
func (b *bed) calibrate(c benchCase, ceil float64, opts options) (float64, error) {
	s, err := b.measureWindow(c, ceil*1e6, opts.Window/4)
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(opts.Log, "calibrate %-26s %.2f Mpps flat out\n", c.Name, s.Mpps)
	best := s.Mpps
	pace := min(opts.Overload*best*1e6, maxPace(ceil))
	for range calibrationSteps {
		if s, err = b.measureWindow(c, pace, opts.Window/4); err != nil {
			return 0, err
		}
		fmt.Fprintf(opts.Log, "calibrate %-26s pace %.2f -> %.2f Mpps, loss %4.1f%%\n", c.Name, pace/1e6, s.Mpps, 100*s.Loss)
		grew := s.Mpps > rampGain*best
		best = max(best, s.Mpps)
		if !grew || pace >= maxPace(ceil) {
			break
		}
		pace = min(2*pace, maxPace(ceil))
	}
	pace = min(opts.Overload*best*1e6, maxPace(ceil))
	fmt.Fprintf(opts.Log, "calibrate %-26s -> pace %.2f Mpps\n", c.Name, pace/1e6)
	return pace, nil
}

// rampGain: a calibration window that delivered less than this multiple of the most
// before it found the case's limit (a case below its limit delivers about what it
// is sent, twice as much at twice the pace).
const rampGain = 1.2

// unsaturatedLoss: a window that lost less than this share of what was sent ran
// below the case's limit.
const unsaturatedLoss = 0.02

// rates measures every case in interleaved rounds under controlled overload.
func (b *bed) rates(cases []benchCase, opts options) (*rateReport, error) {
	rep := &rateReport{}
	ceil, err := b.ceiling(opts.Window)
	if err != nil {
		return nil, fmt.Errorf("generator ceiling: %w", err)
	}
	rep.Ceiling = append(rep.Ceiling, ceil)
	fmt.Fprintf(opts.Log, "generator ceiling: %.2f Mpps\n", ceil)

	pace := map[string]float64{}
	results := map[string]*caseResult{}
	var runnable []benchCase
	for _, c := range cases {
		results[c.Name] = &caseResult{Name: c.Name, Desc: c.Desc, Flows: c.Flows.Hosts * c.Flows.Ports,
			Translated: c.Translated, Inbound: c.Flows.Inbound}
		rep.Cases = append(rep.Cases, results[c.Name])
		if c.Requires != nil {
			if err := c.Requires(); err != nil {
				results[c.Name].Unavailable = err.Error()
				fmt.Fprintf(opts.Log, "not measured: %s: %v\n", c.Name, err)
				continue
			}
		}
		runnable = append(runnable, c)
		if opts.Smoke {
			pace[c.Name] = 0.2e6
			continue
		}
		if pace[c.Name], err = b.calibrate(c, ceil, opts); err != nil {
			return nil, err
		}
	}
	cases = runnable
	live := func(after bool) error {
		for _, c := range cases {
			lp, err := b.measureLiveProgram(c, pace[c.Name], opts.Window/2)
			if err != nil {
				return fmt.Errorf("%s: live program time: %w", c.Name, err)
			}
			if lp == nil {
				continue
			}
			when := "before the first round"
			if after {
				results[c.Name].Live, when = lp, "after the last round"
			} else {
				results[c.Name].LiveFirst = lp
			}
			fmt.Fprintf(opts.Log, "live     %-26s %s: %.0f ns a packet over %d packets, %s\n", c.Name, lp.Program, lp.NsPerRun, lp.Runs, when)
		}
		return nil
	}
	if !opts.Smoke {
		if err := live(false); err != nil {
			return nil, err
		}
	}
	for r := 0; r < opts.Rounds; r++ {
		for i := range cases {
			// Rotate the order so no case always follows the same one.
			c := cases[(i+r)%len(cases)]
			s, err := b.measureWindow(c, pace[c.Name], opts.Window)
			if err != nil {
				return nil, err
			}
			s.Round = r
			res := results[c.Name]
			res.Samples = append(res.Samples, s)
			fmt.Fprintf(opts.Log, "round %2d %-26s pace %.2f -> %.2f Mpps, loss %4.1f%%\n", r, c.Name, s.PaceMpps, s.Mpps, 100*s.Loss)
			// The machine's speed drifts between rounds (by 2x and more on a shared
			// VM): keep the next window at Overload times what this one delivered,
			// up or down, so the overload stays controlled.
			if !opts.Smoke && s.Mpps > 0 {
				pace[c.Name] = min(opts.Overload*s.Mpps*1e6, maxPace(ceil))
			}
		}
	}
	if !opts.Smoke {
		if err := live(true); err != nil {
			return nil, err
		}
		for _, c := range cases {
			if lp := results[c.Name].Live; opts.ProfileLines && lp != nil {
				if err := b.profileLines(c, lp.Program, pace[c.Name], opts.Window, opts.Log); err != nil {
					return nil, fmt.Errorf("%s: line profile: %w", c.Name, err)
				}
			}
		}
		if ceil, err = b.ceiling(opts.Window); err != nil {
			return nil, fmt.Errorf("generator ceiling: %w", err)
		}
		rep.Ceiling = append(rep.Ceiling, ceil)
		fmt.Fprintf(opts.Log, "generator ceiling at the end: %.2f Mpps\n", ceil)
	}
	summarize(rep)
	return rep, nil
}

func summarize(rep *rateReport) {
	byName := map[string]*caseResult{}
	for _, c := range rep.Cases {
		byName[c.Name] = c
	}
	ratio := func(c *caseResult, other string) stat {
		o := byName[other]
		if o == nil {
			return stat{}
		}
		var rs []float64
		for i, s := range c.Samples {
			if i < len(o.Samples) && o.Samples[i].Mpps > 0 {
				rs = append(rs, s.Mpps/o.Samples[i].Mpps)
			}
		}
		return quartiles(rs)
	}
	minCeiling := 0.0
	for i, x := range rep.Ceiling {
		if i == 0 || x < minCeiling {
			minCeiling = x
		}
	}
	for _, c := range rep.Cases {
		var mpps, loss []float64
		for _, s := range c.Samples {
			mpps = append(mpps, s.Mpps)
			loss = append(loss, s.Loss)
		}
		c.Mpps, c.Loss = quartiles(mpps), quartiles(loss)
		c.VsForwarding = ratio(c, "kernel-forwarding"+c.direction())
		c.VsFloor = ratio(c, "xdp-floor"+c.direction())
		if cp, ok := counterparts[c.Name]; ok {
			c.Counterpart = cp
			r := ratio(c, cp)
			c.VsKernelNAT = &r
		}
		c.GeneratorBound = c.Mpps.Median > 0.8*minCeiling
		c.Unsaturated = c.Loss.Median < unsaturatedLoss
	}
}

// check is the smoke assertion: every case delivered packets of the right class with
// valid checksums. It says nothing about speed.
func check(rep *rateReport) error {
	for _, c := range rep.Cases {
		if c.Unavailable == "" && len(c.Samples) == 0 {
			return fmt.Errorf("%s was not measured", c.Name)
		}
		for _, s := range c.Samples {
			switch {
			case s.Delivered == 0:
				return fmt.Errorf("%s delivered nothing", c.Name)
			case s.Wrong != 0:
				return fmt.Errorf("%s delivered %d packets with the wrong source class (translation %v expected)", c.Name, s.Wrong, c.Translated)
			case s.Checked == 0:
				return fmt.Errorf("%s: no checksum was sampled", c.Name)
			case s.BadChecksum != 0:
				return fmt.Errorf("%s delivered %d packets with bad checksums", c.Name, s.BadChecksum)
			}
		}
	}
	return nil
}
