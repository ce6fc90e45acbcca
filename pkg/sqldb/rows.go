package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// InsertRows writes rows (each a value per column of cols) in multi-row
// statements; conflict, when set, is the ON CONFLICT clause ("(key) DO
// UPDATE SET …" or "(key) DO NOTHING"). A conflict without one is a
// unique violation, which InTx treats as a lost race and runs again.
func InsertRows(ctx context.Context, tx *sql.Tx, d Dialect, table, cols, conflict string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	width := len(rows[0])
	per := max(1, 2000/width) // well under every driver's parameter limit
	for start := 0; start < len(rows); start += per {
		chunk := rows[start:min(start+per, len(rows))]
		args := make([]any, 0, len(chunk)*width)
		for _, r := range chunk {
			args = append(args, r...)
		}
		q := "INSERT INTO " + table + " (" + cols + ") VALUES " + d.Tuples(len(chunk), width)
		if conflict != "" {
			q += " ON CONFLICT " + conflict
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("write %s: %w", table, err)
		}
	}
	return nil
}

// MaxParams bounds the parameters of one statement, well under every
// driver's limit (SQLite's is 32,766, PostgreSQL's 65,535).
const MaxParams = 6000

// RowChunks calls fn with args in slices of whole rows (width values each)
// of at most MaxParams values.
func RowChunks(args []any, width int, fn func([]any) error) error {
	per := MaxParams / width * width
	for start := 0; start < len(args); start += per {
		if err := fn(args[start:min(start+per, len(args))]); err != nil {
			return err
		}
	}
	return nil
}

// InChunks calls fn with ids in chunks of at most 500, for IN lists.
func InChunks(ids []any, fn func([]any) error) error {
	const per = 500
	for start := 0; start < len(ids); start += per {
		if err := fn(ids[start:min(start+per, len(ids))]); err != nil {
			return err
		}
	}
	return nil
}

// CloseRows closes rows and reports the iteration's error with the
// close's.
func CloseRows(rows *sql.Rows) error {
	err := rows.Err()
	return errors.Join(err, rows.Close())
}
