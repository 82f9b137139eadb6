package mysql

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// GTID is a MariaDB global transaction id, domain-server-sequence.
type GTID struct {
	Domain uint32
	Server uint32
	Seq    uint64
}

func (g GTID) String() string { return fmt.Sprintf("%d-%d-%d", g.Domain, g.Server, g.Seq) }

// ParseGTID parses "domain-server-seq".
func ParseGTID(s string) (GTID, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) != 3 {
		return GTID{}, fmt.Errorf("GTID %q: want domain-server-sequence, as 0-1-42", s)
	}
	d, err1 := strconv.ParseUint(parts[0], 10, 32)
	sv, err2 := strconv.ParseUint(parts[1], 10, 32)
	q, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return GTID{}, fmt.Errorf("GTID %q: want three decimal numbers, as 0-1-42", s)
	}
	return GTID{Domain: uint32(d), Server: uint32(sv), Seq: q}, nil
}

// Pos is a MariaDB GTID position (gtid_binlog_pos, gtid_slave_pos): the last
// transaction applied in each replication domain.
type Pos map[uint32]GTID

// ParsePos parses "0-1-42,1-2-7"; "" is the empty position.
func ParsePos(s string) (Pos, error) {
	p := Pos{}
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		g, err := ParseGTID(part)
		if err != nil {
			return nil, err
		}
		if _, dup := p[g.Domain]; dup {
			return nil, fmt.Errorf("GTID position %q names domain %d twice", s, g.Domain)
		}
		p[g.Domain] = g
	}
	return p, nil
}

// String formats the position as MariaDB does, domains in order.
func (p Pos) String() string {
	var out []string
	for _, d := range p.domains() {
		out = append(out, p[d].String())
	}
	return strings.Join(out, ",")
}

func (p Pos) domains() []uint32 {
	ds := make([]uint32, 0, len(p))
	for d := range p {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds
}

// Clone returns a copy.
func (p Pos) Clone() Pos {
	c := make(Pos, len(p))
	for d, g := range p {
		c[d] = g
	}
	return c
}

// Contains reports whether the transaction g is at or before p in its domain.
// Sequence numbers grow within a domain (gtid_strict_mode makes it a rule).
func (p Pos) Contains(g GTID) bool {
	have, ok := p[g.Domain]
	return ok && g.Seq <= have.Seq
}

// Covers reports whether p holds everything q holds, domain by domain.
func (p Pos) Covers(q Pos) bool {
	for _, g := range q {
		if !p.Contains(g) {
			return false
		}
	}
	return true
}

// Advance records that g was applied.
func (p Pos) Advance(g GTID) { p[g.Domain] = g }

// Min returns the position holding, per domain, the older of a and b; a domain
// only one of them knows is dropped (the other has none of it).
func Min(a, b Pos) Pos {
	out := Pos{}
	for d, ga := range a {
		if gb, ok := b[d]; ok {
			if gb.Seq < ga.Seq {
				ga = gb
			}
			out[d] = ga
		}
	}
	return out
}
