package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat: 100 on
// Linux whatever the kernel's HZ (getconf CLK_TCK). Asking sysconf would
// need cgo.
const clockTicks = 100

// procStat is what loadgen reads of /proc/<pid>/stat.
type procStat struct {
	comm     string
	ppid     int
	cpu      time.Duration // utime + stime
	childCPU time.Duration // cutime + cstime: children that exited and were waited for
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(string(b))
}

// parseProcStat parses a /proc/<pid>/stat line. The command name sits in
// parentheses and may hold spaces and parentheses itself, so the fields
// are counted from the last ')'.
func parseProcStat(line string) (procStat, error) {
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("malformed /proc stat %q", truncate(line))
	}
	// From field 3 (state) on: ppid is field 4, utime 14, stime 15,
	// cutime 16, cstime 17.
	f := strings.Fields(line[end+1:])
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("malformed /proc stat %q", truncate(line))
	}
	var n [5]int64
	for i, field := range []int{4, 14, 15, 16, 17} {
		v, err := strconv.ParseInt(f[field-3], 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("field %d of /proc stat %q: %w", field, truncate(line), err)
		}
		n[i] = v
	}
	ticks := func(t int64) time.Duration { return time.Duration(t) * time.Second / clockTicks }
	return procStat{comm: line[open+1 : end], ppid: int(n[0]), cpu: ticks(n[1] + n[2]), childCPU: ticks(n[3] + n[4])}, nil
}

// serverCPU is the CPU time used so far by a PostgreSQL server: its
// postmaster, every process it started that is still alive, and those that
// have exited (the postmaster's cutime and cstime, as it waits for each),
// so backends that come and go in between count too. Only the children of
// the one postmaster loadgen talks to count, not every process named
// postgres: others may run their own servers on this machine.
func serverCPU(postmaster int) (time.Duration, error) {
	pm, err := readProcStat(postmaster)
	if err != nil {
		return 0, fmt.Errorf("reading the postmaster's CPU: %w", err)
	}
	total := pm.cpu + pm.childCPU
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("listing processes: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == postmaster {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil || st.ppid != postmaster {
			continue // gone since the listing, or not the server's
		}
		total += st.cpu
	}
	return total, nil
}

// pidsCPU is the CPU time so far of each of pids that is still alive.
func pidsCPU(pids []int) map[int]time.Duration {
	cpu := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		if st, err := readProcStat(pid); err == nil {
			cpu[pid] = st.cpu
		}
	}
	return cpu
}

// cpuSince is how much CPU the processes of now used since then: the
// difference for those in both, all of it for those born in between.
// Those that died in between are lost, which is why the shop's pooled
// connections, which live as long as it does, are what this measures.
func cpuSince(then, now map[int]time.Duration) time.Duration {
	var total time.Duration
	for pid, cpu := range now {
		total += cpu - then[pid]
	}
	return total
}
