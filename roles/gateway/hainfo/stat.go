package hainfo

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// StatTable is one "show stat" reply. Columns are looked up by the names in
// HAProxy's header line, never by position: the column set differs between
// releases (2.6 and 3.2 already disagree after the static fields) and the
// management guide only promises the order of the static ones.
type StatTable struct {
	// Columns are the header names in reply order.
	Columns []string
	// Rows are the data records, one per frontend, server, backend or
	// listener.
	Rows []StatRow

	index map[string]int
}

// StatRow is one record of a StatTable.
type StatRow struct {
	table *StatTable
	cells []string
}

// ErrNotStatCSV is wrapped by ParseStat when the text is not a "show stat"
// CSV reply, e.g. an "Unknown command" or "Permission denied" answer.
var ErrNotStatCSV = errors.New(`not a "show stat" CSV reply`)

// ParseStat reads a "show stat" CSV reply: a header line starting with "#"
// followed by records, ended by an empty line or EOF.
func ParseStat(r io.Reader) (*StatTable, error) {
	br := bufio.NewReader(r)
	first, err := br.ReadString('\n')
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("reading stat header: %w", err)
	}
	header := strings.TrimRight(first, "\r\n")
	if !strings.HasPrefix(header, "#") {
		return nil, fmt.Errorf("%w: first line is %q, expected a header like \"# pxname,svname,...\"", ErrNotStatCSV, header)
	}
	header = strings.TrimSpace(strings.TrimPrefix(header, "#"))
	names, err := csv.NewReader(strings.NewReader(header)).Read()
	if err != nil {
		return nil, fmt.Errorf("%w: header %q: %v", ErrNotStatCSV, header, err)
	}
	t := &StatTable{Columns: names, index: make(map[string]int, len(names))}
	for i, n := range names {
		n = strings.TrimSpace(n)
		// HAProxy ends every line with a comma (an empty last column) and
		// separates static from dynamic fields with a "-" column; neither
		// names data.
		if n == "" || n == "-" {
			continue
		}
		if _, dup := t.index[n]; !dup {
			t.index[n] = i
		}
	}
	for _, required := range []string{"pxname", "svname"} {
		if _, ok := t.index[required]; !ok {
			return nil, fmt.Errorf("%w: header has no %q column (columns: %s)", ErrNotStatCSV, required, strings.Join(names, ","))
		}
	}

	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = false
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading stat records: %w", err)
		}
		// The CLI ends each command's output with an empty line; csv skips
		// blank lines, so a second command's reply could follow. Stop at a
		// line that is not a stat record.
		if len(rec) > 0 && strings.HasPrefix(rec[0], "#") {
			break
		}
		t.Rows = append(t.Rows, StatRow{table: t, cells: rec})
	}
	return t, nil
}

// Has reports whether the reply has a column of that name.
func (t *StatTable) Has(column string) bool {
	_, ok := t.index[column]
	return ok
}

// Has reports whether the row's table has the column.
func (r StatRow) Has(column string) bool { return r.table.Has(column) }

// Get returns the cell of the named column and whether the column exists in
// this row. An existing column may still hold an empty cell: HAProxy leaves
// cells empty for fields that do not apply to the row's type.
func (r StatRow) Get(column string) (string, bool) {
	i, ok := r.table.index[column]
	if !ok || i >= len(r.cells) {
		return "", false
	}
	return r.cells[i], true
}

// Str returns the cell of the named column, or "" when it is absent.
func (r StatRow) Str(column string) string {
	v, _ := r.Get(column)
	return v
}

// Int returns the cell of the named column as an integer, or nil when the
// column is absent, empty or not a number.
func (r StatRow) Int(column string) *int64 {
	v, ok := r.Get(column)
	if !ok {
		return nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return nil
	}
	return &n
}
