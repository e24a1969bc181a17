package testbed

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Iperf is one iperf3 test (Debian's iperf3, started by the test): a server in one
// host and a client in another that receives (iperf3 -R), so that the client's report
// is what arrived, interval by interval.
type Iperf struct {
	Server, Client *Host
	// Listen is the server's address; Target is where the client connects (the
	// server's address as the client reaches it: an EIP, say).
	Listen, Target string
	Port           int
	Duration       time.Duration // measured, after Omit
	Omit           time.Duration // left out of the figures: slow start, a bucket's first burst
	Interval       time.Duration // of the report; 0: 100 ms
	// UDPBitrate, when set, makes it a UDP test sent at that many bits a second in
	// 1,200-byte datagrams; otherwise one TCP flow.
	UDPBitrate float64
	// Congestion is the TCP congestion control the sender uses (iperf3 -C); empty:
	// the sender's host default, which differs between machines (BBR here, CUBIC on
	// a stock Debian).
	Congestion string
}

// IperfInterval is what arrived in one interval of a run.
type IperfInterval struct {
	Start, End float64 // seconds since the test started, Omit included
	Bytes      int64
	Omitted    bool
}

// IperfResult is what the receiving client measured.
type IperfResult struct {
	Intervals []IperfInterval
	Total     int64   // everything that arrived, Omit included
	Bytes     int64   // after Omit
	Bits      float64 // bits a second after Omit
	Started   time.Time
	// SenderCongestion is the congestion control the sender reported using (TCP).
	SenderCongestion string
}

// Run runs the test and returns what arrived. Bounded: the client stops after Omit and
// Duration, the server after one test, and both are killed past a deadline.
func (p Iperf) Run() (IperfResult, error) {
	deadline := p.Omit + p.Duration + 10*time.Second
	interval := p.Interval
	if interval == 0 {
		interval = 100 * time.Millisecond
	}
	port := strconv.Itoa(p.Port)
	server := exec.Command("iperf3", "-s", "-1", "-B", p.Listen, "-p", port)
	if err := p.Server.Start(server); err != nil {
		return IperfResult{}, err
	}
	defer func() { _ = server.Process.Kill(); _ = server.Wait() }()
	if err := p.Server.waitListening(p.Port, 5*time.Second); err != nil {
		return IperfResult{}, fmt.Errorf("iperf3 server: %w", err)
	}
	args := []string{"-c", p.Target, "-p", port, "-R", "-J",
		"-t", secs(p.Duration), "-O", secs(p.Omit), "-i", secs(interval), "--connect-timeout", "1000"}
	if p.UDPBitrate > 0 {
		args = append(args, "-u", "-l", "1200", "-b", strconv.FormatFloat(p.UDPBitrate, 'f', 0, 64))
	} else if p.Congestion != "" {
		args = append(args, "-C", p.Congestion)
	}
	started := time.Now()
	out, err := p.Client.Run(deadline, "iperf3", args...)
	if err != nil {
		return IperfResult{}, fmt.Errorf("iperf3 to %s:%d: %w", p.Target, p.Port, err)
	}
	var report struct {
		Intervals []struct {
			Sum struct {
				Start   float64 `json:"start"`
				End     float64 `json:"end"`
				Bytes   int64   `json:"bytes"`
				Omitted bool    `json:"omitted"`
			} `json:"sum"`
		} `json:"intervals"`
		End struct {
			SenderCongestion string `json:"sender_tcp_congestion"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &report); err != nil {
		return IperfResult{}, fmt.Errorf("iperf3 report: %w", err)
	}
	if report.Error != "" {
		return IperfResult{}, fmt.Errorf("iperf3 to %s:%d: %s", p.Target, p.Port, report.Error)
	}
	res := IperfResult{Started: started, SenderCongestion: report.End.SenderCongestion}
	if p.Congestion != "" && p.UDPBitrate == 0 && res.SenderCongestion != p.Congestion {
		return IperfResult{}, fmt.Errorf("iperf3 to %s:%d: the sender used congestion control %q, not %q", p.Target, p.Port, res.SenderCongestion, p.Congestion)
	}
	var measured float64
	for _, iv := range report.Intervals {
		s := iv.Sum
		res.Intervals = append(res.Intervals, IperfInterval{Start: s.Start, End: s.End, Bytes: s.Bytes, Omitted: s.Omitted})
		res.Total += s.Bytes
		if !s.Omitted {
			res.Bytes += s.Bytes
			measured += s.End - s.Start
		}
	}
	if measured > 0 {
		res.Bits = float64(res.Bytes) * 8 / measured
	}
	return res, nil
}

// Rate is what arrived from from to to seconds into the test, in bits a second
// (intervals that overlap the span count in proportion).
func (r IperfResult) Rate(from, to float64) float64 {
	var bits, span float64
	for _, iv := range r.Intervals {
		lo, hi := max(iv.Start, from), min(iv.End, to)
		if hi <= lo || iv.End <= iv.Start {
			continue
		}
		frac := (hi - lo) / (iv.End - iv.Start)
		bits += float64(iv.Bytes) * 8 * frac
		span += hi - lo
	}
	if span == 0 {
		return 0
	}
	return bits / span
}

// LongestStall is the longest run of intervals in which nothing arrived, in seconds.
func (r IperfResult) LongestStall() float64 {
	var longest, run float64
	for _, iv := range r.Intervals {
		if iv.Bytes == 0 {
			run += iv.End - iv.Start
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

// waitListening waits until a TCP socket of the host listens on port.
func (h *Host) waitListening(port int, timeout time.Duration) error {
	want := fmt.Sprintf(":%04X ", port)
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		var table []byte
		// /proc/thread-self/net is the namespace of the thread Do runs in.
		if err := h.Do(func() error {
			var err error
			table, err = os.ReadFile("/proc/thread-self/net/tcp")
			return err
		}); err != nil {
			return err
		}
		for _, line := range strings.Split(string(table), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 3 && strings.HasSuffix(f[1]+" ", want) && f[3] == "0A" { // TCP_LISTEN
				return nil
			}
		}
	}
	return fmt.Errorf("%s: nothing listens on port %d after %v", h.Name, port, timeout)
}
