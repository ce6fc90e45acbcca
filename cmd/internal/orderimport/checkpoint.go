package orderimport

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Checkpoint is how far an import of one or more files got. It is
// replaced as a whole (a temporary file renamed
// over it), so a crash leaves the old one or the new one, never half.
type Checkpoint struct {
	Version int          `json:"version"`
	Source  string       `json:"source"`
	Files   []*FileState `json:"files"`
}

// FileState is one file's progress: the position before which every
// order is done, and the counts of those orders. Size and Head (a hash of
// its first 64 KiB) tell whether the file is still the one the checkpoint
// was written for.
type FileState struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Head   string `json:"head"`
	Format Format `json:"format"`
	Position
	Counts Counts `json:"counts"`
	Done   bool   `json:"done"`
}

const checkpointVersion = 1

// ErrFileChanged is returned by Checkpoint.Resume for a file that is not
// the one the checkpoint was written for.
var ErrFileChanged = errors.New("the file changed since the checkpoint was written")

// LoadCheckpoint reads a checkpoint; a missing file is an empty one.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Checkpoint{Version: checkpointVersion}, nil
	}
	if err != nil {
		return nil, err
	}
	var c Checkpoint
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if c.Version != checkpointVersion {
		return nil, fmt.Errorf("checkpoint %s: version %d, want %d", path, c.Version, checkpointVersion)
	}
	return &c, nil
}

// Save writes the checkpoint to path atomically and durably.
func (c *Checkpoint) Save(path string) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable once the directory is.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Identify returns the size and head hash of f, then seeks back to its
// start.
func Identify(f io.ReadSeeker) (size int64, head string, err error) {
	h := sha256.New()
	if _, err := io.CopyN(h, f, 64<<10); err != nil && err != io.EOF {
		return 0, "", err
	}
	if size, err = f.Seek(0, io.SeekEnd); err != nil {
		return 0, "", err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, "", err
	}
	return size, hex.EncodeToString(h.Sum(nil)), nil
}

// State returns the state of the file at path (absolute), adding a fresh
// one when the checkpoint does not know it. A known file must still have
// the size and head it had.
func (c *Checkpoint) State(path string, size int64, head string, format Format) (*FileState, error) {
	for _, f := range c.Files {
		if f.Path != path {
			continue
		}
		if f.Size != size || f.Head != head {
			return nil, fmt.Errorf("%s: %w (size %d, was %d)", path, ErrFileChanged, size, f.Size)
		}
		if f.Format != format {
			return nil, fmt.Errorf("%s: read as %s, the checkpoint says %s", path, format, f.Format)
		}
		return f, nil
	}
	f := &FileState{Path: path, Size: size, Head: head, Format: format}
	c.Files = append(c.Files, f)
	return f, nil
}
